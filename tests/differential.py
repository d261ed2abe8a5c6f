"""Differential testing of the symbolic-to-numeric path: random expressions and an independent oracle.

Used by ``tests/test_differential.py`` (a bounded number of examples) and by
``benchmarks/differential.py`` (≥ 10,000 examples, prints the failure count).

The oracle shares no code with ``derive``: values come from SymPy's own evaluation (the
expression with its symbols replaced by 60-digit Floats, then ``evalf(30)``), derivatives from
``sympy.diff`` evaluated the same way. How close a correct float64 kernel must come is a
first-order running error bound of the expression tree (Wilkinson-style): every node adds its
rounding error to the errors of its children weighted by its partial derivatives, evaluated at
60 digits. A kernel value is accepted when it lies within ``SLACK`` times that bound.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import mpmath
import sympy as sp
from hypothesis import assume
from hypothesis import strategies as st

U = 2.0**-53          # float64 unit roundoff
FLOAT64_MAX = 1.7976931348623157e308
SLACK = 64            # kernels reorder, share and collect terms: allow this many times the tree's bound
TINY = 1e-290         # absolute floor (subnormal results)
HUGE = 1e300          # an intermediate beyond this may overflow a correct float64 kernel
SMALLEST_NORMAL = 2.2250738585072014e-308   # below it XLA flushes to zero
DPS = 60

# Names that collide with generated-code locals, Python keywords, or SymPy's own printing.
HOSTILE_NAMES = ["theta", "dtype", "jnp", "jax", "lax", "np", "math", "float", "ValueError", "_x0",
                 "_x1", "_K0", "lambda", "if", "x-1", "1x", "λ", "eta", "sigma2", "X11", "u_x0", "e",
                 "E", "pi", "I", "N", "S", "x.y", "x y", "jspecial"]


class IllConditioned(Exception):
    """The example sits on a branch boundary within rounding, or the oracle cannot evaluate it."""


SKIPPED: dict[str, int] = {}   # comparisons skipped as ill-conditioned, by reason; reported by the script


def _skip(err: IllConditioned) -> None:
    reason = str(err).split(":")[-1].strip()[:40] or "ill-conditioned"
    key = "branch boundary within rounding" if "within" in str(err) else f"oracle: {reason}"
    SKIPPED[key] = SKIPPED.get(key, 0) + 1


# ------------------------------------------------------------------------- oracle
def substitute(expr, point: dict):
    """``expr`` with its symbols replaced by 60-digit Floats of the float64 point (exact binary values)."""
    return expr.xreplace({s: sp.Float(v, DPS) for s, v in point.items()})


def oracle(expr, point: dict):
    """SymPy's value of ``expr`` at ``point``: an mpf, ``"nonreal"`` or ``"nonfinite"``."""
    try:
        value = sp.sympify(substitute(expr, point)).evalf(30)
    except (OverflowError, ValueError, ZeroDivisionError, TypeError) as err:   # e.g. erfc(1e200), Max(zoo, x)
        raise IllConditioned(f"SymPy cannot evaluate {expr}: {err}") from None
    if value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        return "nonfinite"
    if not value.is_number:
        raise AssertionError(f"oracle: {expr} did not evaluate to a number at {point}: {value}")
    re, im = value.as_real_imag()
    if im != 0:
        return "nonreal"
    return mpmath.mpf(str(re))


@dataclass
class Bound:
    """A subtree's 60-digit value and a first-order bound on a float64 kernel's error for it.

    ``value`` is None when the subtree is not a finite real number; ``nonreal`` and ``pole`` say
    whether a subexpression on the evaluated path leaves the reals or is infinite.
    """

    value: object
    error: object
    huge: bool = False          # an intermediate beyond HUGE: a correct kernel may overflow
    nonreal: bool = False
    pole: bool = False          # a *proper* subexpression is infinite (IEEE limits are then acceptable)
    infinite: bool = False      # this subtree itself is infinite


