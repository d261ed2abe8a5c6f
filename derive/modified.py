"""Modified equations and modified losses of gradient descent (and explicit Runge–Kutta methods).

GD, w ← w − η∇L, is explicit Euler with step η on the gradient field f = −∇L. Its modified
field f̃ = −g + η f₁ + η² f₂ + … is the field whose time-η flow matches the step to
O(η^{order+2}). It is derived from the method's B-series (:mod:`derive.bseries`); each rooted
tree t becomes its elementary differential, which for f = −∇L is (−1)^{|t|} times a nested
contraction of derivatives of L (e.g. the tree [•] gives H g, [•,•] gives −T[g, g]).

Which corrections are gradients? Written over derivatives of a symmetric loss, the field term of
a rooted tree is a tensor network; ∇ of the scalar network of a free tree t is −Σ_x F(t rooted
at x). So the order-j correction Σ c_τ F(τ) is a gradient in general exactly when, within each
free-tree class, c_τ is proportional to the number of nodes whose rooting gives τ. For GD:

    order 1: yes  (f₁ = −½Hg = −∇(¼‖g‖²), so L_η = L + (η/4)‖∇L‖²)
    order 2: no   (½(J − Jᵀ)v = (1/12)(T[g, Hv] − H T[g, v]), non-zero for a generic loss)
    order 3: no,  order 4: no   (same test; see ``gradient_orders``)
    quadratic L (D³L = 0): every order is a gradient,
                L_η = L + Σ_j η^j gᵀH^{j−1}g / (2(j+1)) = L + η‖g‖²/4 + η²gᵀHg/6 + η³gᵀH²g/8 + …
                (the field is the series of (1/η) log(I − ηH) applied to w − w*)
    1-D and separable losses: every order (every 1-D field is a gradient).

Evidence: the tree criterion above, the operator identity −∇L_η = f̃ checked exactly, and for
each failing order a concrete loss whose Jacobian of f_j is not symmetric at a rational point
(``modified_loss(order).verify()`` / ``GradientObstruction.verify()``).

References: Hairer, Lubich & Wanner (2006) ch. IX; Barrett & Dherin, "Implicit Gradient
Regularization" (ICLR 2021) for L + (η/4)‖∇L‖².
"""
from __future__ import annotations

import random
from fractions import Fraction

import sympy as sp
from sympy import QQ
from sympy.polys.rings import ring

from . import _trees, _validate
from ._flowcheck import WITNESS_LOSS, WITNESS_PARAMS, step_vs_flow
from .bseries import ButcherTableau, as_method, modified_equation
from .calculus import antisymmetric_apply, drop_third_and_higher, gradient
from .errors import NotAGradientField
from .instantiate import Instantiator
from .ops import DL, Form, Vec, opstr
from .ops import eta as ETA
from .result import Check, Derivation, eta_series

__all__ = [
    "GradientObstruction",
    "ModifiedField",
    "ModifiedLoss",
    "elementary_differential",
    "gradient_orders",
    "modified_loss",
    "modified_vector_field",
]

ASSUMPTIONS = ("general", "quadratic")


def _rat(c: Fraction) -> sp.Rational:
    return sp.Rational(c.numerator, c.denominator)


def _positive_part(t):
    return DL(*[_positive_part(c) for c in t])


def elementary_differential(t) -> sp.Expr:
    """F(t) for f = −∇L: (−1)^{|t|} times the nested contraction D^{m+1}L[...] of the tree."""
    return (-1) ** _trees.size(t) * _positive_part(t)


def _scalar_of_free_tree(t) -> sp.Expr:
    """S(t) = D^m L[F(τ₁), …, F(τ_m)] rooted at a center; ∇S(t) = −Σ_x F(t rooted at x)."""
    c = _trees.center_rooting(t)
    return (-1) ** (_trees.size(c) - 1) * Form(*[_positive_part(s) for s in c])


def _random_point(seed, n):
    rng = random.Random(seed)
    return tuple(sp.Rational(rng.randint(-9, 9), rng.randint(1, 9)) for _ in range(n))


def _check_assume(assume):
    if assume not in ASSUMPTIONS:
        raise _validate.DeriveInputError(
            f"assume: unknown value {assume!r}; expected one of {list(ASSUMPTIONS)}")
    return assume


