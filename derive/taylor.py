"""Taylor expansion of the gradient along a direction, and the gradient of the sharpness.

∇L(w + x u) = Σ_k x^k/k! D^{k+1}L(w)[u, …, u]: each coefficient comes from differentiating the
previous one along u with u held fixed (the chain rule in :func:`derive.ops.directional`).

For a simple top eigenvalue S = λ_max(H) with unit eigenvector u, S = ⟨u, H u⟩; differentiating
with u moving, the eigen-relation H u = S u and ⟨u, u'⟩ = 0 remove u', leaving
∇S = D³L[u, u]. Hence ∇L(w + x u) = ∇L + x S u + ½ x² ∇S + O(x³).

References: Cohen et al., "Understanding Optimization in Deep Learning with Central Flows"
(ICLR 2025), §3; Damian, Nichani & Lee, "Self-Stabilization" (ICLR 2023).
"""
from __future__ import annotations

import random

import mpmath
import sympy as sp

from . import _validate
from .instantiate import Instantiator
from .ops import DL, Dot, Form, Vec, directional, oplatex
from .result import Check, Derivation, eta_series

__all__ = ["S", "SharpnessGradient", "TaylorGradient", "gradient_taylor", "sharpness_gradient", "x"]

x = sp.Dummy("x", real=True)   # a Dummy: never equal to a user's parameter named x
S = sp.Dummy("S", real=True)
u = Vec("u")

# A smooth, non-polynomial loss in three variables, for checks that need transcendental terms.
_a, _b, _c = sp.symbols("a b c", real=True)
SMOOTH_WITNESS = (sp.exp(_a * _b) / 3 + sp.sin(_a) * _c**2 + sp.log(1 + _b**2) * _a
                  + sp.Rational(1, 4) * (_a * _b * _c - 1) ** 2, (_a, _b, _c))


class TaylorGradient(Derivation):
    """∇L(w + x u) = Σ_{k < order} x^k/k! D^{k+1}L[u^k] + O(x^order)."""

    def __init__(self, order: int = 3):
        self.order = _validate.check_order(order, name="order", minimum=1)
        terms = [DL()]
        for _ in range(1, self.order):
            terms.append(directional(terms[-1], u))
        self.terms = terms
        self.expr = sp.Add(*[x**k / sp.factorial(k) * t for k, t in enumerate(terms)])
        self.title = f"Taylor expansion of ∇L along u, order {self.order}"
        self.lhs, self.lhs_latex = "∇L(w + x u)", r"\nabla L(w + x u)"

    def _coefficients(self):
        return [t / sp.factorial(k) for k, t in enumerate(self.terms)]

    def __str__(self):
        sup = str(self.order).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
        return f"{self.lhs} = {eta_series(self._coefficients(), var='x')} + O(x{sup})"

    def latex(self):
        body = eta_series(self._coefficients(), oplatex, "x", latex=True)
        return f"{self.lhs_latex} = {body} + O(x^{{{self.order}}})"

    def _checks(self, seed):
        loss, params = SMOOTH_WITNESS
        uvec = sp.Matrix(sp.symbols(f"u0:{len(params)}", real=True))
        shifted = loss.xreplace({p: p + x * uvec[i] for i, p in enumerate(params)})
        grad_shifted = sp.Matrix([sp.diff(loss, p) for p in params]).xreplace(
            {p: p + x * uvec[i] for i, p in enumerate(params)})
        del shifted
        inst = Instantiator(loss, params, vectors={"u": uvec})
        ok = True
        for k, term in enumerate(self.terms):
            direct = sp.diff(grad_shifted, x, k).xreplace({x: 0})
            ok &= (direct - inst.vector(term)).applyfunc(sp.expand) == sp.zeros(len(params), 1)
        yield Check(f"coefficients of x^0..x^{self.order - 1} = d^k/dx^k ∇L(w + x u)|₀ / k! "
                    "(exact, non-polynomial loss, symbolic u)", bool(ok), "differences expand to 0")
        rng = random.Random(seed)
        point = {s: sp.Rational(rng.randint(-5, 5), rng.randint(1, 5)) for s in list(params) + list(uvec)}
        next_term = sp.diff(grad_shifted, x, self.order).xreplace({x: 0}).xreplace(point)
        yield Check(f"the x^{self.order} term is non-zero at a random rational point (order is sharp)",
                    any(sp.N(e, 30) != 0 for e in next_term), str(list(sp.N(next_term, 6))))


class SharpnessGradient(Derivation):
    """∇S = D³L[u, u] for a simple top eigenvalue S with unit eigenvector u."""

    def __init__(self):
        v, du = Vec("v"), Vec("du")
        dS = directional(Dot(u, DL(u)), v, moving={u: du})   # d/dε ⟨u, H u⟩ along v
        eigen = {Dot(du, DL(u)): S * Dot(du, u), Dot(u, DL(du)): S * Dot(u, du)}
        dS = sp.expand(dS.xreplace(eigen)).xreplace({Dot(u, du): 0})  # ⟨u, u'⟩ = 0
        self.derivative = dS
        self.expr = _coefficient_of_direction(dS, v)
        self.title = "gradient of the sharpness"
        self.lhs, self.lhs_latex = "∇S", r"\nabla S"

    def taylor_at_eigenvector(self) -> str:
        """∇L(w + x u) = ∇L + x S u + ½ x² ∇S + O(x³) with u the top eigenvector."""
        coeffs = [c.xreplace({DL(u): S * u, DL(u, u): sp.Symbol("∇S")})
                  for c in TaylorGradient(3)._coefficients()]
        return f"∇L(w + x u) = {eta_series(coeffs, var='x')} + O(x³)"

    def _checks(self, seed):
        yield _check_2d_exact(self.expr, seed)
        yield _check_3d_high_precision(self.expr, seed)


