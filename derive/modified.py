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

Verification (``verify()``) runs in exact rational arithmetic on a witness loss at a random
rational point (:mod:`derive._flowcheck`). At order p the field check reads f_0..f_p through the
η^1..η^{p+1} coefficients of step − flow: if f_j is the first wrong term, off by δ, the η^{j+1}
coefficient is off by exactly δ. δ is a combination of elementary differentials of trees with
j + 1 nodes; the checks read the jet of L up to order p + 3. So the witness must make every such
combination a non-zero function:

* degree: a generic polynomial of degree p + 3 (``witness(p + 3, n)``), so every D^kL read is a
  full, unstructured symmetric tensor (the former quintic had D⁶L = 0 and missed a wrong D⁶L
  term at order 5);
* dimension: in low dimension distinct elementary differentials are linearly dependent for
  every loss (in 1-D all trees with the same out-degrees coincide), and a wrong combination in
  that span vanishes identically. Rank over random jets: the trees with s nodes are independent
  in 2-D only for s ≤ 6 (s = 7: rank 46 of 48), in 3-D for s ≤ 9 (s = 10: 715 of 719); the
  terms of ½(J − Jᵀ)v, trees with one leaf v, in 3-D for s ≤ 7 (s = 8: 261 of 262) and in 4-D for
  s ≤ 9. Hence 3 variables for fields and losses (trees of ≤ MAX_ORDER + 1 = 7 nodes) and, for
  the obstruction of f_j (v-trees of j + 2 nodes), 3 variables up to j = 5 and 4 at j = 6;
* orders: at most ``MAX_ORDER`` = 6, where the above is established (and ``gdflows derive
  --order`` stops); a non-zero function still vanishes at some points, but for a fixed error
  the random rational point of a generic witness finds it (tests plant a wrong term at every
  order 1..6 and see the check fail);
* ``assume="quadratic"``: only the chains H^k g survive, one per order, non-zero when g ≠ 0 and
  H is invertible, so the 2-D quadratic witness resolves every order.

References: Hairer, Lubich & Wanner (2006) ch. IX; Barrett & Dherin, "Implicit Gradient
Regularization" (ICLR 2021) for L + (η/4)‖∇L‖².
"""
from __future__ import annotations

import random
from fractions import Fraction

import sympy as sp

from . import _trees, _validate
from ._flowcheck import jets_at, witness
from .bseries import ButcherTableau, as_method, modified_equation
from .calculus import antisymmetric_apply, drop_third_and_higher, gradient
from .errors import NotAGradientField
from .ops import DL, Form, Vec, opstr
from .ops import eta as ETA
from .result import Check, Derivation, eta_series

__all__ = [
    "MAX_ORDER",
    "GradientObstruction",
    "ModifiedField",
    "ModifiedLoss",
    "elementary_differential",
    "gradient_orders",
    "modified_loss",
    "modified_vector_field",
]

ASSUMPTIONS = ("general", "quadratic")

#: Highest order accepted: the orders at which ``verify()`` provably sees every wrong term.
MAX_ORDER = 6


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
        order: highest power of η kept, 1 ≤ order ≤ ``MAX_ORDER``.
        method: the Runge–Kutta method (GD = explicit Euler).
        coefficients: ``{tree: Fraction}``, the B-series of the modified field.
        terms: ``[f_0, f_1, ..., f_order]`` as operator formulas (f_0 = −g).
    """

    def __init__(self, order: int, method="euler", assume="general"):
        self.order = _check_order(order)
        self.method: ButcherTableau = as_method(method)
        self.assume = _check_assume(assume)
        self.coefficients = dict(modified_equation(self.method, self.order + 1))
        self.terms = [_field_term(self.coefficients, j, assume) for j in range(self.order + 1)]
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
        p = self.order
        printed = sp.expand(self.expr - sp.Add(*[ETA**j * f for j, f in enumerate(self.terms)]))
        yield Check("formula = Σ η^j f_j, the printed terms", printed == 0,
                    "difference expands to 0" if printed == 0 else f"differs by {opstr(printed)}")
        loss, params = _witness(p, self.assume)
        point = _random_point(seed, len(params))
        jets = jets_at(loss, params, point)
        res = jets.residual(jets.vector(self.expr, p + 1), self.method, p + 2)
        wrong = [m + 1 for m, r in enumerate(res[:p + 1]) if any(r)]
        yield Check(f"{self.method.name} step − time-η flow = O(η^{p + 2}) at a random rational point",
                    not wrong, f"η^1..η^{p + 1} coefficients zero on {_describe(params)} at {point}"
                    if not wrong else f"non-zero η^k coefficients, k = {wrong}, at {point}")
        # the remainder is the first omitted term: non-zero on the witness, unless the method's
        # f_{p+1} is identically zero (rk4 below order 4)
        following = _field_term(dict(modified_equation(self.method, p + 2)), p + 1, self.assume)
        expected = [jets.coefficient(c, 0) for c in jets.vector(following, 0)]
        got = res[p + 1]
        what = "≠ 0: the witness resolves it" if following != 0 else f"= 0 for {self.method.name}"
        yield Check(f"and the η^{p + 2} coefficient is the next term f_{p + 1} ({what})",
                    got == expected and (any(expected) or following == 0),
                    f"η^{p + 2} coefficient ≈ {_approx(got)}, f_{p + 1} ≈ {_approx(expected)}")