class ModifiedField(Derivation):
    """f̃ = Σ_{j ≤ order} η^j f_j, matching one method step to O(η^{order+2}).

    Attributes:
        order: highest power of η kept.
        method: the Runge–Kutta method (GD = explicit Euler).
        coefficients: ``{tree: Fraction}``, the B-series of the modified field.
        terms: ``[f_0, f_1, ..., f_order]`` as operator formulas (f_0 = −g).
    """

    def __init__(self, order: int, method="euler", assume="general"):
        self.order = _validate.check_order(order, name="order", minimum=1)
        self.method: ButcherTableau = as_method(method)
        self.assume = _check_assume(assume)
        self.coefficients = dict(modified_equation(self.method, self.order + 1))
        self.terms = []
        for j in range(self.order + 1):
            term = sp.Add(*[_rat(c) * elementary_differential(t)
                            for t, c in self.coefficients.items() if _trees.size(t) == j + 1])
            self.terms.append(drop_third_and_higher(term) if assume == "quadratic" else term)
        self.expr = sp.Add(*[ETA**j * f for j, f in enumerate(self.terms)])
        self.title = f"modified field of {self.method.name}, order {self.order}"
        self.lhs = "f̃" if self.method.name == "euler" else f"f̃_{self.method.name}"
        self.lhs_latex = r"\tilde f"

    def term(self, j: int) -> sp.Expr:
        """The η^j coefficient f_j."""
        return self.terms[j]

    @property
    def series_terms(self):
        return self.terms

    def __str__(self):
        return f"{self.lhs} = {eta_series(self.terms)}"

    def _checks(self, seed):
        loss, params = WITNESS_LOSS, WITNESS_PARAMS
        if self.assume == "quadratic":
            loss = _quadratic_witness()
        field = Instantiator(loss, params, ETA).value(self.expr)
        point = _random_point(seed, len(params))
        p = self.order
        res = step_vs_flow(list(field), loss, params, self.method, p + 2, point=point)
        agree = all(r == sp.zeros(*r.shape) for r in res[:p + 1])
        beyond = res[p + 1] != sp.zeros(*res[p + 1].shape)
        yield Check(f"{self.method.name} step − time-η flow = O(η^{p + 2}) at a random rational point",
                    agree, f"η^1..η^{p + 1} coefficients zero at {point}")
        yield Check(f"and not O(η^{p + 3}) on a generic loss", beyond,
                    f"η^{p + 2} coefficient = {list(res[p + 1])}")


class GradientObstruction(Derivation):
    """½(J − Jᵀ)v for the order-j correction f_j: zero for all v iff f_j is a gradient."""

    def __init__(self, order: int, method="euler"):
        self.order = _validate.check_order(order, name="order", minimum=1)
        self.method = as_method(method)
        self.field = ModifiedField(self.order, self.method).term(self.order)
        self.expr = antisymmetric_apply(self.field, Vec("v"))
        self.title = f"non-symmetric part of ∂f_{self.order} ({self.method.name})"
        self.lhs = f"½(J − Jᵀ)v for f{self.order}"
        self.lhs_latex = rf"\tfrac12 (J - J^\top) v \text{{ for }} f_{{{self.order}}}"

    @property
    def vanishes(self) -> bool:
        return self.expr == 0

    def _checks(self, seed):
        loss, params = WITNESS_LOSS, WITNESS_PARAMS
        v = sp.symbols(f"v0:{len(params)}", real=True)
        R, *gens = ring(list(params) + list(v), QQ)        # exact polynomial arithmetic
        xs, vs = gens[:len(params)], gens[len(params):]
        f = [R.from_expr(e) for e in Instantiator(loss, params, ETA).vector(self.field)]
        Jv = [sum((fi.diff(xj) * vj for xj, vj in zip(xs, vs)), R.zero) for fi in f]
        JTv = [sum((f[i].diff(xs[j]) * vs[i] for i in range(len(f))), R.zero) for j in range(len(f))]
        concrete = [(a - b) * QQ(1, 2) for a, b in zip(Jv, JTv)]
        formula = Instantiator(loss, params, ETA, {"v": sp.Matrix(v)}).vector(self.expr)
        same = all(R.from_expr(e) == c if e != 0 else c == 0 for e, c in zip(formula, concrete))
        yield Check("formula = ½(J − Jᵀ)v of the concrete Jacobian (exact, generic quintic loss)",
                    same, "polynomial identity in (x, y, v)")
        point = _random_point(seed, len(params))
        at = [c.evaluate(list(zip(xs, point))) if c else 0 for c in concrete]
        nonzero = any(a != 0 for a in at)
        if self.vanishes:
            yield Check("antisymmetric part vanishes at a random rational point", not nonzero, str(point))
        else:
            yield Check("antisymmetric part is non-zero at a random rational point (no loss exists)",
                        nonzero, f"at {point}: ½(J − Jᵀ)v = {[str(a) for a in at]}")


def gradient_orders(max_order: int = 4, method="euler", assume="general") -> dict[int, bool]:
    """For each order j ≤ max_order, whether f_j is a gradient field in general."""
    out = {}
    for j in range(1, max_order + 1):
        out[j] = _potential(ModifiedField(j, method, assume), j, assume) is not None
    return out


