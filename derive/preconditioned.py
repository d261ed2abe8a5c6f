"""Stable and central flows of RMSProp with k unstable eigenvalues, in the preconditioner's metric.

RMSProp is preconditioned GD w ← w − P⁻¹∇L, P = diag(p)/η, p = √ν̂ + ε from the EMA state ν
(one entry per coordinate, or one scalar). The edge of stability is an eigenvalue 2 of the
pencil (H, P): H u = λ P u. With U = [u₁ … u_k] those eigenvectors, Σ = U X Uᵀ the covariance of
the oscillation, and c = (1 − β₂)/β₂, the central flow is

    dw/dτ = −P⁻¹[∇L + ½ Σ_ij X_ij N_ij],                 N_ij = ∇(u_iᵀ H u_j) = D³L[u_i, u_j]
    dν/dτ = c(E[∇L^⊙2] − ν),   E[∇L^⊙2] = ∇L^⊙2 + Σ_ij X_ij (H u_i)⊙(H u_j),   H u_i = 2 P u_i
    Q(X) = d/dτ Uᵀ(2P − H)U = 2 Uᵀ Ṗ U − [⟨N_ij, dw/dτ⟩]_ij = A + B[X],   Ṗ = (∂p/∂ν ν̇ + ∂p/∂τ)/η

and X solves the SDCP X ⪰ 0, A + B[X] ⪰ 0, ⟨X, A + B[X]⟩ = 0 (the block Uᵀ(2P − H)U = 2I − Λ
stays ⪰ 0). The derivative of the preconditioner enters as p, ∂p/∂ν, ∂p/∂τ: the caller supplies
them from its own update rule (``numeric`` differentiates it), so ε and bias correction need no
formula of their own. The stable flow is X = 0.

Two forms, both derived here by SymPy from the ansatz above:
- :class:`DiagonalRMSPropCentralFlow`: per-coordinate expressions (everything but the Σ_m of an
  inner product is elementwise); Q_ij = Σ_m q_ij,m. ``numeric`` compiles them with
  ``build_function`` and sums over coordinates. u_i are P-orthonormal (uᵢᵀPu_j = δ_ij).
- :class:`ScalarRMSPropCentralFlowMulti`: scalar ν over the operator vocabulary (valid for any n),
  with unit eigenvectors of H, the effective eigenvalues (η/p)·uᵢᵀHuᵢ and Q = −d/dτ of (η/p)UᵀHU.

References: Cohen et al., "Understanding Optimization in Deep Learning with Central Flows"
(ICLR 2025), §5 and App. C; the reference implementation's ``central_flow_substep``.
"""
from __future__ import annotations

import itertools
import random

import sympy as sp

from .adaptive import ScalarRMSPropCentralFlow, beta2, nu
from .central import _dot_subs, _random_vectors, central_flow_multi, g
from .ops import DL, Dot, Form, Vec, inner, opstr
from .ops import eta as ETA
from .result import Check, Derivation

__all__ = ["DiagonalRMSPropCentralFlow", "ScalarRMSPropCentralFlowMulti", "diagonal_rmsprop_central_flow",
           "p", "p_nu", "p_tau", "rmsprop_central_flow_multi"]

# the preconditioner's denominator p(ν, τ) and its partial derivatives (scalars, or one coordinate's)
p = sp.Dummy("p", positive=True)
p_nu = sp.Dummy("p_nu", nonnegative=True)
p_tau = sp.Dummy("p_tau", real=True)


def _packed_x(k):
    xs = {}
    for i, j in itertools.combinations_with_replacement(range(k), 2):
        xs[(i, j)] = xs[(j, i)] = sp.Dummy(f"X{i + 1}{j + 1}", real=True)
    return sp.Matrix(k, k, lambda i, j: xs[(i, j)]), [xs[ij] for ij in itertools.combinations_with_replacement(range(k), 2)]


def _split(expr_matrix, packed):
    """Q = A + B[X]: A at X = 0 and B with packed(Q) = packed(A) + B @ packed(X)."""
    zero = {x: 0 for x in packed}
    pairs = list(itertools.combinations_with_replacement(range(expr_matrix.shape[0]), 2))
    A = expr_matrix.xreplace(zero).applyfunc(sp.expand)
    B = sp.Matrix([[sp.expand(sp.diff(expr_matrix[i, j], x)) for x in packed] for i, j in pairs])
    return A, B


