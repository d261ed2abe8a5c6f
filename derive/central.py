"""Central flows: the time-averaged trajectory of GD at the edge of stability.

Time is counted in steps (τ = k after k GD steps): dw/dτ = −η[∇L + ½ ∇⟨Σ, H⟩].

One unstable eigenvalue (Σ = σ² u uᵀ, so ∇⟨Σ, H⟩ = σ² ∇S): the ansatz
dw/dτ = −η[∇L + ½σ²∇S] and the condition dS/dτ = ⟨∇S, dw/dτ⟩ = 0 are solved by SymPy for σ²,
giving σ² = 2⟨−∇L, ∇S⟩/‖∇S‖² (clipped at 0). The flow is then the projected gradient flow
−η(I − n nᵀ)∇L with n = ∇S/‖∇S‖, along which dL/dτ = −η‖(I − n nᵀ)∇L‖² ≤ 0. GD oscillates
as w + x u with E[x] = 0, E[x²] = σ², so its time-averaged loss is L + ½σ²S = L + σ²/η at
S = 2/η, and its mean squared gradient ‖∇L‖² + σ²S² = ‖∇L‖² + 4σ²/η².

k unstable eigenvalues (U = [u₁ … u_k], Σ = U X Uᵀ): with N_ij = D³L[u_i, u_j] = ∇(u_iᵀHu_j),
Q(X) = −d(UᵀHU)/dτ = A + B[X], A_ij = η⟨N_ij, ∇L⟩, B[X]_ij = (η/2) Σ_kl X_kl ⟨N_ij, N_kl⟩,
and X solves the semidefinite complementarity problem X ⪰ 0, A + B[X] ⪰ 0, ⟨X, A + B[X]⟩ = 0
(the pinned block 2/η·I − UᵀHU stays ⪰ 0). ⟨X, B[X]⟩ = (η/2)‖Σ X_ij N_ij‖² ≥ 0, so B ⪰ 0.

References: Cohen, Damian, Talwalkar, Kolter & Lee, "Understanding Optimization in Deep
Learning with Central Flows" (ICLR 2025), §3 eq. (5)–(8) and §4.
"""
from __future__ import annotations

import itertools
import random

import sympy as sp

from . import _validate
from .ops import DL, Dot, Form, Vec, directional, inner, opstr
from .ops import eta as ETA
from .result import Check, Derivation
from .taylor import S

__all__ = ["CentralFlow", "CentralFlowMulti", "central_flow", "central_flow_multi", "sigma2"]

sigma2 = sp.Dummy("sigma2", real=True)   # a Dummy: never merges with a user's symbol named sigma2
u = Vec("u")
g = DL()
N = DL(u, u)  # ∇S (see derive.taylor.sharpness_gradient)


def _random_vectors(seed, n, count):
    rng = random.Random(seed)
    return [sp.Matrix([sp.Rational(rng.randint(-9, 9), rng.randint(1, 5)) for _ in range(n)])
            for _ in range(count)]


def _dot_subs(values: dict):
    """Replace Dot(a, b) of named atoms by explicit inner products of given columns."""
    out = {}
    for a, b in itertools.combinations_with_replacement(values, 2):
        out[Dot(a, b)] = (values[a].T * values[b])[0, 0]
    return out


class _Formula(Derivation):
    """A named formula with no checks of its own (a part of a larger derivation)."""

    def __init__(self, title, lhs, lhs_latex, expr, kind="vector"):
        self.title, self.lhs, self.lhs_latex, self.expr, self.kind = title, lhs, lhs_latex, expr, kind