def _potential(field: ModifiedField, j: int, assume: str):
    """P_j with f_j = −∇P_j from the free-tree criterion, or None if f_j is not a gradient."""
    classes: dict = {}
    for t, c in field.coefficients.items():
        if _trees.size(t) != j + 1:
            continue
        if assume == "quadratic" and _trees.max_children(t) > 1:
            continue
        classes.setdefault(_trees.free_class(t), {})[t] = c
    potential = sp.Integer(0)
    for cls, coeffs in classes.items():
        mult = _trees.rootings(cls)
        if assume == "quadratic":
            mult = {t: m for t, m in mult.items() if _trees.max_children(t) <= 1}
        alpha = None
        for t, m in mult.items():
            ratio = coeffs.get(t, Fraction(0)) / m
            if alpha is None:
                alpha = ratio
            elif ratio != alpha:
                return None
        if set(coeffs) - set(mult):
            return None
        potential += _rat(alpha) * _scalar_of_free_tree(cls)
    return potential


class ModifiedLoss(Derivation):
    """L_η = L + η P₁ + … + η^order P_order with −∇L_η = the modified field f̃.

    Raises:
        NotAGradientField: at the first order j whose correction f_j is not a gradient.
    """

    kind = "scalar"

    def __init__(self, order: int, method="euler", assume="general"):
        self.order = _validate.check_order(order, name="order", minimum=1)
        self.method = as_method(method)
        self.assume = _check_assume(assume)
        self.field = ModifiedField(self.order, self.method, assume)
        self.corrections = []
        for j in range(1, self.order + 1):
            p = _potential(self.field, j, assume)
            if p is None:
                obstruction = GradientObstruction(j, self.method)
                raise NotAGradientField(
                    j, f"½(J − Jᵀ)v = {opstr(obstruction.expr)} ≠ 0 for a generic loss "
                       f"({self.method.name}); a modified loss exists only up to order {j - 1}",
                    antisymmetric_part=obstruction.expr)
            self.corrections.append(p)
        self.expr = Form() + sp.Add(*[ETA ** (j + 1) * p for j, p in enumerate(self.corrections)])
        suffix = ", quadratic L" if assume == "quadratic" else ""
        self.title = f"modified loss of {self.method.name}, order {self.order}{suffix}"
        self.lhs, self.lhs_latex = "L_η", r"L_\eta"

    @property
    def series_terms(self):
        return [Form()] + self.corrections

    def __str__(self):
        return f"{self.lhs} = {eta_series(self.series_terms)}"

    def _checks(self, seed):
        rhs = gradient(self.expr)
        field = self.field.expr
        if self.assume == "quadratic":
            rhs = drop_third_and_higher(rhs)
        ident = sp.expand(-rhs - field)
        yield Check("−∇L_η = f̃ as an operator identity (any n)", ident == 0,
                    "difference expands to 0" if ident == 0 else opstr(ident))
        loss, params = (_quadratic_witness(), WITNESS_PARAMS) if self.assume == "quadratic" \
            else (WITNESS_LOSS, WITNESS_PARAMS)
        inst = Instantiator(loss, params, ETA)
        L_eta = inst.value(self.expr)
        f = inst.value(field)
        g_eta = sp.Matrix([-sp.diff(L_eta, p) for p in params])
        concrete = (g_eta - f).applyfunc(sp.expand)
        yield Check("−∇L_η = f̃ on a concrete loss (SymPy diff, exact)", concrete == sp.zeros(*f.shape),
                    "difference expands to 0")
        point = _random_point(seed, len(params))
        res = step_vs_flow(list(g_eta), loss, params, self.method, self.order + 2, point=point)
        ok = all(r == sp.zeros(*r.shape) for r in res[:self.order + 1])
        yield Check(f"gradient flow on L_η matches the {self.method.name} step to O(η^{self.order + 2})",
                    ok, f"at {point}")


def _quadratic_witness():
    x, y = WITNESS_PARAMS
    return (sp.Rational(3, 2) * x**2 + sp.Rational(2, 3) * x * y + sp.Rational(5, 4) * y**2
            - sp.Rational(1, 2) * x + sp.Rational(1, 3) * y)


def modified_vector_field(order: int, method="euler", assume="general") -> ModifiedField:
    """The modified field of GD (or an explicit RK method) up to η^order.

    Args:
        order: highest power of η kept (≥ 1).
        method: ``"euler"``/``"gd"``, ``"midpoint"``, ``"heun"``, ``"rk3"``, ``"rk4"`` or a
            :class:`~derive.bseries.ButcherTableau`.
        assume: ``"general"`` or ``"quadratic"`` (drop D^kL, k ≥ 3).

    Example:
        >>> print(modified_vector_field(2).term(2))
        -H²g/3 - T[g, g]/12

    References: Hairer, Lubich & Wanner (2006), ch. IX.1, eq. (1.9) for explicit Euler.
    """
    return ModifiedField(order, method, assume)


def modified_loss(order: int = 1, method="euler", assume="general") -> ModifiedLoss:
    """The loss whose gradient flow is the modified field, where one exists.

    In general only order 1 exists for GD: L_η = L + (η/4)‖∇L‖². For quadratic L
    (``assume="quadratic"``) every order exists. See the module docstring for the evidence.

    Example:
        >>> print(modified_loss(1))
        L_η = L + η*‖g‖²/4

    Raises:
        NotAGradientField: naming the first order whose correction is not a gradient.
    """
    return ModifiedLoss(order, method, assume)