def _flags(kids) -> dict:
    return {"huge": any(k.huge for k in kids), "nonreal": any(k.nonreal for k in kids),
            "pole": any(k.pole or k.infinite for k in kids)}


_DIFF_CACHE: dict = {}


def _partials(func, args):
    """∂func/∂arg_i at the given 60-digit values, by SymPy's own diff."""
    key = (func, len(args))
    if key not in _DIFF_CACHE:
        ds = sp.symbols(f"_d0:{len(args)}", real=True)
        _DIFF_CACHE[key] = (ds, [sp.diff(func(*ds), d) for d in ds])
    ds, derivs = _DIFF_CACHE[key]
    at = {d: sp.Float(a, DPS) for d, a in zip(ds, args)}
    out = []
    for der in derivs:
        v = sp.sympify(der.xreplace(at)).evalf(DPS)
        re, im = v.as_real_imag()
        out.append(mpmath.mpf(str(re)) if v.is_number and im == 0 and v.is_finite else mpmath.mpf("inf"))
    return out


def error_bound(expr, point: dict) -> Bound:
    """Running first-order error bound of a float64 evaluation of ``expr``'s tree at ``point``."""
    subs = {s: mpmath.mpf(float(v)) for s, v in point.items()}
    with mpmath.workdps(DPS):
        try:
            return _bound(sp.sympify(expr), subs, {})
        except (OverflowError, ValueError, ZeroDivisionError, TypeError) as err:
            raise IllConditioned(f"cannot bound {expr}: {err}") from None


def _mp(x) -> mpmath.mpf:
    return mpmath.mpf(str(sp.Float(x, DPS)))


def _number(v) -> Bound:
    """Bound of a node whose exact value is the SymPy number ``v`` (rounded once in float64)."""
    v = sp.sympify(v).evalf(DPS)
    if v.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        return Bound(None, mpmath.mpf(0), infinite=True)
    re, im = v.as_real_imag()
    if im != 0:
        return Bound(None, mpmath.mpf(0), nonreal=True)
    r = _mp(re)
    return Bound(r, abs(r) * U, abs(r) > HUGE)


def _bound(e, subs, memo) -> Bound:
    if e in memo:
        return memo[e]
    if e.is_Symbol:
        out = Bound(subs[e], mpmath.mpf(0))
    elif e.is_number:
        out = _number(e)
    elif isinstance(e, sp.Piecewise):
        out = _bound_piecewise(e, subs, memo)
    else:
        kids = [_bound(a, subs, memo) for a in e.args]
        if any(k.value is None for k in kids):
            out = Bound(None, mpmath.mpf(0), **_flags(kids))
        elif isinstance(e, (sp.Max, sp.Min)):      # Lipschitz 1 in every argument
            v = (max if isinstance(e, sp.Max) else min)(k.value for k in kids)
            out = Bound(v, max(k.error for k in kids), **_flags(kids))
        elif isinstance(e, (sp.sign, sp.Heaviside)):
            a = kids[0]
            if a.error > 0 and abs(a.value) <= a.error:
                raise IllConditioned(f"{e}: argument {a.value} within its rounding error {a.error} of 0")
            v = _mp(e.func(sp.Float(a.value, DPS), *e.args[1:]).evalf(DPS))
            out = Bound(v, mpmath.mpf(0), **_flags(kids))
        else:
            out = _bound_op(e, kids)
    memo[e] = out
    return out


