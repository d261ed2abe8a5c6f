"""B-series of explicit Runge–Kutta methods and their modified equations.

The one-step map of an explicit Runge–Kutta method applied to y' = f(y) is a B-series
y₁ = y + Σ_t h^{|t|} a(t) F(t)(y) over rooted trees t. Its modified equation
ỹ' = Σ_t h^{|t|-1} b(t) F(t)(ỹ) is the field whose exact time-h flow reproduces that series.
We solve for b order by order: the flow of the field is computed with the pre-Lie (grafting)
product, and b(t) for |t| = n is the only unknown entering the order-n coefficient linearly.

References: Hairer, Lubich & Wanner, *Geometric Numerical Integration* (2006), ch. IX.1 and
IX.9; Ketcheson & Ranocha, BSeries.jl (``modified_equation``).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cache

from . import _trees
from ._trees import LEAF, Series, Tree
from .errors import DeriveInputError

__all__ = ["METHODS", "ButcherTableau", "as_method", "method_series", "modified_equation"]


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge–Kutta method y₁ = y + h Σ_i b_i k_i, k_i = f(y + h Σ_{j<i} a_ij k_j).

    Args:
        a: strictly lower-triangular stage matrix (rows of rationals).
        b: weights.
        name: label used in formulas and reports.
    """

    a: tuple[tuple[Fraction, ...], ...]
    b: tuple[Fraction, ...]
    name: str = "rk"

    def __post_init__(self):
        s = len(self.b)
        if s == 0:
            raise DeriveInputError("method: a Butcher tableau needs at least one stage")
        if len(self.a) != s or any(len(row) != s for row in self.a):
            raise DeriveInputError(f"method: stage matrix must be {s}x{s} to match {s} weights")
        for i, row in enumerate(self.a):
            if any(row[j] != 0 for j in range(i, s)):
                raise DeriveInputError("method: only explicit methods (strictly lower-triangular a)")

    @classmethod
    def from_lists(cls, a, b, name="rk") -> ButcherTableau:
        """Build from nested lists of ints/Fractions/strings like ``"1/2"``."""
        try:
            fa = tuple(tuple(Fraction(x) for x in row) for row in a)
            fb = tuple(Fraction(x) for x in b)
        except (TypeError, ValueError) as err:
            raise DeriveInputError(f"method: tableau entries must be rational numbers ({err})") from None
        return cls(fa, fb, name)


def _tab(a, b, name):
    return ButcherTableau.from_lists(a, b, name)


METHODS: dict[str, ButcherTableau] = {
    "euler": _tab([[0]], [1], "euler"),
    "midpoint": _tab([[0, 0], ["1/2", 0]], [0, 1], "midpoint"),
    "heun": _tab([[0, 0], [1, 0]], ["1/2", "1/2"], "heun"),
    "rk3": _tab([[0, 0, 0], ["1/2", 0, 0], [-1, 2, 0]], ["1/6", "2/3", "1/6"], "rk3"),
    "rk4": _tab([[0, 0, 0, 0], ["1/2", 0, 0, 0], [0, "1/2", 0, 0], [0, 0, 1, 0]],
                ["1/6", "1/3", "1/3", "1/6"], "rk4"),
}
METHODS["gd"] = METHODS["euler"]


def as_method(method) -> ButcherTableau:
    """A method name from :data:`METHODS` or a :class:`ButcherTableau`."""
    if isinstance(method, ButcherTableau):
        return method
    if isinstance(method, str) and method.lower() in METHODS:
        return METHODS[method.lower()]
    raise DeriveInputError(f"method: unknown value {method!r}; expected one of "
                     f"{sorted(METHODS)} or a ButcherTableau")


@cache
def method_series(method: ButcherTableau, max_size: int) -> tuple:
    """Coefficients a(t) of the method's step y₁ - y = Σ h^{|t|} a(t) F(t), |t| ≤ max_size."""
    stages: list[Series] = []
    for i in range(len(method.b)):
        delta: dict = {}
        for j in range(i):
            if method.a[i][j] != 0:
                for t, c in stages[j].items():
                    if _trees.size(t) < max_size:
                        delta[t] = delta.get(t, 0) + method.a[i][j] * c
        stages.append(_trees.compose_field({t: c for t, c in delta.items() if c}, max_size))
    step: dict = {}
    for bi, k in zip(method.b, stages):
        for t, c in k.items():
            step[t] = step.get(t, 0) + bi * c
    return tuple(sorted(((t, c) for t, c in step.items() if c != 0), key=lambda kv: _trees._key(kv[0])))


@cache
def modified_equation(method: ButcherTableau, max_size: int) -> tuple:
    """Coefficients b(t), |t| ≤ max_size, of the modified field Σ h^{|t|-1} b(t) F(t).

    The time-h flow of the truncated field agrees with the method's step up to O(h^{max_size+1}).
    """
    target = dict(method_series(method, max_size))
    b: dict = {}
    for n in range(1, max_size + 1):
        flow = _trees.flow_increment(b, n) if b else {}
        for t in _trees.trees_of_size(n):
            c = target.get(t, Fraction(0)) - flow.get(t, Fraction(0))
            if c != 0:
                b[t] = c
    if b.get(LEAF) != 1:
        raise DeriveInputError(f"method: {method.name} is not consistent (Σ b_i must be 1)")
    return tuple(sorted(b.items(), key=lambda kv: _trees._key(kv[0])))


def coefficient(series: tuple, t: Tree) -> Fraction:
    """Look up a tree's coefficient in a sorted (tree, coefficient) tuple."""
    return dict(series).get(t, Fraction(0))