def _coefficient_of_direction(scalar, v: Vec):
    """The vector c with scalar = ⟨v, c⟩, for scalars linear in v built from Dot/Form."""
    out = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(scalar)):
        factors = sp.Mul.make_args(term)
        hit = [f for f in factors if v in f.atoms(Vec)]
        rest = sp.Mul(*[f for f in factors if f not in hit])
        if len(hit) != 1:
            raise ValueError(f"scalar: term {term} is not linear in {v}")
        atom = hit[0]
        if isinstance(atom, Dot) and v in atom.args:
            other = atom.args[1] if atom.args[0] == v else atom.args[0]
            out += rest * other
        elif isinstance(atom, Dot) and isinstance(atom.args[0], Vec) and isinstance(atom.args[1], DL):
            args = atom.args[1].args + (atom.args[0],)           # ⟨a, D L[b..]⟩ = D L[a, b..]
            out += rest * _coefficient_of_direction(Form(*args), v)
        elif isinstance(atom, Dot) and isinstance(atom.args[1], Vec) and isinstance(atom.args[0], DL):
            args = atom.args[0].args + (atom.args[1],)
            out += rest * _coefficient_of_direction(Form(*args), v)
        elif isinstance(atom, Form) and v in atom.args:
            others = list(atom.args)
            others.remove(v)
            out += rest * DL(*others)
        else:
            raise ValueError(f"scalar: cannot isolate {v} in {atom}")
    return sp.expand(out)


def _check_2d_exact(expr, seed):
    """Exact check in Q(√q): ∇ of the closed-form top eigenvalue of a 2×2 Hessian."""
    p, q = sp.symbols("p q", real=True)
    loss = p**4 / 4 + p**2 * q / 2 + q**3 / 3 - p * q**2 / 5 + sp.Rational(3, 2) * q**2
    H = sp.hessian(loss, (p, q))
    tr, det = H.trace(), H.det()
    lam = tr / 2 + sp.sqrt((tr / 2) ** 2 - det)
    grad_lam = sp.Matrix([sp.diff(lam, s) for s in (p, q)])
    rng = random.Random(seed)
    pt = {p: sp.Rational(rng.randint(1, 9), rng.randint(1, 5)), q: sp.Rational(rng.randint(1, 9), rng.randint(1, 5))}
    Hn, lam_n = H.xreplace(pt), sp.radsimp(lam.xreplace(pt))
    vec = sp.Matrix([Hn[0, 1], lam_n - Hn[0, 0]])           # eigenvector for lam (unnormalized)
    unit = vec / sp.sqrt((vec.T * vec)[0, 0])
    formula = Instantiator(loss, (p, q), vectors={"u": unit}).vector(expr).xreplace(pt)
    diff = [sp.nsimplify(sp.radsimp(sp.expand(e))) for e in (grad_lam.xreplace(pt) - formula)]
    ok = all(sp.simplify(sp.radsimp(d)) == 0 for d in diff)
    return Check("∇λ_max (closed form, 2×2) = D³L[u, u] exactly at a random rational point",
                 ok, f"at {pt}, λ_max = {lam_n}")


def _check_3d_high_precision(expr, seed):
    """3-D check at 40 digits: central differences of λ_max vs D³L[u, u]."""
    loss, params = SMOOTH_WITNESS
    H = sp.hessian(loss, params)
    H_fn = sp.lambdify(params, H, modules="mpmath")
    rng = random.Random(seed)
    pt = [mpmath.mpf(rng.randint(-9, 9)) / rng.randint(2, 9) for _ in params]
    with mpmath.workdps(50):
        def top(*w):
            evals, evecs = mpmath.eigsy(mpmath.matrix(H_fn(*w)))
            i = max(range(len(params)), key=lambda k: evals[k])
            return evals[i], evecs[:, i]
        _, vec = top(*pt)
        grad_num = [mpmath.diff(lambda t, k=k: top(*[pt[j] + (t if j == k else 0) for j in range(len(pt))])[0], 0)
                    for k in range(len(pt))]
        uvec = sp.Matrix([sp.Float(vec[i], 50) for i in range(len(params))])
        formula = Instantiator(loss, params, vectors={"u": uvec}).vector(expr)
        formula = formula.xreplace({p: sp.Float(pt[i], 50) for i, p in enumerate(params)})
        err = max(abs(sp.N(formula[i], 40) - sp.Float(grad_num[i], 40)) for i in range(len(params)))
    return Check("∇λ_max (3-D, smooth loss, numerical derivative at 50 digits) = D³L[u, u]",
                 err < 1e-25, f"max error {sp.N(err, 3)}")


def gradient_taylor(order: int = 3) -> TaylorGradient:
    """∇L(w + x u) up to O(x^order) in terms of derivative tensors of L at w.

    Example:
        >>> print(gradient_taylor(3))
        ∇L(w + x u) = g + x·Hu + x²·T[u, u]/2 + O(x³)
    """
    return TaylorGradient(order)


def sharpness_gradient() -> SharpnessGradient:
    """∇S = D³L[u, u], derived by differentiating S = ⟨u, Hu⟩ along an eigenvector.

    Example:
        >>> print(sharpness_gradient())
        ∇S = T[u, u]
    """
    return SharpnessGradient()