class GradientObstruction(Derivation):
    """½(J − Jᵀ)v for the order-j correction f_j: zero for all v iff f_j is a gradient.

    ``order`` (j) is at most ``MAX_ORDER``.
    """

    def __init__(self, order: int, method="euler"):
        self.order = _check_order(order)
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
        # v-trees of order + 2 nodes are independent in 3-D up to 7 nodes, in 4-D up to 9
        loss, params = witness(self.order + 3, 3 if self.order <= 5 else 4)
        point = _random_point(seed, len(params))
        jets = jets_at(loss, params, point, ("v",))
        n, v = len(params), jets.inputs["v"]
        f = jets.vector(self.field, 1)                        # f_j to first order at the point
        J = [[jets.derivative_at_point(fi, k) for k in range(n)] for fi in f]
        A = [[(J[i][k] - J[k][i]) / 2 for k in range(n)] for i in range(n)]
        concrete = [sum((A[i][k] * v[k] for k in range(n)), jets.R.zero) for i in range(n)]
        formula = jets.vector(self.expr, 0)
        yield Check("formula = ½(J − Jᵀ)v of the concrete Jacobian (exact, for every v)",
                    formula == concrete, f"{_describe(params)} at {point}")
        nonzero = any(a != 0 for row in A for a in row)
        if self.vanishes:
            yield Check("antisymmetric part vanishes at a random rational point", not nonzero, str(point))
        else:
            yield Check("antisymmetric part is non-zero at a random rational point (no loss exists)",
                        nonzero, f"at {point}: ½(J − Jᵀ) ≈ [{', '.join(_approx(row) for row in A)}]")