def _bound_op(e, kids) -> Bound:
    vals = [k.value for k in kids]
    flags = _flags(kids)
    exact = _number(e.func(*[sp.Float(v, DPS) for v in vals]))
    if exact.nonreal and any(k.error and abs(k.value) <= k.error for k in kids):
        raise IllConditioned(f"{e}: an argument is within its rounding error of the domain boundary 0")
    if exact.value is None:
        return Bound(None, mpmath.mpf(0), nonreal=exact.nonreal or flags["nonreal"], infinite=exact.infinite,
                     huge=flags["huge"], pole=flags["pole"])
    v = exact.value
    flags["huge"] = flags["huge"] or abs(v) > HUGE
    if e.is_Add:
        err = sum(k.error for k in kids) + (len(kids) - 1) * U * sum(abs(x) for x in vals)
    elif e.is_Mul:
        err = sum(k.error * abs(_prod(vals[:i] + vals[i + 1:])) for i, k in enumerate(kids))
        err += len(kids) * U * abs(v)
    elif e.is_Pow:
        (b, eb), (x, ex) = (vals[0], kids[0].error), (vals[1], kids[1].error)
        if b == 0:
            err = (eb ** x if x > 0 else mpmath.mpf("inf")) if eb else mpmath.mpf(0)
        else:
            err = abs(x * b ** (x - 1)) * eb + abs(v * mpmath.log(abs(b))) * ex
            rounding = abs(int(e.args[1])) + 1 if e.args[1].is_Integer else abs(x * mpmath.log(abs(b))) + 4
            err += rounding * U * abs(v)
    else:
        parts = _partials(e.func, vals)
        err = sum(abs(p) * k.error for p, k in zip(parts, kids) if k.error) + 8 * U * abs(v)
    return Bound(v, err + SMALLEST_NORMAL, **flags)   # + underflow: results below it are flushed to 0


def _prod(xs):
    out = mpmath.mpf(1)
    for x in xs:
        out *= x
    return out


def _bound_piecewise(e, subs, memo) -> Bound:
    for piece in e.args:
        taken = _condition(piece.cond, subs, memo)
        if taken is None:                           # a NaN operand: the kernel returns NaN
            return Bound(None, mpmath.mpf(0), nonreal=True)
        if taken:
            return _bound(piece.expr, subs, memo)
    return Bound(None, mpmath.mpf(0), nonreal=True)   # no branch holds: undefined (the kernel's NaN)


def _condition(c, subs, memo):
    """True/False, or None when an operand is not a finite real number."""
    if c == sp.true:
        return True
    if c == sp.false:
        return False
    if isinstance(c, (sp.And, sp.Or, sp.Not, sp.logic.boolalg.BooleanFunction)) and not isinstance(
            c, sp.core.relational.Relational):
        if not isinstance(c, (sp.And, sp.Or, sp.Not)):
            return _condition(c.to_nnf(), subs, memo)
        parts = [_condition(a, subs, memo) for a in c.args]
        if None in parts:
            return None
        if isinstance(c, sp.Not):
            return not parts[0]
        return all(parts) if isinstance(c, sp.And) else any(parts)
    if isinstance(c, sp.core.relational.Relational):
        lhs, rhs = _bound(c.lhs, subs, memo), _bound(c.rhs, subs, memo)
        if lhs.value is None or rhs.value is None:
            return None
        gap = abs(lhs.value - rhs.value)
        if (lhs.error + rhs.error > 0 and gap <= lhs.error + rhs.error) or 0 < gap < 2 * SMALLEST_NORMAL:
            raise IllConditioned(f"{c}: the sides differ by {gap}, within rounding {lhs.error + rhs.error}")
        return bool(c.func(sp.Float(lhs.value, DPS), sp.Float(rhs.value, DPS)))
    raise AssertionError(f"condition {c!r} not understood")