def _linear_basis(expr, packed):
    """expr = e0 + Σ x e_x (linear in X): (e0, [e_x ...]) in packed order."""
    return sp.expand(expr.xreplace({x: 0 for x in packed})), [sp.expand(sp.diff(expr, x)) for x in packed]


class DiagonalRMSPropCentralFlow(Derivation):
    """Diagonal RMSProp's central flow with k unstable eigenvalues, coordinate by coordinate.

    Per-coordinate symbols (the m-th entries): ``grad`` (∇L), ``nu``, ``p``, ``p_nu``, ``p_tau``,
    ``U[i]`` (u_i, P-orthonormal eigenvectors of the pencil), ``N[i][j]`` (∇(u_iᵀHu_j)).

    Attributes:
        w_velocity, nu_velocity: dw_m/dτ and dν_m/dτ (in the packed X symbols ``packed``).
        q: k×k matrix of per-coordinate summands, Q_ij = Σ_m q_ij.
        A_terms, B_terms: q split as A + B[X] (per coordinate; sum over m to get A and B).
        loss_terms: per-coordinate terms of E[L] − L = ½⟨Σ, H⟩ = Σ_m (p_m/η) Σ_ij X_ij u_im u_jm
            (``loss_basis``: its coefficients of the packed X).
        w_basis, nu_basis: the velocities as (X = 0 part, [∂/∂x for x in packed]).
    """

    kind = "scalar"

    def __init__(self, k: int = 1):
        if not isinstance(k, int) or not 1 <= k <= 8:
            raise ValueError(f"k: expected an integer in 1..8, got {k!r}")
        self.k = k
        self.grad = sp.Dummy("g", real=True)
        self.nu = sp.Dummy("nu", positive=True)
        self.U = [sp.Dummy(f"u{i + 1}", real=True) for i in range(k)]
        Nsym = {}
        for i, j in itertools.combinations_with_replacement(range(k), 2):
            Nsym[(i, j)] = Nsym[(j, i)] = sp.Dummy(f"N{i + 1}{j + 1}", real=True)
        self.N = [[Nsym[(i, j)] for j in range(k)] for i in range(k)]
        self.X, self.packed = _packed_x(k)
        c = (1 - beta2) / beta2
        pairs = [(i, j) for i in range(k) for j in range(k)]
        self.w_velocity = sp.expand(-ETA / p * (self.grad + sp.Rational(1, 2) * sum(
            (self.X[i, j] * self.N[i][j] for i, j in pairs), sp.Integer(0))))
        Hu = [2 * p / ETA * ui for ui in self.U]                       # H u_i = 2 P u_i at the edge
        averaged = self.grad**2 + sum((self.X[i, j] * Hu[i] * Hu[j] for i, j in pairs), sp.Integer(0))
        self.nu_velocity = sp.expand(c * (averaged - self.nu))
        p_dot = (p_nu * self.nu_velocity + p_tau) / ETA
        self.q = sp.Matrix(k, k, lambda i, j: sp.expand(2 * self.U[i] * self.U[j] * p_dot
                                                         - self.N[i][j] * self.w_velocity))
        self.A_terms, self.B_terms = _split(self.q, self.packed)
        self.loss_terms = sp.expand(p / ETA * sum((self.X[i, j] * self.U[i] * self.U[j] for i, j in pairs),
                                                  sp.Integer(0)))
        self.w_basis = _linear_basis(self.w_velocity, self.packed)
        self.nu_basis = _linear_basis(self.nu_velocity, self.packed)
        self.loss_basis = [sp.expand(sp.diff(self.loss_terms, x)) for x in self.packed]
        self.expr = self.w_velocity
        self.title = f"central flow of diagonal RMSProp, k = {k} unstable eigenvalues (per coordinate)"
        self.lhs, self.lhs_latex = "dw_m/dτ", r"\frac{dw_m}{d\tau}"

    @property
    def symbols(self) -> dict:
        """The per-coordinate symbols by name (``grad``, ``nu``, ``p``, ``p_nu``, ``p_tau``, ``u1``…, ``N11``…)."""
        out = {"grad": self.grad, "nu": self.nu, "p": p, "p_nu": p_nu, "p_tau": p_tau}
        out.update({f"u{i + 1}": ui for i, ui in enumerate(self.U)})
        out.update({f"N{i + 1}{j + 1}": self.N[i][j] for i, j in itertools.combinations_with_replacement(range(self.k), 2)})
        return out

    def __str__(self):
        return (f"dw_m/dτ = −(η/p_m)[g_m + ½Σ X_ij N_ij,m], dν_m/dτ = ((1−β₂)/β₂)(g_m² + 4(p_m/η)²Σ X_ij u_i,m u_j,m − ν_m), "
                f"Q_ij = Σ_m [2u_i,m u_j,m ṗ_m/η − N_ij,m dw_m/dτ], SDCP on Q (k = {self.k})")

    def _checks(self, seed):
        k, n = self.k, 5
        yield self._check_gd(seed, n)
        Xq = sp.expand(sum((self.X[i, j] * (self.q[i, j] - self.A_terms[i, j]) for i in range(k) for j in range(k)),
                           sp.Integer(0)))
        M = sum((self.X[i, j] * self.N[i][j] for i in range(k) for j in range(k)), sp.Integer(0))
        V = sum((self.X[i, j] * self.U[i] * self.U[j] for i in range(k) for j in range(k)), sp.Integer(0))
        c = (1 - beta2) / beta2
        gram = ETA / (2 * p) * M**2 + 8 * c * p_nu * p**2 / ETA**3 * V**2
        yield Check("⟨X, B[X]⟩ per coordinate = (η/2p)(Σ X_ij N_ij)² + (8c ∂p/∂ν p²/η³)(Σ X_ij u_i u_j)² ≥ 0, so B ⪰ 0",
                    sp.expand(Xq - gram) == 0, "difference expands to 0")
        if k == 1:
            yield self._check_projection(seed, n)
            yield self._check_pencil(seed)

    def _check_projection(self, seed, n):
        """k = 1, P frozen (∂p = 0): σ² from Q = 0 makes dw/dτ the P-metric projection
        −P⁻¹(I − N(NᵀP⁻¹N)⁻¹NᵀP⁻¹)∇L, so dL/dτ = −‖that projection‖²_{P⁻¹} ≤ 0 (random rational R⁵)."""
        rng = random.Random(seed)
        gv, Nv = _random_vectors(seed, n, 2)
        ps = [sp.Rational(rng.randint(1, 9), rng.randint(1, 4)) for _ in range(n)]
        lr = sp.Rational(1, 7)
        x = self.packed[0]
        frozen = {p_nu: 0, p_tau: 0, ETA: lr, beta2: sp.Rational(9, 10)}
        Q = sum((self.q[0, 0].xreplace({**frozen, p: ps[m], self.grad: gv[m], self.N[0][0]: Nv[m]}) for m in range(n)),
                sp.Integer(0))
        (xv,) = sp.solve(sp.Eq(Q, 0), x)
        w_dot = sp.Matrix([self.w_velocity.xreplace({**frozen, p: ps[m], self.grad: gv[m], self.N[0][0]: Nv[m], x: xv})
                           for m in range(n)])
        Pinv = sp.diag(*[lr / pm for pm in ps])
        proj = gv - Nv * (Nv.T * Pinv * gv)[0, 0] / (Nv.T * Pinv * Nv)[0, 0]
        same = (w_dot + Pinv * proj).applyfunc(sp.simplify) == sp.zeros(n, 1)
        dL = (gv.T * w_dot)[0, 0]
        decrease = sp.simplify(dL + (proj.T * Pinv * proj)[0, 0]) == 0 and dL <= 0
        return Check("k = 1, P frozen, random rational R⁵: dw/dτ = −P⁻¹(I − N(NᵀP⁻¹N)⁻¹NᵀP⁻¹)∇L (projection in the "
                     "P-metric) and dL/dτ = −‖·‖²_{P⁻¹} ≤ 0", bool(same and decrease), f"dL/dτ = {dL}")

    def _check_gd(self, seed, n):
        """P = I/η frozen (p = 1, ∂p = 0): Q summed over R⁵ equals GD's central-flow Q (operator form)."""
        k = self.k
        gd = central_flow_multi(k)
        pairs = list(itertools.combinations_with_replacement(range(k), 2))
        vecs = _random_vectors(seed, n, len(pairs) + 1)
        gv, Ns = vecs[0], dict(zip(pairs, vecs[1:]))
        vals = {DL(): gv, **{gd.Nij[i, j]: Ns[(i, j)] for i, j in pairs}}
        Q_gd = gd.Q.xreplace(_dot_subs(vals)).xreplace(dict(zip(gd.packed, self.packed)))
        frozen = {p: 1, p_nu: 0, p_tau: 0}
        ok = True
        for i, j in pairs:
            total = sum((self.q[i, j].xreplace(frozen).xreplace(
                {self.grad: gv[m], **{self.N[a][b]: Ns[(a, b)][m] for a, b in pairs}}) for m in range(n)), sp.Integer(0))
            ok &= sp.expand(total - Q_gd[i, j]) == 0
        return Check(f"P = I/η frozen: Q summed over random rational R⁵ equals GD's central-flow Q (k = {k})",
                     bool(ok), "equal for every (i, j)")

    def _check_pencil(self, seed):
        """k = 1 on a concrete cubic loss in R² with λ = 2: −Σ_m q_11,m = dλ/dτ of the pencil (H, P) by SymPy."""
        rng = random.Random(seed)
        t, w1, w2 = sp.symbols("t w1 w2", real=True)
        eta_v, beta_v = sp.Rational(1, 3), sp.Rational(9, 10)
        nus = [sp.Rational(rng.randint(1, 9), 1) ** 2 / 4, sp.Rational(rng.randint(1, 9), 1) ** 2 / 9]
        pfun = sp.sqrt                                                   # p = √ν (no ε, no bias correction)
        Pdiag = [pfun(v) / eta_v for v in nus]
        R = sp.Matrix([[sp.Rational(3, 5), -sp.Rational(4, 5)], [sp.Rational(4, 5), sp.Rational(3, 5)]])
        Ph = sp.diag(*[sp.sqrt(x) for x in Pdiag])
        H0 = Ph * R * sp.diag(2, sp.Rational(1, 2)) * R.T * Ph          # pencil eigenvalues 2 and 1/2
        a, b = [sp.Rational(rng.randint(-5, 5), 2) for _ in range(2)]
        gvec = sp.Matrix([sp.Rational(rng.randint(-5, 5), 3), sp.Rational(rng.randint(-5, 5), 3)])
        wv = sp.Matrix([w1, w2])
        loss = (gvec.T * wv)[0, 0] + (wv.T * H0 * wv)[0, 0] / 2 + a * w1**3 / 6 + b * w1 * w2**2 / 2
        u_vec = Ph.inv() * R[:, 0]                                        # P-orthonormal, H u = 2 P u
        grad = sp.Matrix([sp.diff(loss, v) for v in (w1, w2)])
        Hess = sp.hessian(loss, (w1, w2))
        Nvec = sp.Matrix([sp.diff((u_vec.T * Hess * u_vec)[0, 0], v) for v in (w1, w2)])
        x_val = sp.Rational(rng.randint(1, 9), 7)
        at0 = {w1: 0, w2: 0}
        sub = {ETA: eta_v, beta2: beta_v, self.X[0, 0]: x_val}
        v = sp.Symbol("v", positive=True)
        w_dot, nu_dot, q_total = [], [], sp.Integer(0)
        for m in range(2):
            coord = {self.grad: grad[m].xreplace(at0), self.nu: nus[m], p: pfun(nus[m]),
                     p_nu: sp.diff(pfun(v), v).xreplace({v: nus[m]}), p_tau: 0,
                     self.U[0]: u_vec[m], self.N[0][0]: Nvec[m].xreplace(at0)}
            w_dot.append(self.w_velocity.xreplace(coord).xreplace(sub))
            nu_dot.append(self.nu_velocity.xreplace(coord).xreplace(sub))
            q_total += self.q[0, 0].xreplace(coord).xreplace(sub)
        path = {w1: t * w_dot[0], w2: t * w_dot[1]}
        H_t = Hess.xreplace(path)
        P_t = sp.diag(*[pfun(nus[m] + t * nu_dot[m]) / eta_v for m in range(2)])
        lam = sp.Symbol("lam")
        charpoly = (H_t - lam * P_t).det()
        dlam = -sp.diff(charpoly, t) / sp.diff(charpoly, lam)               # implicit function theorem
        dlam0 = sp.simplify(dlam.xreplace({t: 0}).xreplace({lam: 2}))
        ok = sp.simplify(charpoly.xreplace({t: 0, lam: 2})) == 0 and sp.simplify(dlam0 + q_total) == 0
        return Check("k = 1, a cubic loss on R² with a pencil eigenvalue 2: −Σ_m q₁₁ = dλ/dτ of det(H − λP) = 0 "
                     "along (dw/dτ, dν/dτ) (implicit differentiation by SymPy)", bool(ok), f"dλ/dτ = {dlam0}")


