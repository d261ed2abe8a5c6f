"""Independent check of modified equations: one method step against the time-η flow.

Works on explicit polynomials in exact rational arithmetic (``QQ[params, η]``), not on trees:
the flow of a field X is the Lie series y(η) = y + Σ_k η^k/k! (X·∇)^{k-1} X, and the method
step is expanded by composing polynomials. The residual's η^m coefficients are polynomials in
the parameters, so "zero" here is an identity on all of R^n, not a value at a point.
"""
from __future__ import annotations

from fractions import Fraction
from math import factorial

import sympy as sp
from sympy import QQ
from sympy.polys.rings import ring

from .ops import eta as ETA

# A generic quintic in two variables: every derivative up to D⁵L is non-zero and unstructured.
WITNESS_PARAMS = sp.symbols("x y", real=True)
_x, _y = WITNESS_PARAMS
WITNESS_LOSS = (sp.Rational(1, 4) * _x**4 + sp.Rational(1, 3) * _x**3 * _y
                - sp.Rational(2, 5) * _x**2 * _y**2 + sp.Rational(1, 7) * _x * _y**3
                + sp.Rational(1, 6) * _y**4 + sp.Rational(1, 10) * _x**5
                - sp.Rational(1, 9) * _x * _y**4 + sp.Rational(1, 2) * _x**2
                - sp.Rational(1, 3) * _x * _y + sp.Rational(3, 4) * _y**2 + _x - sp.Rational(1, 2) * _y)


class _Poly:
    """Truncated polynomial arithmetic in QQ[params, η]."""

    def __init__(self, params, max_power, local=False):
        self.params = tuple(params)
        self.R, *gens = ring(list(self.params) + [ETA], QQ)
        self.vars, self.eta = gens[:-1], gens[-1]
        self.max_power = max_power
        self.local = local  # only the jet at the origin matters: also truncate the degree in params

    def from_expr(self, expr):
        return self.R.from_expr(expr) if expr != 0 else self.R.zero

    def truncate(self, p, limit):
        if not p:
            return p
        if self.local:
            return self.R.from_dict({m: c for m, c in p.items()
                                     if m[-1] <= limit and sum(m[:-1]) <= limit})
        return self.R.from_dict({m: c for m, c in p.items() if m[-1] <= limit})

    def coefficient(self, p, m):
        return self.R.from_dict({k[:-1] + (0,): c for k, c in p.items() if k[-1] == m})


def flow_increment(field, P: _Poly):
    """y(η) − y for the flow of the field (a list of polynomials) up to η^max_power."""
    N = P.max_power
    total = [P.R.zero for _ in field]
    term = list(field)
    for k in range(1, N + 1):
        scale = P.eta**k * QQ(1, factorial(k))
        total = [P.truncate(t + scale * v, N) for t, v in zip(total, term)]
        term = [P.truncate(sum((v.diff(xj) * fj for xj, fj in zip(P.vars, field)), P.R.zero), N - k - 1)
                for v in term]
    return total


def method_increment(f, a, b, P: _Poly):
    """One explicit Runge–Kutta step y₁ − y for y' = f(y), expanded up to η^max_power."""
    N = P.max_power
    stages = []
    for i in range(len(b)):
        shift = [sum((P.eta * QQ(a[i][j].numerator, a[i][j].denominator) * stages[j][c]
                      for j in range(i) if a[i][j] != 0), P.R.zero) for c in range(len(f))]
        if all(s == 0 for s in shift):
            stages.append(list(f))
            continue
        subs = [(x, s if P.local else x + s) for x, s in zip(P.vars, shift)]
        stages.append([P.truncate(fc.compose(subs), N - 1) for fc in f])
    return [P.truncate(sum((P.eta * QQ(Fraction(bi).numerator, Fraction(bi).denominator) * st[c]
                            for bi, st in zip(b, stages) if bi != 0), P.R.zero), N)
            for c in range(len(f))]


def step_vs_flow(field_exprs, loss, params, method, max_power, point=None):
    """η^m coefficients (m = 1..max_power) of method step − flow, as SymPy column matrices.

    With ``point`` (rational coordinates) the comparison is exact but only at that point, and
    much cheaper: every polynomial is truncated to the jet that the point's value needs.

    Args:
        field_exprs: the modified field's components (SymPy, polynomial in params and η).
        loss: polynomial loss; the method is applied to y' = −∇L.
        params: the loss's variables.
        method: a :class:`~derive.bseries.ButcherTableau`.
        max_power: highest power of η compared.
    """
    P = _Poly(params, max_power, local=point is not None)
    field = [P.from_expr(e) for e in field_exprs]
    f = [P.from_expr(-sp.diff(loss, p)) for p in params]
    if point is not None:  # move the point to the origin
        shift = [(x, x + QQ(sp.Rational(v).p, sp.Rational(v).q)) for x, v in zip(P.vars, point)]
        field = [fc.compose(shift) for fc in field]
        f = [fc.compose(shift) for fc in f]
    field = [P.truncate(fc, max_power) for fc in field]
    step = method_increment(f, method.a, method.b, P)
    flow = flow_increment(field, P)
    out = []
    for m in range(1, max_power + 1):
        coeffs = [P.coefficient(s - fl, m) for s, fl in zip(step, flow)]
        if point is not None:
            coeffs = [_at_origin(c, P) for c in coeffs]
        out.append(sp.Matrix([c.as_expr() for c in coeffs]))
    return out


def _at_origin(p, P: _Poly):
    """The constant term of p (its value at the origin, η already stripped)."""
    zero = (0,) * (len(P.vars) + 1)
    return P.R.from_dict({zero: p.get(zero, QQ(0))}) if p else p