class CentralFlow(Derivation):
    """The single-eigenvalue central flow: velocity, σ², and the predictions it makes."""

    def __init__(self):
        ansatz = -ETA * (g + sigma2 / 2 * N)
        self.ansatz = ansatz
        self.dS_dt = sp.expand(inner(N, ansatz))            # dS/dτ = ⟨∇S, dw/dτ⟩
        (sol,) = sp.solve(sp.Eq(self.dS_dt, 0), sigma2)
        self.sigma2_value = sp.factor(sol)
        self.expr = sp.expand(ansatz.xreplace({sigma2: self.sigma2_value}))
        self.dL_dt = sp.expand(inner(g, self.expr))
        self.title = "central flow, one unstable eigenvalue"
        self.lhs, self.lhs_latex = "dw/dτ", r"\frac{dw}{d\tau}"
        self.sigma2 = _Formula("σ² of the central flow", "σ²", r"\sigma^{2}", self.sigma2_value, "scalar")
        self.velocity = self
        self.predicted_loss = _Formula("predicted time-averaged loss", "E[L]", r"\mathbb{E}[L]",
                                       self._average(Form()), "scalar")
        # ⟨g, ∇S⟩ = −½σ²‖∇S‖² on the flow, so σ²⟨g, ∇S⟩ is O(σ⁴): keep terms linear in σ².
        grad2 = self._average(Dot(g, g)).xreplace({Dot(g, N): -sigma2 / 2 * Dot(N, N)})
        grad2 = sp.expand(grad2).series(sigma2, 0, 2).removeO()
        self.predicted_grad_norm2 = _Formula("predicted mean ‖∇L‖²", "E‖∇L‖²", r"\mathbb{E}\|\nabla L\|^2",
                                             grad2, "scalar")

    def _average(self, scalar):
        """E over GD's oscillation w + x u (E x = 0, E x² = σ²), to second order, at S = 2/η."""
        xs = sp.Symbol("x", real=True)
        series = scalar + xs * directional(scalar, u) + xs**2 / 2 * directional(directional(scalar, u), u)
        series = sp.expand(series)
        eigen = {DL(u): S * u}
        series = sp.expand(_apply_eigen(series, eigen)).xreplace({Dot(u, u): 1})  # unit u
        averaged = series.coeff(xs, 0) + sigma2 * series.coeff(xs, 2)
        return sp.expand(averaged.xreplace({S: 2 / ETA}))

    def __str__(self):
        return (f"{self.lhs} = −η[g + ½σ²∇S] with σ² = {opstr(self.sigma2_value)} (clipped at 0), "
                f"∇S = T[u, u]; E[L] = {opstr(self.predicted_loss.expr)}")

    def _checks(self, seed):
        nvec = N / sp.sqrt(Dot(N, N))
        projected = -ETA * (g - nvec * inner(nvec, g))
        diff = sp.expand(self.expr - projected)
        yield Check("σ² solves dS/dτ = 0 and the flow equals −η(I − nnᵀ)∇L (operator identity)",
                    diff == 0 and sp.expand(self.dS_dt.xreplace({sigma2: self.sigma2_value})) == 0,
                    f"σ² = {opstr(self.sigma2_value)}")
        c = Dot(g, N) / Dot(N, N)
        norm2_proj = sp.expand(inner(g - c * N, g - c * N))
        ident = sp.simplify(self.dL_dt + ETA * norm2_proj)
        yield Check("dL/dτ = −η‖(I − nnᵀ)∇L‖² ≤ 0 (operator identity)", ident == 0,
                    f"dL/dτ = {opstr(sp.factor(self.dL_dt))}")
        gv, Nv = _random_vectors(seed, 5, 2)
        vals = _dot_subs({g: gv, N: Nv})
        P = sp.eye(5) - Nv * Nv.T / (Nv.T * Nv)[0, 0]
        s2 = self.sigma2_value.xreplace(vals)
        vel = -ETA * (gv + s2 / 2 * Nv)
        ok = (vel - (-ETA * P * gv)).applyfunc(sp.simplify) == sp.zeros(5, 1) and (Nv.T * vel)[0, 0].equals(0)
        yield Check("explicit random rational vectors in R⁵: velocity = −η P∇L and ⟨∇S, ẇ⟩ = 0", bool(ok),
                    f"σ² = {s2}")
        expected = Form() + sigma2 / ETA
        yield Check("E[L] = L + σ²/η at S = 2/η (second-order average)",
                    sp.expand(self.predicted_loss.expr - expected) == 0, opstr(self.predicted_loss.expr))
        expected_g = Dot(g, g) + 4 * sigma2 / ETA**2
        yield Check("E‖∇L‖² = ‖∇L‖² + 4σ²/η² (second-order average)",
                    sp.expand(self.predicted_grad_norm2.expr - expected_g) == 0,
                    opstr(self.predicted_grad_norm2.expr))


def _apply_eigen(expr, eigen):
    """Use H u = S u inside Dot and Form atoms (Form(u, u) = S, Form(u) = ⟨g, u⟩)."""
    expr = expr.xreplace({Form(u, u): S})
    expr = expr.replace(lambda e: isinstance(e, Dot) and any(a in eigen for a in e.args),
                        lambda e: inner(*[eigen.get(a, a) for a in e.args]))
    return sp.expand(expr)