def gradient_orders(max_order: int = 4, method="euler", assume="general") -> dict[int, bool]:
    """For each order j ≤ max_order (≤ ``MAX_ORDER``), whether f_j is a gradient field in general."""
    max_order = _check_order(max_order, name="max_order")
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

    ``order`` is at most ``MAX_ORDER``; ``corrections`` is ``[P_1, ..., P_order]``.

    Raises:
        NotAGradientField: at the first order j whose correction f_j is not a gradient.
    """

    kind = "scalar"

    def __init__(self, order: int, method="euler", assume="general"):
        self.order = _check_order(order)
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
        printed = sp.expand(self.expr - sp.Add(*[ETA**j * P for j, P in enumerate(self.series_terms)]))
        yield Check("formula = L + Σ η^j P_j, the printed corrections", printed == 0,
                    "difference expands to 0" if printed == 0 else f"differs by {opstr(printed)}")
        rhs = gradient(self.expr)
        field = self.field.expr
        if self.assume == "quadratic":
            rhs = drop_third_and_higher(rhs)
        ident = sp.expand(-rhs - field)
        yield Check("−∇L_η = f̃ as an operator identity (any n)", ident == 0,
                    "difference expands to 0" if ident == 0 else opstr(ident))
        p = self.order
        loss, params = _witness(p, self.assume)
        point = _random_point(seed, len(params))
        jets = jets_at(loss, params, point)
        L_eta = jets.value(self.expr, p + 2)
        g_eta = [-L_eta.diff(x) for x in jets.x]              # exact jets of weight p + 1
        same = g_eta == jets.vector(field, p + 1)
        yield Check("−∇L_η = f̃ on a generic loss (exact jets at a random rational point)", same,
                    f"{_describe(params)} at {point}")
        res = jets.residual(g_eta, self.method, p + 2)
        wrong = [m + 1 for m, r in enumerate(res[:p + 1]) if any(r)]
        yield Check(f"gradient flow on L_η matches the {self.method.name} step to O(η^{p + 2})",
                    not wrong, f"at {point}" if not wrong else f"non-zero η^k coefficients, k = {wrong}, at {point}")


def _check_order(order, name="order"):
    return _validate.check_order(order, name=name, minimum=1, maximum=MAX_ORDER)


def _field_term(coefficients, j, assume):
    """f_j = Σ_{|t| = j+1} b(t) F(t) from the B-series coefficients."""
    term = sp.Add(*[_rat(c) * elementary_differential(t)
                    for t, c in coefficients.items() if _trees.size(t) == j + 1])
    return drop_third_and_higher(term) if assume == "quadratic" else term


_QX, _QY = sp.symbols("x y", real=True)
#: For ``assume="quadratic"``: H invertible, and only chains H^k g occur.
_QUADRATIC_WITNESS = (sp.Rational(3, 2) * _QX**2 + sp.Rational(2, 3) * _QX * _QY + sp.Rational(5, 4) * _QY**2
                     - sp.Rational(1, 2) * _QX + sp.Rational(1, 3) * _QY, (_QX, _QY))


def _witness(order, assume):
    """The loss the order-``order`` checks run on (see the module docstring)."""
    return _QUADRATIC_WITNESS if assume == "quadratic" else witness(order + 3, 3)


def _approx(values):
    return "[" + ", ".join(f"{float(v):.4g}" if v else "0" for v in values) + "]"


def _describe(params):
    return "the quadratic witness" if params == _QUADRATIC_WITNESS[1] else \
        f"a generic polynomial witness in {len(params)} variables"


def modified_vector_field(order: int, method="euler", assume="general") -> ModifiedField:
    """The modified field of GD (or an explicit RK method) up to η^order.

    Args:
        order: highest power of η kept, 1 ≤ order ≤ ``MAX_ORDER`` = 6: the orders at which
            ``verify()`` sees every wrong term (see the module docstring).
        method: ``"euler"``/``"gd"``, ``"midpoint"``, ``"heun"``, ``"rk3"``, ``"rk4"`` or a
            :class:`~derive.bseries.ButcherTableau`.
        assume: ``"general"`` or ``"quadratic"`` (drop D^kL, k ≥ 3).

    Example:
        >>> print(modified_vector_field(2))
        f̃ = -g − η·Hg/2 − η²·(H²g/3 + T[g, g]/12)

    References: Hairer, Lubich & Wanner (2006), ch. IX.1, eq. (1.9) for explicit Euler.
    """
    return ModifiedField(order, method, assume)


def modified_loss(order: int = 1, method="euler", assume="general") -> ModifiedLoss:
    """The loss whose gradient flow is the modified field, where one exists.

    In general only order 1 exists for GD: L_η = L + (η/4)‖∇L‖². For quadratic L
    (``assume="quadratic"``) every order exists. See the module docstring for the evidence.

    Args:
        order: highest power of η kept, 1 ≤ order ≤ ``MAX_ORDER`` = 6.
        method: as for :func:`modified_vector_field`.
        assume: ``"general"`` or ``"quadratic"``.

    Example:
        >>> print(modified_loss(1))
        L_η = L + η·‖g‖²/4

    Raises:
        NotAGradientField: naming the first order whose correction is not a gradient.
    """
    return ModifiedLoss(order, method, assume)
