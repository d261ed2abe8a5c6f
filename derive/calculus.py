"""Calculus on operator formulas: Jacobians, their transposes, and gradients of scalars.

Every derivative tensor D^kL is symmetric, so the transpose of the Jacobian of a formula is
again a formula: for a = D^{k+1}L[b1, ..., bk],
    J_aᵀ z = D^{k+2}L[b1, ..., bk, z] + Σ_j J_{b_j}ᵀ D^{k+1}L[b1, ..̂b_j.., bk, z].
This gives ∇S for any scalar formula S, and the antisymmetric part ½(J − Jᵀ) of a vector field,
which vanishes identically exactly when the field is (locally) a gradient.
"""
from __future__ import annotations

import sympy as sp

from .ops import DL, Dot, Form, Vec, directional, split_vector_terms

__all__ = [
    "antisymmetric_apply",
    "drop_third_and_higher",
    "gradient",
    "jacobian_apply",
    "jacobian_transpose_apply",
]


def jacobian_apply(vec_expr, v):
    """J[v]: the directional derivative of a vector formula along v."""
    return directional(vec_expr, v)


def _jt_atom(a, z):
    """J_aᵀ z for a vector atom a (inputs are constant)."""
    if isinstance(a, Vec):
        return sp.Integer(0)
    args = a.args
    out = DL(*args, z)
    for j, b in enumerate(args):
        rest = args[:j] + args[j + 1:]
        out += jacobian_transpose_apply(b, DL(*rest, z))
    return out


def jacobian_transpose_apply(vec_expr, z):
    """Jᵀ z for a vector formula (a linear combination of atoms with scalar coefficients)."""
    total = sp.Integer(0)
    for coef, atom in split_vector_terms(z):
        for c, a in split_vector_terms(vec_expr):
            total += coef * c * _jt_atom(a, atom)
            if _depends_on_w(c):
                total += coef * Dot(a, atom) * gradient(c)
    return sp.expand(total)


def _depends_on_w(expr) -> bool:
    return any(isinstance(x, (DL, Form, Dot)) for x in sp.preorder_traversal(expr))


def gradient(scalar):
    """∇S of a scalar formula S, as a vector formula."""
    scalar = sp.sympify(scalar)
    if isinstance(scalar, Form):
        args = scalar.args
        out = DL(*args)
        for i, a in enumerate(args):
            out += jacobian_transpose_apply(a, DL(*(args[:i] + args[i + 1:])))
        return sp.expand(out)
    if isinstance(scalar, Dot):
        a, b = scalar.args
        return sp.expand(jacobian_transpose_apply(a, b) + jacobian_transpose_apply(b, a))
    if isinstance(scalar, sp.Add):
        return sp.expand(sp.Add(*[gradient(t) for t in scalar.args]))
    if isinstance(scalar, sp.Mul):
        f = scalar.args
        return sp.expand(sp.Add(*[sp.Mul(*f[:i], *f[i + 1:]) * gradient(x)
                                  for i, x in enumerate(f) if _depends_on_w(x)]))
    if isinstance(scalar, sp.Pow):
        base, exp = scalar.args
        return sp.expand(exp * base ** (exp - 1) * gradient(base)) if _depends_on_w(base) else 0
    if not _depends_on_w(scalar):
        return sp.Integer(0)
    raise ValueError(f"scalar: cannot take the gradient of {type(scalar).__name__}")


def antisymmetric_apply(vec_expr, v):
    """½(J − Jᵀ) v: zero for every v exactly when the field is a gradient."""
    return sp.expand((jacobian_apply(vec_expr, v) - jacobian_transpose_apply(vec_expr, v)) / 2)


def drop_third_and_higher(expr):
    """Set every D^kL with k ≥ 3 to zero (the quadratic-loss case)."""
    return sp.expand(sp.sympify(expr).replace(
        lambda e: (isinstance(e, DL) and len(e.args) >= 2) or (isinstance(e, Form) and len(e.args) >= 3),
        lambda e: sp.Integer(0)))