class CentralFlowMulti(Derivation):
    """The k-eigenvalue central flow: Σ = U X Uᵀ, −d(UᵀHU)/dτ = A + B[X], and its SDCP.

    Attributes:
        X: the symmetric k×k matrix of unknowns X_ij.
        packed: the unknowns X_ij, i ≤ j, in the order used by ``B``.
        A: k×k formulas A_ij = η⟨∇(u_iᵀHu_j), ∇L⟩.
        B: the linear map X ↦ B[X] as a matrix on packed coordinates (rows: packed (i, j)).
        velocity: dw/dτ as a formula in the X_ij.
        velocity_basis: ``(v0, [v_p])`` with dw/dτ = v0 + Σ_p X_p v_p (X_p in ``packed`` order).
        drift: ``"loss"`` (the paper's: the stable part is gradient flow −η∇L) or ``"modified"``
            (−η∇L̃ with L̃ = L + (η/4)‖∇L‖², the order-1 modified loss, which follows GD to O(η²)
            per step instead of O(η) before the edge); A_ij = η⟨N_ij, ∇L or ∇L̃⟩.
    """

    def __init__(self, k: int = 2, drift: str = "loss"):
        if drift not in ("loss", "modified"):
            raise ValueError(f"drift: expected 'loss' or 'modified', got {drift!r}")
        self.drift = drift
        self.k = _validate.check_order(k, name="k", minimum=1, maximum=8)
        self.U = [Vec(f"u{i + 1}") for i in range(k)]
        xs = {}
        for i, j in itertools.combinations_with_replacement(range(k), 2):
            xs[(i, j)] = xs[(j, i)] = sp.Dummy(f"X{i + 1}{j + 1}", real=True)   # never a user's X11
        self.X = sp.Matrix(k, k, lambda i, j: xs[(i, j)])
        self.Nij = sp.Matrix(k, k, lambda i, j: DL(self.U[i], self.U[j]))
        self.drift_vector = g if drift == "loss" else g + ETA / 2 * DL(g)     # ∇L or ∇L̃ = g + (η/2)Hg
        self.velocity = sp.expand(-ETA * (self.drift_vector + sp.Rational(1, 2) * sum(
            (self.X[i, j] * self.Nij[i, j] for i in range(k) for j in range(k)), sp.Integer(0))))
        self.expr = self.velocity
        dUHU = sp.Matrix(k, k, lambda i, j: sp.expand(inner(self.Nij[i, j], self.velocity)))
        self.Q = (-dUHU).applyfunc(sp.expand)                       # −d(UᵀHU)/dτ = A + B[X]
        self.A = self.Q.xreplace({s: 0 for s in self.X.free_symbols})
        self.B_of_X = (self.Q - self.A).applyfunc(sp.expand)
        packed = [self.X[i, j] for i, j in itertools.combinations_with_replacement(range(k), 2)]
        self.packed = packed
        self.B = sp.Matrix([[sp.diff(self.B_of_X[i, j], x) for x in packed]
                            for i, j in itertools.combinations_with_replacement(range(k), 2)])
        self.velocity_basis = (self.velocity.xreplace({x: 0 for x in packed}),
                               [sp.expand(sp.diff(self.velocity, x)) for x in packed])
        self.title = f"central flow, k = {k} unstable eigenvalues" + (", modified-loss drift" if drift != "loss" else "")
        self.lhs, self.lhs_latex = "dw/dτ", r"\frac{dw}{d\tau}"

    @property
    def conditions(self) -> dict:
        """The SDCP written out: principal minors of X and of A + B[X] ≥ 0, and ⟨X, A + B[X]⟩ = 0."""
        return {"X ⪰ 0": [m >= 0 for m in _principal_minors(self.X)],
                "A + B[X] ⪰ 0": [sp.expand(m) >= 0 for m in _principal_minors(self.Q)],
                "⟨X, A + B[X]⟩ = 0": [sp.Eq(sp.expand((self.X * self.Q).trace()), 0)]}

    def __str__(self):
        k = self.k
        rows = [f"dw/dτ = {opstr(self.velocity)}",
                "−d(UᵀHU)/dτ = A + B[X] with " + ", ".join(
                    f"A{i + 1}{j + 1} = {opstr(self.A[i, j])}" for i in range(k) for j in range(i, k)),
                "SDCP: X ⪰ 0, A + B[X] ⪰ 0, ⟨X, A + B[X]⟩ = 0"]
        return "; ".join(rows)

    def _checks(self, seed):
        if self.drift == "modified":
            yield from self._checks_modified(seed)
            return
        k = self.k
        M = sum((self.X[i, j] * self.Nij[i, j] for i in range(k) for j in range(k)), sp.Integer(0))
        quad = sp.expand(sum(self.X[i, j] * self.B_of_X[i, j] for i in range(k) for j in range(k)))
        ident = sp.expand(quad - ETA / 2 * inner(M, M))
        yield Check("⟨X, B[X]⟩ = (η/2)‖Σ X_ij ∇(u_iᵀHu_j)‖² ≥ 0, so B ⪰ 0 (operator identity)",
                    ident == 0, "difference expands to 0")
        x = sp.Symbol("x", real=True)
        single = self.Q.xreplace({p: (x if p == self.X[0, 0] else 0) for p in self.packed})
        (sol,) = sp.solve(sp.Eq(single[0, 0], 0), x)
        u1 = self.U[0]
        expected = CentralFlow().sigma2_value.xreplace({u: u1}).xreplace({DL(u, u): DL(u1, u1)})
        expected = sp.expand(expected.xreplace({Dot(DL(), DL(u, u)): Dot(DL(), DL(u1, u1)),
                                                Dot(DL(u, u), DL(u, u)): Dot(DL(u1, u1), DL(u1, u1))}))
        yield Check("second direction inactive (X = x e₁e₁ᵀ): complementarity gives x = σ² of k = 1",
                    sp.simplify(sol - expected) == 0, f"x = {opstr(sol)}")
        yield self._check_random_sdcp(seed) if k == 2 else self._check_interior_instance(seed)

    def _checks_modified(self, seed):
        """The modified-loss drift: its stable part is η times the order-1 modified field of GD (derived
        by B-series in ``derive.modified``), and the rest is the loss-drift flow with ∇L → ∇L̃."""
        from .modified import modified_vector_field

        v0, basis = self.velocity_basis
        field = modified_vector_field(1).expr
        yield Check("X = 0: dw/dτ = η·f̃₁, the order-1 modified field of GD (B-series), i.e. −η∇(L + (η/4)‖∇L‖²)",
                    sp.expand(v0 - ETA * field) == 0, opstr(v0))
        plain = CentralFlowMulti(self.k)
        shift = ETA / 2 * DL(g)                                          # ∇L̃ − ∇L
        dA = (self.A - plain.A).applyfunc(sp.expand)
        expect = sp.Matrix(self.k, self.k, lambda i, j: sp.expand(ETA * inner(self.Nij[i, j], shift)))
        same_B = (self.B - plain.B).applyfunc(sp.expand) == sp.zeros(*self.B.shape)
        yield Check("A changes by η⟨N_ij, (η/2)Hg⟩ and B not at all (the SDCP's curvature is the loss's)",
                    dA == expect and same_B, f"k = {self.k}")

    def _check_interior_instance(self, seed):
        """Rational data built around X* ≻ 0: solving A + B[X] = 0 recovers X* exactly."""
        k, p = self.k, len(self.packed)
        vecs = _random_vectors(seed, p + 2, p)
        N = {}
        for idx, (i, j) in enumerate(itertools.combinations_with_replacement(range(k), 2)):
            N[(i, j)] = N[(j, i)] = vecs[idx]
        x_star = sp.eye(k) + sp.ones(k, k) / (2 * k)
        gv = -sum((x_star[i, j] * N[(i, j)] for i in range(k) for j in range(k)), sp.zeros(p + 2, 1)) / 2
        vals = {DL(): gv, **{self.Nij[i, j]: N[(i, j)] for i in range(k) for j in range(i, k)}}
        Q = self.Q.xreplace(_dot_subs(vals)).xreplace({ETA: sp.Rational(1, 10)})
        sol = sp.solve(list(Q), self.packed, dict=True)
        ok = len(sol) == 1 and self.X.xreplace(sol[0]) == x_star and x_star.is_positive_definite
        return Check(f"rational data built around X* ≻ 0: A + B[X] = 0 has the unique solution X* (k = {k})",
                     bool(ok), f"X* = {x_star.tolist()}")

    def _check_random_sdcp(self, seed):
        """Exact SDCP solutions for rational data: one coupled (interior), one decoupled."""
        n, eta_v = 4, sp.Rational(1, 10)
        a, b, c = _random_vectors(seed, n, 3)
        found = []
        for coupled in (True, False):
            if coupled:  # ∇L built so that an interior X* ≻ 0 solves it
                cross = (a + c) / 3
                x_star = sp.Matrix([[2, sp.Rational(1, 2)], [sp.Rational(1, 2), 1]])
                gv = -(x_star[0, 0] * a + 2 * x_star[0, 1] * cross + x_star[1, 1] * b) / 2
            else:        # N₁₂ = 0, N₂₂ ⟂ N₁₁ and ⟨N₂₂, ∇L⟩ = 0: u₂ is inactive
                cross = sp.zeros(n, 1)
                b = b - a * (a.T * b)[0, 0] / (a.T * a)[0, 0]
                gv = -a - _orthogonal(a, b, c)
            vals = {DL(): gv, self.Nij[0, 0]: a, self.Nij[1, 1]: b, self.Nij[0, 1]: cross}
            Q = self.Q.xreplace(_dot_subs(vals)).xreplace({ETA: eta_v})
            sol = _solve_sdcp_2x2(Q, self.X)
            if sol is None:
                return Check("exact SDCP solutions for rational data", False,
                             f"{'coupled' if coupled else 'decoupled'}: no solution found")
            found.append(self.X.xreplace(sol))
        coupled_X, decoupled_X = found
        ok = coupled_X.det() > 0 and decoupled_X[0, 0] > 0 and decoupled_X[0, 1] == 0 \
            and decoupled_X[1, 1] == 0
        return Check("rational SDCP instances solved exactly (X ⪰ 0, A + B[X] ⪰ 0, ⟨X, A + B[X]⟩ = 0): "
                     "coupled → full rank, u₂ inactive → rank one", bool(ok),
                     f"X = {coupled_X.tolist()} and {decoupled_X.tolist()}")


