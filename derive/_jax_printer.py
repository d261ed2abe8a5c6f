"""SymPy to JAX source text, one expression at a time.

`JaxCodePrinter` prints one SymPy expression as a `jax.numpy` expression (it is SymPy's
`JaxPrinter` with the differences below). Many outputs at once, with shared subexpressions,
are emitted by :mod:`derive._dag`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import reduce
from typing import Any

import sympy as sp
from sympy.printing.numpy import JaxPrinter

from ._nonsmooth import branches, condition

MODULE_ALIASES = {"jax.numpy": "jnp", "jax.scipy.special": "jspecial", "jax.lax": "lax"}
IMPORTS = ("import jax.numpy as jnp", "import jax.scipy.special as jspecial", "from jax import lax")
_SPECIAL = {"erf": "erf", "erfc": "erfc", "erfinv": "erfinv", "gamma": "gamma",
            "loggamma": "gammaln", "digamma": "digamma", "beta": "beta"}


def float_literal(value: float) -> str:
    """Python source for a float that round-trips exactly (`repr`), inf/nan via jnp."""
    if math.isnan(value):
        return "jnp.nan"
    if math.isinf(value):
        return "jnp.inf" if value > 0 else "-jnp.inf"
    return repr(float(value))


def real_value(expr: sp.Expr) -> float:
    """The float nearest to a SymPy number; ValueError if it is not real."""
    if expr.is_Rational:
        try:
            return float(Fraction(int(expr.p), int(expr.q)))
        except OverflowError:
            return math.inf if expr > 0 else -math.inf
    if expr.is_Float:
        return float(expr)
    if expr in (sp.oo, -sp.oo, sp.nan):
        return float(expr)
    real, imag = expr.evalf(30).as_real_imag()
    if imag != 0 or not real.is_Number:
        raise ValueError(f"exprs: the constant {expr} is not a real number")
    return float(real)


def all_of(conditions: list[str]) -> str | None:
    """`jnp.logical_and` of printed conditions; None for no conditions."""
    if not conditions:
        return None
    return reduce(lambda acc, c: f"jnp.logical_and({c}, {acc})", reversed(conditions[:-1]), conditions[-1])


def any_of(conditions: list[str]) -> str:
    """`jnp.logical_or` of one or more printed conditions."""
    return reduce(lambda acc, c: f"jnp.logical_or({c}, {acc})", reversed(conditions[:-1]), conditions[-1])


class JaxCodePrinter(JaxPrinter):
    """SymPy's JaxPrinter, printing `jnp.`/`jspecial.` names and JAX-friendly forms.

    Differences: numbers print as exact float literals (no int overflow, no int
    division; constant subexpressions folded, NaN where not real); small integer powers as
    products; Piecewise, and Abs/Max/Min/sign/Heaviside by the branches of
    :mod:`derive._nonsmooth`, as nested `jnp.where` with masked branches; And/Or/Not as
    `jnp.logical_*`; erf, erfc, erfinv, gamma, loggamma, digamma, polygamma and beta via
    `jax.scipy.special`. Symbols print under the names in `symbol_names`.
    """

    printmethod = "_jaxcode"

    def __init__(self, settings: dict | None = None, symbol_names: dict | None = None):
        super().__init__(dict({"fully_qualified_modules": True}, **(settings or {})))
        self.symbol_names = dict(symbol_names or {})
        self._mask: str | None = None   # inside a Piecewise branch: the condition that it is taken

    def _module_format(self, fqn: str, register: bool = True) -> str:
        module, _, attr = fqn.rpartition(".")
        return f"{MODULE_ALIASES[module]}.{attr}" if module in MODULE_ALIASES else fqn

    def _print(self, expr, **kwargs) -> str:
        """Constant subexpressions print as one float literal (NaN where not real, as float64 gives)."""
        if isinstance(expr, sp.Expr) and not expr.is_Integer and expr.is_number:
            try:
                return float_literal(real_value(expr))
            except ValueError:
                return "jnp.nan"
        return super()._print(expr, **kwargs)

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        name = self.symbol_names.get(expr)
        name = name if name is not None else super()._print_Symbol(expr)
        if self._mask is None:
            return name
        return f"jnp.where({self._mask}, {name}, lax.stop_gradient({name}))"

    _print_Dummy = _print_Symbol

    # numbers
    def _print_Float(self, expr: sp.Float) -> str:
        return float_literal(real_value(expr))

    def _print_Rational(self, expr: sp.Rational) -> str:
        return float_literal(real_value(expr))

    _print_Half = _print_Rational

    def _print_Integer(self, expr: sp.Integer) -> str:
        return str(int(expr)) if abs(int(expr)) < 2**31 else float_literal(real_value(expr))

    def _print_NaN(self, expr: Any) -> str:
        return "jnp.nan"

    def _print_Infinity(self, expr: Any) -> str:
        return "jnp.inf"

    def _print_NegativeInfinity(self, expr: Any) -> str:
        return "-jnp.inf"

    def _print_unsupported(self, expr: Any) -> str:
        raise NotImplementedError(f"{type(expr).__name__} is not supported (complex values, or "
                                  "unevaluated Sum/Product/Integral: call .doit() first)")

    _print_ImaginaryUnit = _print_ComplexInfinity = _print_unsupported
    _print_Sum = _print_Product = _print_Integral = _print_unsupported

    # arithmetic
    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exp = expr.args
        b = self.parenthesize(base, 60)  # 60: SymPy's precedence of Pow
        if exp.is_Integer:
            n = abs(int(exp))
            if exp < -1:   # x**-k, not 1/(x*x*x): autodiff of 1/u squares u, which underflows
                return f"({b}**-{n})"
            body = "*".join([b] * n) if base.is_Symbol and n <= 4 else f"{b}**{n}"
            return f"({body})" if exp > 0 else f"(1/({body}))"
        if exp.is_Rational and exp.q == 2:
            root = f"jnp.sqrt({self._print(base)})"
            n = abs(int(exp.p))
            body = root if n == 1 else f"{root}**{n}"
            return body if exp > 0 else f"(1/{body})"
        if exp.is_number:
            return f"({b}**{float_literal(real_value(exp))})"
        return f"({b}**{self.parenthesize(exp, 60)})"

    def _print_Mul(self, expr: sp.Mul) -> str:
        """c/x with one division; any other denominator factor by factor (x*y**-2, (1/x)*(1/y)),
        as the DAG emitter prints it, so that JAX's derivatives never square a denominator."""
        coeff, rest = expr.as_coeff_Mul()
        den = [a for a in rest.as_ordered_factors() if a.is_Pow and a.exp.is_Integer and a.exp < 0]
        if not den or (len(den) == 1 and den[0].exp == -1):
            return super()._print_Mul(expr)
        factors = [self.parenthesize(a, 50) for a in rest.as_ordered_factors()]   # 50: SymPy's Mul precedence
        if abs(coeff) != 1:
            factors.insert(0, self._print(abs(coeff)))
        return ("-" if coeff < 0 else "") + "*".join(factors)

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        return self._print_pieces([(p.cond, p.expr) for p in expr.args])

    def _print_nonsmooth(self, expr: Any) -> str:
        """Abs, Max, Min, sign, Heaviside as the branches of derive._nonsmooth's convention."""
        return self._print_pieces([(condition(c), v) for c, v in branches(expr)])

    _print_Abs = _print_Max = _print_Min = _print_sign = _print_Heaviside = _print_nonsmooth

    def _print_pieces(self, pieces: list) -> str:
        """Nested ``jnp.where`` over (condition, value) pairs; the first that holds is taken.

        Each branch sees its symbols masked by "this branch is taken":
        ``where(taken, s, stop_gradient(s))`` leaves values alone and stops derivatives of an
        untaken branch (undefined there, e.g. log of a negative number) from reaching s as NaN.
        A NaN in the comparison that decides a branch gives NaN.
        """
        outer = self._mask
        conds = [self._print(cond) for cond, _ in pieces]
        texts = []
        for k, (_, value) in enumerate(pieces):
            parts = [outer] if outer else []
            parts += [c for c in conds[k:k + 1] if c != "True"]
            parts += [f"jnp.logical_not({c})" for c in conds[:k]]
            self._mask = all_of(parts)
            try:
                texts.append(self._print(value))
            finally:
                self._mask = outer
        knowns = [self._known(cond) for cond, _ in pieces]
        if conds[-1] == "True":
            out = texts.pop()
            conds.pop()
        else:
            out = "jnp.nan"   # no branch holds: undefined
        for cond, text, known in reversed(list(zip(conds, texts, knowns))):
            out = f"jnp.where({cond}, {text}, {out})"
            if known is not None:   # a NaN in the deciding comparison: NaN in, NaN out
                out = f"jnp.where({known}, {out}, jnp.nan)"
        return out

    def _known(self, c) -> str | None:
        """Text of "condition c is decided" (no deciding comparison with a NaN); None if always."""
        if c in (sp.true, sp.false):
            return None
        if isinstance(c, sp.core.relational.Relational):
            sides = [self._print(a) for a in c.args if not a.is_number]
            return "jnp.logical_not(" + any_of([f"jnp.isnan({t})" for t in sides]) + ")" if sides else None
        if isinstance(c, sp.Not):
            return self._known(c.args[0])
        if not isinstance(c, (sp.And, sp.Or)):
            return self._known(c.to_nnf())
        knowns = [self._known(a) for a in c.args]
        values = [self._print(a) if isinstance(c, sp.Or) else f"jnp.logical_not({self._print(a)})" for a in c.args]
        decisive = [all_of([k, v] if k else [v]) for k, v in zip(knowns, values)]
        everything = all_of([k for k in knowns if k])
        return any_of(([everything] if everything else []) + decisive) if everything else None

    def _nested(self, fn: str, args: tuple) -> str:
        return reduce(lambda acc, a: f"{fn}({self._print(a)}, {acc})",
                      reversed(args[:-1]), self._print(args[-1]))

    def _print_And(self, expr: Any) -> str:
        return self._nested("jnp.logical_and", expr.args)

    def _print_Or(self, expr: Any) -> str:
        return self._nested("jnp.logical_or", expr.args)

    def _print_ITE(self, expr: Any) -> str:
        return self._print(expr.to_nnf())

    _print_Xor = _print_Implies = _print_Equivalent = _print_ITE

    def _print_Not(self, expr: Any) -> str:
        return f"jnp.logical_not({self._print(expr.args[0])})"

    # special functions
    def _print_special(self, expr: Any) -> str:
        fn = _SPECIAL[type(expr).__name__]
        return f"jspecial.{fn}({', '.join(self._print(a) for a in expr.args)})"

    _print_erf = _print_erfc = _print_erfinv = _print_special
    _print_gamma = _print_loggamma = _print_digamma = _print_beta = _print_special

    def _print_polygamma(self, expr: Any) -> str:
        n, x = expr.args
        if n == 0:
            return f"jspecial.digamma({self._print(x)})"
        return f"jspecial.polygamma({self._print(n)}, {self._print(x)})"
