"""Argument checks shared by the derivation modules and code generation.

Each helper either returns its argument in normalised form or raises
:class:`~derive.errors.DeriveInputError` with a one-line message that starts
with the argument's name (the ``name`` parameter).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import sympy
from sympy.matrices import MatrixBase

from ._walk import FreeSymbols, postorder
from .errors import DeriveInputError

__all__ = [
    "as_consts",
    "as_expr",
    "as_params",
    "check_choice",
    "check_free_symbols",
    "check_order",
    "check_smooth",
    "free_symbols",
    "symbol_sort_key",
]

_MAX_SHOWN = 80  # longest expression text quoted in a message

# Functions whose derivatives do not exist everywhere (or only as
# distributions); a loss built from them cannot be Taylor-expanded.
_NON_SMOOTH = (
    sympy.Abs,
    sympy.sign,
    sympy.Heaviside,
    sympy.Max,
    sympy.Min,
    sympy.floor,
    sympy.ceiling,
    sympy.frac,
    sympy.Piecewise,
    sympy.DiracDelta,
    sympy.re,
    sympy.im,
    sympy.arg,
    sympy.Mod,
)


def symbol_sort_key(sym: sympy.Symbol | str) -> tuple:
    """Natural sort key: ``theta2`` sorts before ``theta10``.

    Args:
        sym: A Symbol or a name.

    Returns:
        A key whose digit runs compare as integers.
    """
    name = sym if isinstance(sym, str) else sym.name
    parts = re.split(r"([0-9]+)", name)
    return (tuple(int(p) if p.isdigit() else p for p in parts), name)


def _shorten(obj: Any) -> str:
    text = " ".join(str(obj).split())
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _describe(obj: Any) -> str:
    """Type (and shape or length) of a rejected value, for messages."""
    if isinstance(obj, MatrixBase):
        return f"Matrix of shape {obj.shape}"
    shape = getattr(obj, "shape", None)
    if isinstance(shape, tuple) and not isinstance(obj, sympy.Basic | str):
        return f"{type(obj).__name__} of shape {shape}"
    if isinstance(obj, sympy.MatrixExpr):
        return f"{type(obj).__name__} of shape {obj.shape}"
    if isinstance(obj, list | tuple):
        return f"{type(obj).__name__} of length {len(obj)}"
    if isinstance(obj, str):
        return f"str {_shorten(repr(obj))}"
    return type(obj).__name__


def _names(symbols: Iterable[sympy.Symbol]) -> list[str]:
    return [s.name for s in sorted(symbols, key=symbol_sort_key)]


def _is_boolean(obj) -> bool:
    """Relations and truth values; a Symbol is a Boolean in SymPy but also a valid loss."""
    return isinstance(obj, sympy.logic.boolalg.Boolean) and not isinstance(obj, sympy.Expr)


def as_expr(obj: Any, name: str = "loss") -> sympy.Expr:
    """Convert a number, Symbol or SymPy expression into a scalar ``sympy.Expr``.

    Strings are refused: SymPy's ``sympify`` evaluates strings with ``eval``.
    Use :func:`derive.parsing.parse_loss` for text.

    Args:
        obj: The value to convert.
        name: Argument name used in error messages.

    Returns:
        The value as a SymPy expression.

    Raises:
        DeriveInputError: For strings, matrices, arrays, sequences, relations,
            booleans, non-finite or complex numbers, and other objects.
    """
    expected = "expected a scalar SymPy expression"
    if isinstance(obj, str):
        raise DeriveInputError(
            f"{name}: {expected}, got {_describe(obj)}; "
            "parse strings with derive.parsing.parse_loss"
        )
    if obj is None or isinstance(obj, bool | complex):
        raise DeriveInputError(f"{name}: {expected}, got {type(obj).__name__}")
    if isinstance(obj, float) and not math.isfinite(obj):
        raise DeriveInputError(f"{name}: {expected}, got the non-finite float {obj!r}")
    if isinstance(obj, MatrixBase | sympy.MatrixExpr | list | tuple | set | dict):
        raise DeriveInputError(f"{name}: {expected}, got {_describe(obj)}")
    shape = getattr(obj, "shape", None)
    if isinstance(shape, tuple) and shape != () and not isinstance(obj, sympy.Basic):
        raise DeriveInputError(f"{name}: {expected}, got {_describe(obj)}")
    if _is_boolean(obj):
        raise DeriveInputError(f"{name}: {expected}, got the relation or boolean {_shorten(obj)!r}")
    try:
        expr = sympy.sympify(obj, strict=True)  # strict: never converts via str()
    except (sympy.SympifyError, TypeError, ValueError):
        raise DeriveInputError(f"{name}: {expected}, got {_describe(obj)}") from None
    if _is_boolean(expr):
        raise DeriveInputError(
            f"{name}: {expected}, got the relation or boolean {_shorten(expr)!r}"
        )
    if not isinstance(expr, sympy.Expr) or isinstance(expr, sympy.MatrixExpr):
        raise DeriveInputError(f"{name}: {expected}, got {_describe(obj)}")
    nodes = set(postorder([expr]))   # each distinct subexpression once (expr.has walks the tree)
    if nodes & {sympy.zoo, sympy.nan, sympy.oo, -sympy.oo}:
        raise DeriveInputError(f"{name}: expected a finite expression, got {_shorten(expr)}")
    if sympy.I in nodes:
        raise DeriveInputError(f"{name}: expected a real expression, got {_shorten(expr)}")
    return expr


def free_symbols(expr_or_exprs: Any) -> frozenset:
    """Free symbols of an expression or a list of them, each distinct subexpression visited once."""
    exprs = expr_or_exprs if isinstance(expr_or_exprs, list | tuple) else [expr_or_exprs]
    return FreeSymbols().union(exprs)


def _symbol_sequence(obj: Any, name: str) -> tuple[sympy.Symbol, ...]:
    """Normalise a Symbol, a vector Matrix or a sequence into a tuple of Symbols."""
    if isinstance(obj, sympy.Symbol):
        return (obj,)
    if isinstance(obj, str):
        raise DeriveInputError(
            f"{name}: expected a Symbol or a sequence of Symbols, got {_describe(obj)}; "
            "create symbols with sympy.symbols(..., real=True) or use parse_loss"
        )
    if isinstance(obj, MatrixBase):
        if 1 not in obj.shape and obj.shape != (0, 0):
            raise DeriveInputError(
                f"{name}: expected a column of Symbols, got Matrix of shape {obj.shape}"
            )
        items = list(obj)
    elif isinstance(obj, Iterable) and not isinstance(obj, sympy.Basic | dict | set):
        items = list(obj)
    else:
        raise DeriveInputError(
            f"{name}: expected a Symbol or a sequence of Symbols, got {_describe(obj)}"
        )
    seen: dict[str, sympy.Symbol] = {}
    for i, item in enumerate(items):
        if not isinstance(item, sympy.Symbol):
            raise DeriveInputError(
                f"{name}: item {i} must be a Symbol, got {_describe(item)} {_shorten(item)!r}"
            )
        if item.name in seen:
            what = (
                "duplicate symbol"
                if seen[item.name] == item
                else ("two different symbols share the name")
            )
            raise DeriveInputError(f"{name}: {what} {item.name!r}")
        seen[item.name] = item
    return tuple(items)


def as_params(params: Any, name: str = "params") -> tuple[sympy.Symbol, ...]:
    """Normalise the parameters of a loss into a non-empty tuple of Symbols.

    Args:
        params: A Symbol, a sequence of Symbols, or a SymPy column (or row)
            Matrix of Symbols.
        name: Argument name used in error messages.

    Returns:
        The parameters, in the given order.

    Raises:
        DeriveInputError: If empty, if an item is not a Symbol, or if two items
            share a name.
    """
    symbols = _symbol_sequence(params, name)
    if not symbols:
        raise DeriveInputError(f"{name}: expected at least one parameter Symbol, got none")
    return symbols


def as_consts(consts: Any, params: Any, name: str = "consts") -> tuple[sympy.Symbol, ...]:
    """Normalise the constants of a loss (symbols that are not differentiated).

    Args:
        consts: ``None``, a Symbol, a sequence of Symbols or a vector Matrix;
            may be empty.
        params: The parameters (anything :func:`as_params` accepts).
        name: Argument name used in error messages.

    Returns:
        The constants, in the given order.

    Raises:
        DeriveInputError: If an item is not a Symbol, names repeat, or a
            constant is also a parameter (or shares a parameter's name).
    """
    symbols = () if consts is None else _symbol_sequence(consts, name)
    param_names = {p.name for p in as_params(params)}
    clash = [s.name for s in symbols if s.name in param_names]
    if clash:
        raise DeriveInputError(f"{name}: {clash} also appear in params")
    return symbols


def _exprs(expr_or_exprs: Any, name: str) -> list[sympy.Basic]:
    """Flatten an expression, a Matrix or nested iterables into a list of expressions."""
    if isinstance(expr_or_exprs, MatrixBase):
        return list(expr_or_exprs)
    if isinstance(expr_or_exprs, sympy.Basic):
        return [expr_or_exprs]
    if isinstance(expr_or_exprs, Iterable) and not isinstance(expr_or_exprs, str):
        return [e for item in expr_or_exprs for e in _exprs(item, name)]
    return [as_expr(expr_or_exprs, name)]


def check_free_symbols(
    expr_or_exprs: Any,
    params: Any,
    consts: Any = (),
    name: str = "loss",
    *,
    allowed: Iterable[sympy.Symbol] = (),
) -> None:
    """Check that an expression only uses known symbols.

    Args:
        expr_or_exprs: An expression, a Matrix, or an iterable of either.
        params: The parameters (anything :func:`as_params` accepts).
        consts: The constants (anything :func:`as_consts` accepts).
        name: Argument name used in error messages.
        allowed: Further symbols that may appear, e.g. the learning rate ``eta``.

    Raises:
        DeriveInputError: Listing the unknown symbols, sorted by name.
    """
    params = as_params(params)
    consts = as_consts(consts, params)
    allowed = tuple(allowed)
    known = set(params) | set(consts) | set(allowed)
    free = set(FreeSymbols().union(_exprs(expr_or_exprs, name)))
    unknown = free - known
    if not unknown:
        return
    message = (
        f"{name}: unknown symbols {_names(unknown)}; "
        f"params are {_names(params)}, consts are {_names(consts)}"
    )
    if allowed:
        message += f", also allowed are {_names(allowed)}"
    same_name = sorted({s.name for s in unknown} & {s.name for s in known}, key=symbol_sort_key)
    if same_name:
        message += (
            f" (note: {same_name} match known names but not their assumptions, e.g. real=True)"
        )
    raise DeriveInputError(message)


def check_smooth(expr: Any, params: Any, name: str = "loss", what: str = "this derivation") -> None:
    """Refuse non-smooth functions of the parameters.

    ``Abs``, ``sign``, ``Heaviside``, ``Max``, ``Min``, ``floor``, ``ceiling``,
    ``frac``, ``Piecewise``, ``DiracDelta``, ``re``, ``im``, ``arg`` and
    ``Mod`` are refused when their arguments depend on a parameter; applied
    to constants they are fine.

    Args:
        expr: An expression, a Matrix, or an iterable of either.
        params: The parameters (anything :func:`as_params` accepts).
        name: Argument name used in error messages.
        what: What needs the derivatives, completing the message
            ``"...; {what} needs derivatives of the {name}"``.

    Raises:
        DeriveInputError: Naming the first offending sub-expression.
    """
    param_set = set(as_params(params))
    free = FreeSymbols()
    for e in _exprs(expr, name):
        for node in postorder([e]):
            if isinstance(node, _NON_SMOOTH) and free(node) & param_set:
                raise DeriveInputError(
                    f"{name}: {_shorten(node)} is not smooth in the parameters; "
                    f"{what} needs derivatives of the {name}"
                )


def check_order(
    order: Any, name: str = "order", minimum: int = 1, maximum: int | None = None
) -> int:
    """Check an integer order (or count) lies in ``[minimum, maximum]``.

    Args:
        order: The value to check; ``bool`` is refused.
        name: Argument name used in error messages.
        minimum: Smallest allowed value.
        maximum: Largest allowed value, or ``None`` for no bound.

    Returns:
        The order as a Python ``int``.

    Raises:
        DeriveInputError: If not an integer or out of range.
    """
    expected = (
        f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"
    )
    if isinstance(order, bool) or not hasattr(order, "__index__"):
        raise DeriveInputError(
            f"{name}: expected {expected}, got {type(order).__name__} {_shorten(repr(order))}"
        )
    value = int(order.__index__())
    if value < minimum or (maximum is not None and value > maximum):
        raise DeriveInputError(f"{name}: expected {expected}, got {value}")
    return value


def check_choice(value: Any, choices: Iterable[Any], name: str, alternatives: str = "") -> Any:
    """Check that ``value`` is one of ``choices``.

    Args:
        value: The value to check.
        choices: The accepted values.
        name: Argument name used in error messages.
        alternatives: Text appended to the list of choices, e.g.
            ``"a ButcherTableau"`` gives ``"... or a ButcherTableau"``.

    Returns:
        ``value`` unchanged.

    Raises:
        DeriveInputError: E.g. ``"method: unknown value 'rk5'; expected one of
            ['euler', 'heun', 'midpoint'] or a ButcherTableau"``.
    """
    choices = list(choices)
    try:
        ok = value in choices
    except TypeError:
        ok = False
    if ok:
        return value
    message = f"{name}: unknown value {value!r}; expected one of {sorted(choices, key=str)}"
    if alternatives:
        message += f" or {alternatives}"
    raise DeriveInputError(message)