def _principal_minors(M):
    k = M.shape[0]
    return [M.extract(list(idx), list(idx)).det()
            for r in range(1, k + 1) for idx in itertools.combinations(range(k), r)]


def _orthogonal(a, b, c):
    """c made orthogonal to a and b (Gram–Schmidt, exact)."""
    for v in (a, b):
        c = c - v * (v.T * c)[0, 0] / (v.T * v)[0, 0]
    return c


def _psd2(m) -> bool:
    return bool(m[0, 0] >= 0 and m[1, 1] >= 0 and m.det() >= 0)


def _solve_sdcp_2x2(Q, X):
    """Search the SDCP's faces for k = 2: X = 0, X = x e_i e_iᵀ, or the interior Q = 0."""
    syms = sorted(X.free_symbols, key=str)
    candidates = [{s: 0 for s in syms}]
    candidates += sp.solve(list(Q), syms, dict=True)
    x = sp.Symbol("x")
    for i in range(2):
        face = {s: 0 for s in syms}
        face[X[i, i]] = x
        for root in sp.solve(Q.xreplace(face)[i, i], x):
            candidates.append({**face, X[i, i]: root})
    for cand in candidates:
        Xs, Qs = X.xreplace(cand), Q.xreplace(cand)
        if all(e.is_number for e in list(Xs) + list(Qs)) and _psd2(Xs) and _psd2(Qs) \
                and (Xs * Qs).trace() == 0:
            return cand
    return None


def central_flow() -> CentralFlow:
    """The single-eigenvalue central flow, with σ² solved from dS/dτ = 0.

    Example:
        >>> cf = central_flow()
        >>> print(cf.sigma2)
        σ² = -2*⟨g, T[u, u]⟩/‖T[u, u]‖²
    """
    return CentralFlow()


def central_flow_multi(k: int = 2, drift: str = "loss") -> CentralFlowMulti:
    """The k-eigenvalue central flow's semidefinite complementarity problem (any k ≤ 8).

    ``drift="modified"`` replaces the stable part −η∇L by −η∇(L + (η/4)‖∇L‖²) (``--cf-drift modified``).

    Example:
        >>> cf = central_flow_multi(2)
        >>> cf.packed          # Dummy symbols: never equal to a user's X11
        [_X11, _X12, _X22]
    """
    return CentralFlowMulti(k, drift)