def check_value(kernel_value: float, expected, bound: Bound | None, what: str) -> str | None:
    """None if a float64 kernel value is acceptable against the oracle, else a one-line reason.

    Rules: a real, finite oracle value must be matched within ``SLACK`` × the tree's error bound
    (``TINY`` absolute); a non-real value (log of a negative number, ...) or a non-real
    subexpression on the evaluated path must give NaN or inf; an infinite value must give a
    non-finite number; an infinite *proper* subexpression (a pole inside, e.g. erfc(1/0)) admits
    any result, since float64 then computes a one-sided limit (erfc(inf) = 0).
    """
    kv = float(kernel_value)
    if bound is not None and bound.pole:
        return None
    if expected == "nonreal" or (bound is not None and bound.nonreal):
        return None if not math.isfinite(kv) else f"{what}: outside the real domain, kernel gave {kv!r}"
    if expected == "nonfinite":
        return None if not math.isfinite(kv) else f"{what}: oracle is not finite, kernel gave {kv!r}"
    if (abs(expected) > FLOAT64_MAX or (bound is not None and bound.huge)) and not math.isfinite(kv):
        return None
    if not math.isfinite(kv):
        return f"{what}: kernel gave {kv!r}, oracle {mpmath.nstr(expected, 17)}"
    err = abs(mpmath.mpf(kv) - expected)
    allowed = SLACK * (bound.error if bound is not None else U * abs(expected)) + TINY
    if err <= allowed:
        return None
    return (f"{what}: kernel {kv!r}, oracle {mpmath.nstr(expected, 17)}, |error| {mpmath.nstr(err, 3)} "
            f"> allowed {mpmath.nstr(allowed, 3)}")


def as_written_derivative(e, x):
    """∂e/∂x by the chain and product rules with nothing simplified: the sums of large terms an
    autodiff or a generated kernel evaluates (∂²/∂y² of 1/(1/y) is 2/y − 2/y there, 0 in SymPy's
    simplified diff). Used only to bound the rounding of derivative kernels, never for the value."""
    if not e.has(x):
        return sp.S.Zero
    if e == x:
        return sp.S.One
    if e.is_Add:
        return sp.Add(*[as_written_derivative(a, x) for a in e.args if a.has(x)], evaluate=False)
    if e.is_Mul:
        return sp.Add(*[sp.Mul(*e.args[:i], as_written_derivative(a, x), *e.args[i + 1:], evaluate=False)
                        for i, a in enumerate(e.args) if a.has(x)], evaluate=False)
    if e.is_Pow:
        b, p = e.args
        if not p.has(x):
            return sp.Mul(p, sp.Pow(b, p - 1, evaluate=False), as_written_derivative(b, x), evaluate=False)
        return sp.Mul(e, sp.Add(sp.Mul(as_written_derivative(p, x), sp.log(b), evaluate=False),
                                sp.Mul(p, as_written_derivative(b, x), sp.Pow(b, -1, evaluate=False),
                                       evaluate=False), evaluate=False), evaluate=False)
    if isinstance(e, sp.Piecewise):
        return sp.Piecewise(*[(as_written_derivative(v, x), c) for v, c in e.args], evaluate=False)
    if isinstance(e, (sp.Max, sp.Min)):     # the derivative of the argument that is taken
        pick = sp.Ge if isinstance(e, sp.Max) else sp.Le
        pieces = [(as_written_derivative(a, x), sp.And(*[pick(a, b) for b in e.args if b is not a]))
                  for a in e.args[:-1]]
        return sp.Piecewise(*pieces, (as_written_derivative(e.args[-1], x), True), evaluate=False)
    if isinstance(e, sp.Abs):
        d = as_written_derivative(e.args[0], x)
        return sp.Piecewise((d, sp.Ge(e.args[0], 0)), (sp.Mul(-1, d, evaluate=False), True), evaluate=False)
    if isinstance(e, (sp.sign, sp.Heaviside)):
        return sp.S.Zero
    if len(e.args) == 1:
        return sp.Mul(e.fdiff(1), as_written_derivative(e.args[0], x), evaluate=False)
    return sp.diff(e, x)


def derivative_bound(simplified, written, point) -> Bound:
    """The error bound of a derivative entry: the larger of SymPy's simplified derivative's and the
    as-written chain rule's (whose huge or infinite intermediates also admit a non-finite kernel)."""
    a, b = error_bound(simplified, point), error_bound(written, point)
    return Bound(a.value, max(a.error, b.error), huge=a.huge or b.huge or b.infinite or b.pole,
                 nonreal=a.nonreal, pole=a.pole, infinite=a.infinite)


