"""One convention for non-smooth functions in generated kernels and their derivatives.

``Abs``, ``Max``, ``Min``, ``sign`` and ``Heaviside`` are computed by branches; the first branch
whose conditions all hold is taken:

    Abs(a)            = a if a ≥ 0, else −a
    Max(a₁, …, a_m)   = a_i for the first i with a_i ≥ a_j for all j > i (the first maximum in
                        SymPy's argument order), else a_m
    Min(a₁, …, a_m)   = likewise with ≤
    sign(a)           = 1 if a > 0, −1 if a < 0, else 0
    Heaviside(a, h₀)  = 0 if a < 0, 1 if a > 0, else h₀ (SymPy's default h₀ = ½)

Away from a kink this changes nothing. At a kink, the derivative is that of the branch taken:
Abs′(0) = +1, ∂Max(a, b)/∂a = 1 at a tie a = b, sign′ = Heaviside′ = 0. The code generator
prints the branches (:mod:`derive._dag`, :mod:`derive._jax_printer`) and
:func:`derive.derivatives` differentiates them (:func:`derivative`), so generated derivative
kernels and ``jax.grad`` of a generated value kernel agree everywhere, kinks included, and no
DiracDelta appears. The branches are built here, never as a SymPy ``Piecewise`` of the rewritten
arguments: SymPy rewrites a Piecewise nested in a condition into ITE sets by solving
inequalities, which does not finish on modest inputs. Objects no kernel can compute are refused
by :func:`unsupported`.
"""
from __future__ import annotations

import sympy as sp

from ._walk import postorder

__all__ = ["NONSMOOTH", "branches", "condition", "derivative", "unsupported"]

NONSMOOTH = (sp.Abs, sp.Max, sp.Min, sp.sign, sp.Heaviside)

# Objects a kernel cannot compute: (class, why), checked before any code is printed.
_UNSUPPORTED = (
    (sp.core.numbers.ImaginaryUnit, "complex values are not supported (the expression contains I)"),
    (sp.core.numbers.ComplexInfinity, "zoo (complex infinity, e.g. from an exact 1/0) cannot be evaluated"),
    (sp.DiracDelta, "DiracDelta (a distribution) cannot be evaluated"),
    (sp.Derivative, "an unevaluated Derivative cannot be evaluated (SymPy could not differentiate)"),
    (sp.Subs, "an unevaluated Subs cannot be evaluated; call .doit() first"),
    (sp.Integral, "an unevaluated Integral cannot be evaluated; call .doit() first"),
    (sp.Sum, "an unevaluated Sum cannot be evaluated; call .doit() first"),
    (sp.Product, "an unevaluated Product cannot be evaluated; call .doit() first"),
    (sp.floor, "floor is not differentiable; no kernel convention is defined for it"),
    (sp.ceiling, "ceiling is not differentiable; no kernel convention is defined for it"),
    (sp.frac, "frac is not differentiable; no kernel convention is defined for it"),
    (sp.Mod, "Mod is not differentiable; no kernel convention is defined for it"),
)

Branch = tuple  # ((op, lhs, rhs), ...) all of which must hold, and the value


def branches(e: sp.Expr) -> list[Branch]:
    """The convention's branches of a non-smooth function, in order; the last has no condition."""
    zero = sp.S.Zero
    if isinstance(e, sp.Abs):
        a = e.args[0]
        return [(((">=", a, zero),), a), ((), sp.Mul(sp.S.NegativeOne, a, evaluate=False))]
    if isinstance(e, sp.sign):
        a = e.args[0]
        return [(((">", a, zero),), sp.S.One), ((("<", a, zero),), sp.S.NegativeOne), ((), zero)]
    if isinstance(e, sp.Heaviside):
        a = e.args[0]
        h0 = e.args[1] if len(e.args) > 1 else sp.S.Half
        return [((("<", a, zero),), zero), (((">", a, zero),), sp.S.One), ((), h0)]
    if isinstance(e, (sp.Max, sp.Min)):
        op, args = (">=" if isinstance(e, sp.Max) else "<="), e.args
        return [(tuple((op, a, b) for b in args[i + 1:]), a) for i, a in enumerate(args[:-1])] + [((), args[-1])]
    raise TypeError(f"{type(e).__name__} is not one of {[c.__name__ for c in NONSMOOTH]}")


_RELATION = {"<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge}


def condition(conds: tuple) -> sp.Basic:
    """A branch's conditions as one unevaluated SymPy Boolean (``true`` for the last branch)."""
    rels = [_RELATION[op](lhs, rhs, evaluate=False) for op, lhs, rhs in conds]
    if not rels:
        return sp.true
    return rels[0] if len(rels) == 1 else sp.And(*rels, evaluate=False)


def derivative(e: sp.Expr, d) -> sp.Expr:
    """d/dvar of a non-smooth function, ``d`` mapping each argument to its derivative."""
    pieces = [(d(value) if not value.is_number else sp.S.Zero, condition(conds)) for conds, value in branches(e)]
    if all(v == 0 for v, _ in pieces):
        return sp.S.Zero
    return sp.Piecewise(*pieces, evaluate=False)


def unsupported(exprs) -> str | None:
    """Why ``exprs`` cannot become a kernel (naming the function), or None."""
    for node in postorder(exprs):
        for cls, why in _UNSUPPORTED:
            if isinstance(node, cls):
                return f"{why}: {_short(node)}"
    return None


def _short(e) -> str:
    small = sum(1 for _ in postorder([e])) < 30   # printing a large DAG as text is exponential
    text = " ".join(sp.sstr(e).split()) if small else type(e).__name__ + "(...)"
    return text if len(text) <= 60 else text[:57] + "..."