class ScalarRMSPropCentralFlowMulti(Derivation):
    """Scalar RMSProp's central flow with k unstable eigenvalues, over the operator vocabulary.

    Unit eigenvectors u_i of H (inputs ``u1``…); scalars ``nu``, ``p``, ``p_nu``, ``p_tau``,
    ``beta2``, η. Q = −d/dτ[(η/p) UᵀHU] = A + B[X]; at the edge uᵢᵀHu_j = (2p/η)δ_ij and
    ⟨Hu_i, Hu_j⟩ = (2p/η)²δ_ij.

    Attributes:
        A, B, packed: as in ``derive.central_flow_multi``.
        velocity_basis, nu_basis: dw/dτ and dν/dτ as (X = 0 part, [∂/∂x for x in packed]).
        predicted_loss: E[L] = L + ½⟨Σ, H⟩ = L + (p/η) tr X at the edge (``loss_basis``: ∂/∂x).
    """

    def __init__(self, k: int = 1):
        if not isinstance(k, int) or not 1 <= k <= 8:
            raise ValueError(f"k: expected an integer in 1..8, got {k!r}")
        self.k = k
        self.U = [Vec(f"u{i + 1}") for i in range(k)]
        self.X, self.packed = _packed_x(k)
        c = (1 - beta2) / beta2
        pairs = [(i, j) for i in range(k) for j in range(k)]
        Nij = [[DL(self.U[i], self.U[j]) for j in range(k)] for i in range(k)]
        self.velocity = sp.expand(-ETA / p * (g + sp.Rational(1, 2) * sum(
            (self.X[i, j] * Nij[i][j] for i, j in pairs), sp.Integer(0))))
        averaged = Dot(g, g) + sum((self.X[i, j] * Dot(DL(self.U[i]), DL(self.U[j])) for i, j in pairs), sp.Integer(0))
        self.nu_ansatz = sp.expand(c * (averaged - nu))
        edge = {Dot(DL(self.U[i]), DL(self.U[j])): (2 * p / ETA) ** 2 * sp.KroneckerDelta(i, j) for i, j in pairs}
        self.nu_velocity = sp.expand(self.nu_ansatz.xreplace(edge))
        # d/dτ[(η/p) uᵢᵀHu_j] = (η/p)⟨N_ij, ẇ⟩ − (η/p²)(∂p/∂ν ν̇ + ∂p/∂τ) uᵢᵀHu_j
        M = sp.Matrix(k, k, lambda i, j: ETA / p * Form(self.U[i], self.U[j]))
        p_dot = p_nu * self.nu_velocity + p_tau
        dM = sp.Matrix(k, k, lambda i, j: ETA / p * inner(Nij[i][j], self.velocity) + sp.diff(M[i, j], p) * p_dot)
        at_edge = {Form(self.U[i], self.U[j]): 2 * p / ETA * sp.KroneckerDelta(i, j) for i, j in pairs}
        self.Q = (-dM).applyfunc(lambda e: sp.expand(e.xreplace(at_edge)))
        self.A, self.B = _split(self.Q, self.packed)
        self.velocity_basis = _linear_basis(self.velocity, self.packed)
        self.nu_basis = _linear_basis(self.nu_velocity, self.packed)
        self.predicted_loss = sp.expand(Form() + p / ETA * self.X.trace())
        self.loss_basis = [sp.diff(self.predicted_loss, x) for x in self.packed]
        self.expr = self.velocity
        self.title = f"central flow of scalar RMSProp, k = {k} unstable eigenvalues"
        self.lhs, self.lhs_latex = "dw/dτ", r"\frac{dw}{d\tau}"

    def __str__(self):
        return (f"dw/dτ = {opstr(sp.factor(self.velocity))}, dν/dτ = {opstr(sp.factor(self.nu_velocity))}, "
                f"Q = −d/dτ[(η/p)UᵀHU] = A + B[X], SDCP (k = {self.k})")

    def _checks(self, seed):
        k = self.k
        frozen = {beta2: 1, p_tau: 0}
        gd = central_flow_multi(k)
        step = ETA / p
        Q_gd = gd.Q.xreplace({ETA: step}).xreplace(dict(zip(gd.packed, self.packed)))
        diff = (self.Q.xreplace(frozen) - step * Q_gd).applyfunc(sp.expand)
        yield Check("β₂ = 1, ∂p/∂τ = 0 (P frozen): Q = (η/p)·GD's central-flow Q at step size η/p (operator identity)",
                    diff == sp.zeros(k, k), f"k = {k}")
        if k == 1:
            x = sp.Symbol("x", real=True)
            (sol,) = sp.solve(sp.Eq(self.Q[0, 0].xreplace({self.packed[0]: x}), 0), x)
            one = ScalarRMSPropCentralFlow()
            u = Vec("u")
            root = {p: sp.sqrt(nu), p_nu: 1 / (2 * sp.sqrt(nu)), p_tau: 0}
            expected = one.sigma2_value.xreplace({DL(u, u): DL(self.U[0], self.U[0])})
            expected = expected.xreplace({Dot(g, DL(u, u)): Dot(g, DL(self.U[0], self.U[0])),
                                          Dot(DL(u, u), DL(u, u)): Dot(DL(self.U[0], self.U[0]), DL(self.U[0], self.U[0]))})
            same = sp.simplify(sol.xreplace(root) - expected) == 0
            yield Check("k = 1, p = √ν: complementarity Q = 0 gives the σ² of dS_eff/dτ = 0 (rmsprop_central_flow)",
                        same, f"x = {opstr(sp.factor(sol))}")
        yield self._check_random(seed)

    def _check_random(self, seed):
        """Explicit rational vectors in R⁵: Q from the formula equals Q computed coordinate by coordinate."""
        k, n = self.k, 5
        pairs = list(itertools.combinations_with_replacement(range(k), 2))
        vecs = _random_vectors(seed, n, len(pairs) + 1)
        gv, Ns = vecs[0], dict(zip(pairs, vecs[1:]))
        scal = {ETA: sp.Rational(1, 7), p: sp.Rational(3, 2), p_nu: sp.Rational(1, 3), p_tau: sp.Rational(-1, 5),
                beta2: sp.Rational(9, 10), nu: sp.Rational(9, 4)}
        Xv = sp.eye(k) + sp.ones(k, k) / 3
        xs = {x: Xv[i, j] for x, (i, j) in zip(self.packed, pairs)}
        full = lambda i, j: Ns[(min(i, j), max(i, j))]   # noqa: E731
        w_dot = -scal[ETA] / scal[p] * (gv + sum((Xv[i, j] * full(i, j) for i in range(k) for j in range(k)),
                                                 sp.zeros(n, 1)) / 2)
        c = (1 - scal[beta2]) / scal[beta2]
        S = 2 * scal[p] / scal[ETA]
        nu_dot = c * ((gv.T * gv)[0, 0] + S**2 * Xv.trace() - scal[nu])
        p_dot = scal[p_nu] * nu_dot + scal[p_tau]
        expect = sp.Matrix(k, k, lambda i, j: -(scal[ETA] / scal[p] * (full(i, j).T * w_dot)[0, 0]
                                                 - scal[ETA] / scal[p] ** 2 * p_dot * S * (1 if i == j else 0)))
        vals = {DL(): gv, **{DL(self.U[i], self.U[j]): Ns[(i, j)] for i, j in pairs}}
        got = self.Q.xreplace(_dot_subs(vals)).xreplace(scal).xreplace(xs)
        return Check(f"explicit rational vectors in R⁵, X = I + 11ᵀ/3: Q matches the chain rule written out (k = {k})",
                     (got - expect).applyfunc(sp.simplify) == sp.zeros(k, k), f"Q₁₁ = {got[0, 0]}")


def diagonal_rmsprop_central_flow(k: int = 1) -> DiagonalRMSPropCentralFlow:
    """Diagonal RMSProp's central flow with k unstable eigenvalues (per-coordinate form)."""
    return DiagonalRMSPropCentralFlow(k)


def rmsprop_central_flow_multi(k: int = 1) -> ScalarRMSPropCentralFlowMulti:
    """Scalar RMSProp's central flow with k unstable eigenvalues (operator vocabulary)."""
    return ScalarRMSPropCentralFlowMulti(k)