def reference(expr, point):
    """(oracle value, error bound); raises IllConditioned where no single answer exists."""
    return oracle(expr, point), error_bound(expr, point)


# --------------------------------------------------------------------- strategies
UNARY = {
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt,
    "tanh": sp.tanh, "erf": sp.erf, "atan": sp.atan, "sinh": sp.sinh, "cosh": sp.cosh,
    "asinh": sp.asinh, "erfc": sp.erfc, "Abs": sp.Abs, "sign": sp.sign,
    "sigmoid": lambda a: 1 / (1 + sp.exp(-a)),
    "softplus": lambda a: sp.log(1 + sp.exp(a)),
    "log1p2": lambda a: sp.log(1 + a**2),
    "sqrt1p2": lambda a: sp.sqrt(1 + a**2),
    "gauss": lambda a: sp.exp(-a**2 / 2),
}
EXPONENTS = [-3, -2, -1, 2, 2, 3, 4, 5, sp.Rational(1, 2), sp.Rational(3, 2), sp.Rational(-1, 2),
             sp.Rational(1, 3), sp.Rational(5, 2)]
RELATIONS = [sp.Lt, sp.Le, sp.Gt, sp.Ge]

floats = st.floats(min_value=-4.0, max_value=4.0, allow_nan=False, allow_infinity=False)
constants = st.one_of(
    st.integers(-12, 12).map(sp.Integer),
    st.tuples(st.integers(-9, 9), st.integers(1, 9)).map(lambda pq: sp.Rational(*pq)),
    st.floats(min_value=-20, max_value=20, allow_nan=False).map(lambda v: sp.Float(v)),
    st.sampled_from([sp.pi, sp.E, sp.sqrt(2), sp.Float("0.1"), sp.Float("1e-3"), sp.Float("123.456"),
                     sp.Rational(1, 3), sp.Integer(10) ** 12]),
)


def symbol_pool(names: list[str], real: bool = True) -> list[sp.Symbol]:
    return [sp.Symbol(n, real=True) if real else sp.Symbol(n) for n in names]


@st.composite
def symbol_names(draw, min_size=1, max_size=20):
    """Distinct symbol names, mostly plain, some hostile."""
    k = draw(st.integers(min_size, max_size))
    names = []
    for i in range(k):
        if draw(st.integers(0, 5)) == 0:
            name = draw(st.sampled_from(HOSTILE_NAMES))
        else:
            name = f"x{i}"
        if name not in names:
            names.append(name)
    return names


def expressions(syms: list[sp.Symbol], max_leaves: int = 14):
    """Random expression trees over ``syms`` (see the module docstring of tests/test_differential.py)."""
    leaves = st.one_of(st.sampled_from(syms), st.sampled_from(syms), constants)

    def extend(children):
        pair = st.tuples(children, children)
        return st.one_of(
            st.lists(children, min_size=2, max_size=4).map(lambda a: sp.Add(*a)),
            st.lists(children, min_size=2, max_size=3).map(lambda a: sp.Mul(*a)),
            st.tuples(children, st.sampled_from(EXPONENTS)).map(lambda a: a[0] ** a[1]),
            children.map(lambda a: 1 / a),
            st.tuples(st.sampled_from(sorted(UNARY)), children).map(lambda a: UNARY[a[0]](a[1])),
            st.tuples(st.sampled_from([sp.Max, sp.Min]), st.lists(children, min_size=2, max_size=3))
            .map(_extremum),
            st.tuples(children, st.sampled_from(RELATIONS), children, children, children).map(_piecewise),
            pair.map(lambda a: a[0] * sp.sin(a[0]) + a[1] / (1 + a[0] ** 2)),      # shared subexpression
            pair.map(lambda a: sp.exp(-(a[0] - a[1]) ** 2) * a[0] + (a[0] - a[1])),
            st.tuples(children, constants).map(lambda a: a[1] * a[0] - a[1] / (a[0] ** 2 + 1)),
        )

    return st.recursive(leaves, extend, max_leaves=max_leaves)


def _extremum(a):
    try:
        return a[0](*a[1])
    except ValueError:     # a non-real or infinite argument; such examples are filtered out later
        return sp.nan


def _piecewise(a):
    lhs, rel, rhs, yes, no = a
    if lhs.has(sp.Piecewise) or rhs.has(sp.Piecewise):
        # SymPy's ExprCondPair rewrites such a condition through solveset, which can run for
        # minutes and fill memory (seen: 24 GB) while the example is being drawn
        return yes + no
    try:
        cond = rel(lhs, rhs)
    except TypeError:      # a non-real side (e.g. sqrt of a negative constant)
        return yes + no
    if cond in (sp.true, sp.false):
        return yes if cond == sp.true else no
    return sp.Piecewise((yes, cond), (no, True))


def _flush(v: float) -> float:
    """XLA on CPU flushes subnormals to zero (inputs and results); the kernel sees 0 there."""
    return 0.0 if abs(v) < SMALLEST_NORMAL else v


@st.composite
def points(draw, syms):
    return {s: _flush(draw(floats)) for s in syms}


# --------------------------------------------------------------------- the cases
LAYOUTS = ("scalar", "vector", "matrix", "array", "tuple")


def shaped(exprs: list, layout: str):
    """The flat list ``exprs`` as one output of the given layout, and its flat order."""
    if layout == "scalar":
        return exprs[0], exprs[:1]
    if layout == "vector":
        return sp.Matrix(exprs), exprs
    if layout == "matrix":
        cols = 2 if len(exprs) % 2 == 0 else 1
        m = sp.Matrix(len(exprs) // cols, cols, exprs)
        return m, list(m)
    if layout == "array":
        return sp.Array(exprs), exprs
    parts = [exprs[0], sp.Matrix(exprs[1:])] if len(exprs) > 1 else [exprs[0]]
    return parts, exprs


def flatten_output(out, layout: str) -> list[float]:
    import numpy as np

    if layout == "tuple":
        return [float(v) for part in out for v in np.ravel(np.asarray(part))]
    return [float(v) for v in np.ravel(np.asarray(out))]


def value_case(exprs, layout, params, consts, point, cse=True) -> list[str]:
    """Failures of ``build_function`` values against the oracle (empty list: all agree)."""
    import jax.numpy as jnp

    from derive import build_function

    target, flat = shaped(exprs, layout)
    fn = build_function(target, params, consts, cse=cse)
    theta = jnp.asarray([point[p] for p in params], dtype=jnp.float64)
    got = flatten_output(fn(theta, *[point[c] for c in consts]), layout)
    failures = []
    for k, (e, v) in enumerate(zip(flat, got)):
        try:
            expected, bound = reference(e, point)
        except IllConditioned as err:
            _skip(err)
            continue
        problem = check_value(v, expected, bound, f"output {k} = {e}")
        if problem:
            failures.append(problem)
    return failures


def derivative_case(expr, params, consts, point) -> list[str]:
    """Generated (∇L, H) kernels and jax.grad/jax.hessian of the value kernel against sympy.diff.

    The oracle differentiates SymPy's own Piecewise form of Abs/Max/Min/sign/Heaviside
    (``expr.rewrite(Piecewise)``), which is the documented kernel convention at kinks. Where the
    loss or its gradient is not finite (a pole), autodiff legitimately produces inf·0 = NaN, so
    non-finite kernel entries are accepted there; finite ones must still match.
    """
    import jax
    import jax.numpy as jnp

    from derive import build_function, derivatives

    grad, hess = derivatives(expr, params)
    value_fn = build_function(expr, params, consts)
    deriv_fn = build_function([grad, hess], params, consts)
    theta = jnp.asarray([point[p] for p in params], dtype=jnp.float64)
    cvals = [point[c] for c in consts]
    g_gen, h_gen = deriv_fn(theta, *cvals)
    g_ad = jax.grad(value_fn)(theta, *cvals)
    h_ad = jax.hessian(value_fn)(theta, *cvals)
    n = len(params)
    smooth_form = expr.rewrite(sp.Piecewise)
    first = [sp.diff(smooth_form, p) for p in params]
    try:   # a pole, or a first derivative beyond float64 (autodiff then multiplies 0 by inf)
        singular = any(isinstance(v, str) or abs(v) > FLOAT64_MAX
                       for v in (oracle(e, point) for e in [smooth_form, *first]))
    except IllConditioned as err:   # SymPy cannot evaluate the loss here (e.g. Max(zoo, x) at a pole)
        _skip(err)
        return []
    written = [as_written_derivative(expr, p) for p in params]
    try:   # an intermediate of the chain rule beyond float64: reverse mode then meets inf·0 = NaN
        singular = singular or any(b.huge or b.infinite or b.pole for b in (error_bound(w, point) for w in written))
    except IllConditioned as err:
        _skip(err)
        return []
    cases = []
    for i, p in enumerate(params):
        cases.append(([i], first[i], written[i], [("generated ∇L", g_gen[i]), ("jax.grad", g_ad[i])]))
        cases += [([i, j], sp.diff(first[i], q), as_written_derivative(written[i], q),
                   [("generated H", h_gen.reshape(n, n)[i, j]), ("jax.hessian", h_ad[i, j])])
                  for j, q in enumerate(params) if j >= i]
    failures = []
    for idx, d, written, got in cases:
        try:
            expected, bound = oracle(d, point), derivative_bound(d, written, point)
        except IllConditioned as err:
            _skip(err)
            continue
        for what, v in got:
            if singular and not math.isfinite(float(v)):
                continue
            problem = check_value(v, expected, bound, f"{what}{idx} of {expr}")
            if problem:
                failures.append(problem)
    return failures


def _finite_real(exprs) -> bool:
    """No I, zoo, nan or oo in the expressions (build_function refuses or prints those; see its tests)."""
    return not any(e.has(sp.zoo, sp.nan, sp.I, sp.oo, -sp.oo) for e in exprs)


@st.composite
def value_examples(draw):
    """(exprs, layout, params, consts, point, cse) for :func:`value_case`."""
    names = draw(symbol_names(1, 20))
    syms = symbol_pool(names, real=draw(st.booleans()))
    exprs = draw(st.lists(expressions(syms), min_size=1, max_size=5))
    assume(_finite_real(exprs))
    n_params = draw(st.integers(1, len(syms)))
    return (exprs, draw(st.sampled_from(LAYOUTS)), syms[:n_params], syms[n_params:],
            draw(points(syms)), draw(st.booleans()))


@st.composite
def derivative_examples(draw):
    """(expr, params, consts, point) for :func:`derivative_case`."""
    names = draw(symbol_names(1, 6))
    syms = symbol_pool(names)
    expr = draw(expressions(syms, max_leaves=10))
    assume(_finite_real([expr]))
    n_params = draw(st.integers(1, len(syms)))
    return expr, syms[:n_params], syms[n_params:], draw(points(syms))


# ------------------------------------------------------------------- the CLI path
CLI_NAMES = ["x", "y", "z", "w1", "theta", "e", "lam"]
_CLI_UNARY = ["exp({})", "log(1 + ({})^2)", "sqrt(1 + ({})**2)", "sin({})", "cos({})", "tanh({})",
              "sigmoid({})", "softplus({})", "erf({})", "atan({})", "abs({})", "relu({})", "sinh({})"]
_CLI_BINARY = ["({} + {})", "({} - {})", "({} * {})", "({}) / (1 + ({})^2)", "max({}, {})", "min({}, {})",
               "({}*{})^2"]


def loss_strings():
    """Loss text as a user types it: ^ and **, integer division as rationals, floats, pi and E."""
    numbers = st.sampled_from(["0", "1", "2", "3", "7", "0.5", "0.1", "1e-3", "2.5", "123.456", "1/3", "pi", "E"])
    leaves = st.one_of(st.sampled_from(CLI_NAMES), st.sampled_from(CLI_NAMES), numbers)

    def extend(children):
        return st.one_of(
            st.tuples(st.sampled_from(_CLI_UNARY), children).map(lambda a: a[0].format(a[1])),
            st.tuples(st.sampled_from(_CLI_BINARY), children, children).map(lambda a: a[0].format(a[1], a[2])),
            st.tuples(children, st.sampled_from(["^2", "**3", "^(1/2)"])).map(lambda a: f"({a[0]}){a[1]}"),
        )

    return st.recursive(leaves, extend, max_leaves=8).filter(lambda t: bool(_names_in(t)))


def _names_in(text: str) -> list[str]:
    """The parameter names written in ``text`` (even if they cancel), as whole words."""
    import re

    return sorted(n for n in CLI_NAMES if re.search(rf"\b{n}\b", text))


def sympy_reading(text: str):
    """SymPy's own parser on the user's text (test-only: parse_expr evaluates Python)."""
    from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations

    syms = {n: sp.Symbol(n, real=True) for n in CLI_NAMES}
    local = {**syms, "sigmoid": lambda a: 1 / (1 + sp.exp(-a)), "softplus": lambda a: sp.log(1 + sp.exp(a)),
             "relu": lambda a: sp.Max(0, a), "abs": sp.Abs, "max": sp.Max, "min": sp.Min, "E": sp.E, "pi": sp.pi}
    expr = parse_expr(text, local_dict=local, transformations=standard_transformations + (convert_xor,))
    return expr, syms


@st.composite
def cli_examples(draw):
    """(loss text, {name: initial value}) for :func:`cli_case`."""
    text = draw(loss_strings())
    return text, {n: draw(st.floats(-2, 2, allow_nan=False).map(_flush)) for n in _names_in(text)}


def cli_case(text: str, init: dict, tmp_dir, end_to_end: bool = True) -> list[str]:
    """The step-0 loss of ``gdflows run --loss`` against SymPy's value of the text the user wrote.

    ``end_to_end``: run the CLI in-process and read ``results.h5``; otherwise evaluate the
    problem the CLI builds (``problem_from_string``), the same generated kernel, without the run.
    """
    import contextlib
    import io

    expr, syms = sympy_reading(text)
    point = {syms[n]: v for n, v in init.items()}
    names = sorted(init)
    if end_to_end:
        from numeric.cli import main
        from numeric.results import read_results

        out = Path(tmp_dir) / f"run{abs(hash((text, tuple(init.items()))))}"
        argv = ["run", "--loss", text, "--init", ",".join(f"{n}={init[n]!r}" for n in names),
                "--lr", "0.01", "--steps", "1", "--flows", "gd", "--out", str(out)]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            code = main(argv)
        diverged = code == 2 and "gradient descent diverged at step 1" in err.getvalue()  # step 0 is still written
        if code != 0 and not diverged:
            return [f"gdflows run {' '.join(argv[1:])} exited {code}: {err.getvalue().strip()[:200]}"]
        data = read_results(out / "results.h5")
        series = data[0] if isinstance(data, tuple) else data
        got = float(series["gd"]["loss"][0])
    else:
        from numeric.problems import problem_from_string

        problem = problem_from_string(text, init, params=",".join(names))
        got = float(problem.loss(problem.init))
    try:
        expected, bound = reference(expr, point)
    except IllConditioned as err:
        _skip(err)
        return []
    problem = check_value(got, expected, bound, f"loss {text!r} at {init}")
    return [problem] if problem else []
