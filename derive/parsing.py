"""Safe parsing of loss strings into SymPy expressions.

``sympy.sympify`` and ``parse_expr`` evaluate their input with Python's
``eval``; a loss read from a command line or a config file must never reach
them. :func:`parse_loss` instead parses the text with :mod:`ast` (which only
builds a syntax tree) and walks the tree against a strict whitelist,
constructing SymPy objects directly.

Grammar accepted (everything else is refused with
:class:`~derive.errors.LossParseError`):

* ``int`` and ``float`` literals. Integer arithmetic is exact: ``1/4`` is
  ``Rational(1, 4)`` and ``x**(1/2)`` is ``sqrt(x)``; float literals such as
  ``0.25`` become ``Float``.
* Names: user symbols, and the constants ``pi`` and ``E``. The lower-case
  ``e`` is an ordinary symbol, not Euler's number.
* ``+ - * / **`` and unary ``+ -``. ``^`` also means power, with the
  precedence and right-associativity of ``**`` (it is *not* Python's xor):
  ``2*x^2+1`` is ``2*x**2 + 1``.
* Calls of the functions in :data:`FUNCTIONS`, with positional arguments.

Resource bounds: every input is parsed in about a second or refused with one
line naming the problem. SymPy evaluates eagerly, so sizes are checked before
SymPy is asked to evaluate anything large:

* The text has at most :data:`MAX_LENGTH` characters and :data:`MAX_DEPTH`
  levels of nesting, the SymPy tree at most twice as many (``sigmoid(x)``
  is ``1/(1 + exp(-x))``, four levels; SymPy's own checks are quadratic in
  the depth). SymPy spends up to ~1.5 ms per term of a function's argument,
  so the longest texts take about a second (up to 1.4 s measured on a busy
  2-core machine; at 10,000 characters, 3.5 s).
* SymPy re-forms sums when it multiplies numbers into them (``2*(x+y)`` is
  ``2*x + 2*y``) or merges ``exp(s)**2`` into ``exp(2*s)``, so nesting can
  multiply the work. The distinct subexpressions formed while parsing have
  a total size of at most :data:`MAX_SIZE`, where a subexpression counts
  one plus its number of arguments, and a function application ten more for
  each term of its argument (SymPy evaluates functions term by term, at
  ~50 times the cost of collecting a term). The longest flat texts reach
  about 9,000.
* Every number-valued subexpression (``2.5**2.5``, ``exp(1000)``, the
  coefficient SymPy forms from ``1e300*x*1e300``) must be zero or of
  magnitude between 5e-324 and 1.797e308, the range of float64; otherwise it
  "overflows" or "underflows float64". Powers of numbers are refused from a
  log-magnitude estimate before SymPy computes them, so towers such as
  ``9.0**9.0**9.0**9.0`` fail at once. Each constant is approximated once,
  from its arguments' values. Exact rationals have at most
  :data:`MAX_EXACT_BITS` bits (about 3,000 digits; write a float instead),
  and a constant's tree is at most 20 levels deep (SymPy's own numeric
  checks of ``exp(-exp(exp(-exp(...))))`` take time exponential in it).
* A number-valued exponent of a non-constant base is at most
  :data:`MAX_EXPONENT` in magnitude (``x**(3**5000)`` is refused, and so is
  ``(x**200)**200`` once SymPy merges the exponents). Beyond it ``x**n``
  overflows float64 for ``|x| > 1.074``: no longer a usable loss.
* ``max``/``min`` take at most :data:`MAX_MINMAX_ARGS` arguments, nested
  calls of the same function counting together. They are built without
  SymPy's pairwise comparison of the arguments (quadratic, and slow on large
  arguments: 2.6 s for two 200-term sums, 1.3 s for 32 symbols): nested
  calls are merged, duplicates dropped, and the constant arguments reduced
  to the extreme one. Code generation and differentiation may re-evaluate
  them, so the limit stays small.
* Integer powers of sums are kept as written, never expanded, so
  ``(x+1)**10000`` parses instantly; code that simplifies or expands a loss
  must bound that itself (``gdflows derive --loss`` skips simplification of
  large results and says so).
* Characters that Unicode NFKC normalisation would change are refused,
  naming the character and its code point: Python silently reads the
  identifier ``𝐸`` (U+1D438) as ``E``, Euler's number, and ``ﬁ`` as ``fi``.
  Letters that NFKC keeps, such as Greek ``θ``, are allowed. Names given as
  strings in ``params``/``consts`` are checked the same way.
"""

from __future__ import annotations

import ast
import keyword
import math
import sys
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import sympy

from ._validate import symbol_sort_key
from .errors import LossParseError

__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_EXACT_BITS",
    "MAX_EXPONENT",
    "MAX_LENGTH",
    "MAX_MINMAX_ARGS",
    "MAX_SIZE",
    "parse_loss",
]

MAX_LENGTH = 4_000  # characters
MAX_DEPTH = 100  # nesting levels; a chain like a + b - c counts as one level
MAX_EXACT_BITS = 10_000  # bits of an exact rational's numerator or denominator (~3,000 digits)
MAX_EXPONENT = 10_000  # magnitude of a numeric exponent of a non-constant base
MAX_MINMAX_ARGS = 16  # arguments of max()/min(), nested calls merged
MAX_SIZE = 12_000  # total size of the subexpressions formed while parsing (see the module doc)
_MAX_TREE_DEPTH = 2 * MAX_DEPTH  # of the SymPy tree: sigmoid(x) is 1/(1 + exp(-x)), four levels
_MAX_CONSTANT_DEPTH = 20  # of a constant's SymPy tree: SymPy's evalf of it is exponential in the depth
_MAX_GAMMA_ARG = 1_000  # gamma(n) of a literal evaluates n! eagerly
_MAX_SHOWN = 60
_FLOAT_MAX = sys.float_info.max  # 1.797e308
_FLOAT_TINY = math.ulp(0.0)  # 5e-324, the smallest positive float64
# Powers of numbers whose log-magnitude estimate is this far outside float64 are
# refused before SymPy computes them; nearer ones are computed and checked exactly.
_LOG_SLACK = 2.0
_DIGITS = 30  # precision of the approximate values of constants
_TERM_COST = 10  # a term of a function's argument costs as much as this many nodes


def _sigmoid(x: sympy.Expr) -> sympy.Expr:
    return 1 / (1 + sympy.exp(-x))


def _softplus(x: sympy.Expr) -> sympy.Expr:
    return sympy.log(1 + sympy.exp(x))


class _Refused(Exception):
    """A problem found while constructing a value; ``_Builder`` adds the argument name."""


def _lattice(cls: type, args: Sequence[sympy.Expr]) -> sympy.Expr:
    """``Max``/``Min`` of ``args`` without SymPy's quadratic pairwise simplification."""
    flat = [b for a in args for b in (a.args if isinstance(a, cls) else (a,))]
    if len(flat) > MAX_MINMAX_ARGS:
        what = cls.__name__.lower()
        raise _Refused(
            f"{what}() takes at most {MAX_MINMAX_ARGS} arguments, got {len(flat)} "
            f"(nested {what}() calls count together)"
        )
    numbers = [a for a in flat if a.is_number]
    kept = list(dict.fromkeys(a for a in flat if not a.is_number))
    if numbers:
        kept.extend(cls.make_args(cls(*numbers)))  # SymPy picks the extreme constant
    return kept[0] if len(kept) == 1 else cls(*kept, evaluate=False)


def _max(*args: sympy.Expr) -> sympy.Expr:
    return _lattice(sympy.Max, args)


def _min(*args: sympy.Expr) -> sympy.Expr:
    return _lattice(sympy.Min, args)


def _relu(x: sympy.Expr) -> sympy.Expr:
    return _max(sympy.Integer(0), x)


# name -> (constructor, minimum number of arguments, maximum or None)
FUNCTIONS: dict[str, tuple[Callable[..., sympy.Expr], int, int | None]] = {
    "exp": (sympy.exp, 1, 1),
    "log": (sympy.log, 1, 1),
    "sqrt": (sympy.sqrt, 1, 1),
    "sin": (sympy.sin, 1, 1),
    "cos": (sympy.cos, 1, 1),
    "tan": (sympy.tan, 1, 1),
    "sinh": (sympy.sinh, 1, 1),
    "cosh": (sympy.cosh, 1, 1),
    "tanh": (sympy.tanh, 1, 1),
    "asin": (sympy.asin, 1, 1),
    "acos": (sympy.acos, 1, 1),
    "atan": (sympy.atan, 1, 1),
    "asinh": (sympy.asinh, 1, 1),
    "acosh": (sympy.acosh, 1, 1),
    "atanh": (sympy.atanh, 1, 1),
    "atan2": (sympy.atan2, 2, 2),
    "erf": (sympy.erf, 1, 1),
    "erfc": (sympy.erfc, 1, 1),
    "gamma": (sympy.gamma, 1, 1),
    "loggamma": (sympy.loggamma, 1, 1),
    "sigmoid": (_sigmoid, 1, 1),
    "softplus": (_softplus, 1, 1),
    "relu": (_relu, 1, 1),
    "abs": (sympy.Abs, 1, 1),
    "Abs": (sympy.Abs, 1, 1),
    "sign": (sympy.sign, 1, 1),
    "Heaviside": (sympy.Heaviside, 1, 1),
    "max": (_max, 2, None),
    "Max": (_max, 2, None),
    "min": (_min, 2, None),
    "Min": (_min, 2, None),
}

CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "E": sympy.E}

# Names SymPy prints for its own special numbers; as symbols they would mislead.
_RESERVED = frozenset({"I", "oo", "zoo", "nan", "inf"})

_NONFINITE = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)
_NONFINITE_SET = frozenset(_NONFINITE)

_OPERATORS = {
    ast.FloorDiv: "'//'",
    ast.Mod: "'%'",
    ast.MatMult: "'@'",
    ast.LShift: "'<<'",
    ast.RShift: "'>>'",
    ast.BitOr: "'|'",
    ast.BitAnd: "'&'",
    ast.BitXor: "'^'",
    ast.Invert: "'~'",
    ast.Not: "'not'",
}

_REFUSED = {
    ast.Lambda: "lambda expressions are",
    ast.IfExp: "conditional expressions are",
    ast.Compare: "comparisons are",
    ast.BoolOp: "boolean operators are",
    ast.ListComp: "comprehensions are",
    ast.SetComp: "comprehensions are",
    ast.DictComp: "comprehensions are",
    ast.GeneratorExp: "generator expressions are",
    ast.List: "list literals are",
    ast.Tuple: "tuples are",
    ast.Set: "set literals are",
    ast.Dict: "dict literals are",
    ast.JoinedStr: "f-strings are",
    ast.NamedExpr: "assignment expressions are",
    ast.Starred: "starred expressions are",
    ast.Slice: "slices are",
}


def _shorten(text: Any) -> str:
    try:
        text = " ".join(str(text).split())
    except ValueError:  # an integer beyond Python's int-to-str digit limit
        return "(too long to show)"
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _lookalike_problem(text: str) -> str | None:
    """Why ``text`` holds a character that NFKC would change, or ``None``.

    Python normalises identifiers with NFKC, so the parser would silently read
    ``𝐸`` (U+1D438) as ``E`` and ``ﬁ`` as ``fi``.
    """
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return None
    for i, ch in enumerate(text):
        plain = unicodedata.normalize("NFKC", ch)
        if plain != ch:
            hint = "" if unicodedata.category(ch) == "No" else f"; write {plain!r}"
            return f"character {ch!r} (U+{ord(ch):04X}) is not allowed{hint}"
        if i and unicodedata.combining(ch):
            pair = text[i - 1 : i + 1]
            if not unicodedata.is_normalized("NFKC", pair):
                plain = unicodedata.normalize("NFKC", pair)
                return f"combining character U+{ord(ch):04X} is not allowed; write {plain!r}"
    return "the text is not in Unicode NFKC normal form"


def _size(sub: sympy.Expr) -> int:
    """The size of ``sub`` towards :data:`MAX_SIZE` (see the module doc)."""
    size = 1 + len(sub.args)
    if isinstance(sub, sympy.Function):  # SymPy evaluates a function term by term
        size += _TERM_COST * sum(len(sympy.Add.make_args(a)) for a in sub.args)
    return size


def _approximate(sub: sympy.Expr, args: list[sympy.Expr]) -> sympy.Expr:
    """A Float (or complex) approximation of the constant ``sub`` from its arguments' approximations.

    Evaluating each node once from its children's values keeps the cost linear in
    the size; ``evalf`` on a deeply nested constant re-evaluates it many times.
    """
    if sub.is_Float:
        return sub
    if sub.is_Rational:
        return sympy.Float(sub, _DIGITS)
    value = sub.func(*args) if args else sub
    return value if value.is_Float else value.evalf(_DIGITS)


def _magnitude_problem(value: sympy.Expr, approx: sympy.Expr) -> str | None:
    """Why the constant ``value`` (approximately ``approx``) is not a float64, or ``None``."""
    if value.is_Rational and max(abs(value.p).bit_length(), value.q.bit_length()) > MAX_EXACT_BITS:
        return f"has more than {MAX_EXACT_BITS} bits; write it as a float"
    if not approx.is_Float or approx in _NONFINITE_SET:
        return "is not finite"
    size = abs(float(approx))  # inf above the float64 range, 0.0 below it
    if size > _FLOAT_MAX:
        return "overflows float64"
    if size == 0 and not approx.is_zero:
        return "underflows float64 (it would round to 0)"
    return None


def _name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a symbol, or ``None`` if it can."""
    if not name.isidentifier() or keyword.iskeyword(name):
        return f"{name!r} is not a valid symbol name"
    if name.startswith("_"):
        return f"name {name!r} is not allowed (names may not start with '_')"
    if name in FUNCTIONS:
        return f"{name!r} is a function name and cannot be used as a symbol"
    if name in CONSTANTS:
        return f"{name!r} is a constant and cannot be used as a symbol"
    if name in _RESERVED:
        return f"name {name!r} is reserved"
    return None


def _named_symbols(items: Any, argname: str) -> dict[str, sympy.Symbol]:
    """Map names to Symbols for ``params``/``consts`` given as names or Symbols."""
    if items is None:
        return {}
    if isinstance(items, str | sympy.Symbol):
        raise LossParseError(
            f"{argname}: expected a sequence of names or Symbols, got "
            f"{type(items).__name__} {_shorten(repr(items))}; wrap it in a list"
        )
    try:
        items = list(items)
    except TypeError:
        raise LossParseError(
            f"{argname}: expected a sequence of names or Symbols, got {type(items).__name__}"
        ) from None
    out: dict[str, sympy.Symbol] = {}
    for i, item in enumerate(items):
        if isinstance(item, sympy.Symbol):
            sym = item
        elif isinstance(item, str):
            problem = _lookalike_problem(item) or _name_problem(item)
            if problem:
                raise LossParseError(f"{argname}: {problem}")
            sym = sympy.Symbol(item, real=True)
        else:
            raise LossParseError(
                f"{argname}: item {i} must be a name or a Symbol, got {type(item).__name__}"
            )
        if sym.name in out:
            raise LossParseError(f"{argname}: duplicate name {sym.name!r}")
        out[sym.name] = sym
    return out


def _max_bracket_depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


def _caret_to_power(text: str) -> tuple[str, list[int]]:
    """Replace ``^`` by ``**``; also return each new character's original index."""
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        piece = "**" if ch == "^" else ch
        out.append(piece)
        origin.extend([i] * len(piece))
    origin.append(len(text))
    return "".join(out), origin


class _Builder:
    """Turns a whitelisted :mod:`ast` tree into a SymPy expression."""

    def __init__(self, source: str, name: str, symbol: Callable[[str], sympy.Symbol]):
        self.source = source
        self.name = name
        self.symbol = symbol
        self.number: dict[sympy.Basic, bool] = {}  # checked subexpression -> is it a constant?
        self.height: dict[sympy.Basic, int] = {}  # checked subexpression -> depth of its tree
        self.approx: dict[sympy.Basic, sympy.Float] = {}  # checked constant -> its value
        self.size = 0  # total size of the checked subexpressions (see the module doc)

    def error(self, message: str, node: ast.AST | None = None) -> LossParseError:
        if node is not None:
            segment = ast.get_source_segment(self.source, node)
            if segment:
                message += f" ({_shorten(segment)!r})"
        return LossParseError(f"{self.name}: {message}")

    def build(self, node: ast.AST, depth: int = 0) -> sympy.Expr:
        if depth > MAX_DEPTH:
            raise self.error(f"the expression is nested too deeply (more than {MAX_DEPTH} levels)")
        try:
            value = self._node(node, depth)
            if value in _NONFINITE_SET or any(a in _NONFINITE_SET for a in value.args):
                raise self.error("the expression is not finite", node)
            self._check_bounds(value, node)
        except LossParseError:
            raise
        except (ArithmeticError, ValueError) as exc:  # from SymPy or mpmath, e.g. a pole
            raise self.error(f"cannot evaluate the expression ({_shorten(exc)})", node) from None
        except RecursionError:  # SymPy recurses several levels per level of the text
            raise self.error("the expression is nested too deeply for SymPy", node) from None
        return value

    def _node(self, node: ast.AST, depth: int) -> sympy.Expr:
        if isinstance(node, ast.Constant):
            value = self._constant(node)
        elif isinstance(node, ast.Name):
            value = self._name(node)
        elif isinstance(node, ast.BinOp):
            value = self._binop(node, depth)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.UAdd | ast.USub):
                raise self.error(
                    f"operator {_OPERATORS.get(type(node.op), type(node.op).__name__)} is not allowed",
                    node,
                )
            operand = self.build(node.operand, depth + 1)
            value = -operand if isinstance(node.op, ast.USub) else operand
        elif isinstance(node, ast.Call):
            value = self._call(node, depth)
        elif isinstance(node, ast.Attribute):
            self.build(node.value, depth + 1)  # report what it is applied to first
            raise LossParseError(f"{self.name}: attribute access is not allowed ('.{node.attr}')")
        elif isinstance(node, ast.Subscript):
            self.build(node.value, depth + 1)
            raise self.error("subscripts are not allowed", node)
        else:
            what = _REFUSED.get(type(node), f"{type(node).__name__} expressions are")
            raise self.error(f"{what} not allowed", node)
        return value

    def _charge(self, size: int, node: ast.AST) -> None:
        self.size += size
        if self.size > MAX_SIZE:
            raise self.error(f"the expression grows too large while being built (size above {MAX_SIZE})", node)

    def _check_bounds(self, value: sympy.Basic, node: ast.AST) -> None:
        """Check the subexpressions SymPy formed since the last check, children first."""
        todo: list[tuple[sympy.Basic, bool]] = [(value, False)]
        while todo:
            sub, children_done = todo.pop()
            if sub in self.number:
                continue
            if not children_done:
                todo.append((sub, True))
                todo.extend((a, False) for a in sub.args if a not in self.number)
                continue
            is_number = all(self.number[a] for a in sub.args) if sub.args else bool(sub.is_number)
            height = 1 + max((self.height[a] for a in sub.args), default=0)
            if height > _MAX_TREE_DEPTH:
                raise self.error(
                    f"the expression is nested too deeply (more than {_MAX_TREE_DEPTH} levels "
                    "once sigmoid and softplus are written out)",
                    node,
                )
            self._charge(_size(sub), node)
            if is_number:
                if height > _MAX_CONSTANT_DEPTH:
                    raise self.error(
                        f"the constant is nested too deeply (more than {_MAX_CONSTANT_DEPTH} levels)", node
                    )
                approx = _approximate(sub, [self.approx[a] for a in sub.args])
                if approx.has(sympy.I):
                    raise self.error("the expression is not real", node)
                problem = _magnitude_problem(sub, approx)
                if problem:
                    shown = "" if sub.is_Rational else f" {_shorten(sub)}"
                    raise self.error(f"the constant{shown} {problem}", node)
                self.approx[sub] = approx
            elif sub.is_Pow and self.number[sub.exp] and abs(self.approx[sub.exp]) > MAX_EXPONENT:
                raise self.error(f"the exponent is larger than {MAX_EXPONENT} in magnitude", node)
            self.number[sub] = is_number
            self.height[sub] = height

    def _constant(self, node: ast.Constant) -> sympy.Expr:
        value = node.value
        if type(value) is int:
            return sympy.Integer(value)
        if type(value) is float:
            if not math.isfinite(value):
                raise self.error("the number is not finite", node)
            return sympy.Float(value)
        kinds = {
            str: "string literals are",
            bytes: "bytes literals are",
            complex: "complex numbers are",
        }
        what = kinds.get(type(value), f"the constant {value!r} is")
        raise self.error(f"{what} not allowed", node)

    def _name(self, node: ast.Name) -> sympy.Expr:
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        problem = _name_problem(node.id)
        if problem:
            raise LossParseError(f"{self.name}: {problem}")
        return self.symbol(node.id)

    def _binop(self, node: ast.BinOp, depth: int) -> sympy.Expr:
        if isinstance(node.op, ast.Pow):
            base = self.build(node.left, depth + 1)
            exponent = self.build(node.right, depth + 1)
            return self._power(base, exponent, node)
        additive = isinstance(node.op, ast.Add | ast.Sub)
        if additive:
            group: Any = (ast.Add, ast.Sub)
        elif isinstance(node.op, ast.Mult | ast.Div):
            group = (ast.Mult, ast.Div)
        else:
            raise self.error(
                f"operator {_OPERATORS.get(type(node.op), type(node.op).__name__)} is not allowed",
                node,
            )
        # Flatten the left-associated chain a + b - c + ... into one level.
        chain: list[ast.BinOp] = []
        left: ast.expr = node
        while isinstance(left, ast.BinOp) and isinstance(left.op, group):
            chain.append(left)
            left = left.left
        terms = [self.build(left, depth + 1)]
        for link in reversed(chain):
            value = self.build(link.right, depth + 1)
            if isinstance(link.op, ast.Sub):
                value = -value
            elif isinstance(link.op, ast.Div):
                if value.is_zero:
                    raise self.error("division by zero", link)
                value = sympy.Pow(value, -1)
            terms.append(value)
        return sympy.Add(*terms) if additive else sympy.Mul(*terms)

    def _power(self, base: sympy.Expr, exponent: sympy.Expr, node: ast.AST) -> sympy.Expr:
        # SymPy evaluates powers of numbers eagerly (and distributes (2*x)**n): bound
        # the result before it is computed. Base and exponent are checked already.
        if self.number[exponent]:
            power = float(self.approx[exponent])
            size = abs(float(self.approx[base])) if self.number[base] else 0.0
            if size:
                log_size = power * math.log(size)
                if log_size > math.log(_FLOAT_MAX) + _LOG_SLACK:
                    raise self.error("the constant overflows float64", node)
                if log_size < math.log(_FLOAT_TINY) - _LOG_SLACK:
                    raise self.error("the constant underflows float64 (it would round to 0)", node)
            elif not self.number[base] and abs(power) > MAX_EXPONENT:
                raise self.error(f"the exponent is larger than {MAX_EXPONENT} in magnitude", node)
        if exponent.is_Rational:
            atoms = base.atoms(sympy.Rational)
            bits = max((max(abs(r.p), r.q).bit_length() for r in atoms), default=0)
            if abs(exponent) * bits > MAX_EXACT_BITS:
                raise self.error("the power is too large to evaluate exactly", node)
        if base.is_zero and exponent.is_extended_negative:
            raise self.error("division by zero", node)
        if isinstance(base, sympy.Function) and self.number[exponent]:
            self._charge(_size(base), node)  # SymPy may evaluate it anew: exp(s)**2 is exp(2*s)
        return sympy.Pow(base, exponent)

    def _call(self, node: ast.Call, depth: int) -> sympy.Expr:
        if not isinstance(node.func, ast.Name):
            self.build(node.func, depth + 1)  # refuses attributes, lambdas, ...
            raise self.error("only calls of whitelisted functions are allowed", node)
        fname = node.func.id
        if fname not in FUNCTIONS:
            raise LossParseError(f"{self.name}: function {fname!r} is not allowed")
        if node.keywords:
            raise self.error(f"keyword arguments are not allowed in calls to {fname!r}", node)
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.error(f"starred arguments are not allowed in calls to {fname!r}", node)
        func, lo, hi = FUNCTIONS[fname]
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            expected = str(lo) if lo == hi else f"at least {lo}"
            plural = "" if expected == "1" else "s"
            raise self.error(f"{fname}() takes {expected} argument{plural}, got {n}", node)
        args = [self.build(a, depth + 1) for a in node.args]
        if fname in ("gamma", "loggamma") and args[0].is_Rational and abs(args[0]) > _MAX_GAMMA_ARG:
            raise self.error(f"{fname}() of a number above {_MAX_GAMMA_ARG} is not allowed", node)
        try:
            return func(*args)
        except _Refused as exc:
            raise self.error(str(exc), node) from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise self.error(f"cannot evaluate {fname}(): {_shorten(exc)}", node) from None


def _parse_tree(text: str, name: str) -> tuple[ast.expr, str]:
    """Parse ``text`` (``^`` already meaning power) into an expression tree."""
    stripped = text.strip()
    lead = len(text) - len(text.lstrip())
    source, origin = _caret_to_power(stripped)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        where = ""
        if exc.lineno is not None and exc.offset is not None:
            lines = source.split("\n")
            index = sum(len(line) + 1 for line in lines[: exc.lineno - 1]) + max(exc.offset - 1, 0)
            orig = lead + origin[min(index, len(origin) - 1)]
            line = text.count("\n", 0, orig) + 1
            column = orig - (text.rfind("\n", 0, orig) + 1) + 1
            where = f" at line {line}, column {column}" if "\n" in text else f" at column {column}"
        raise LossParseError(f"{name}: syntax error{where}: {_shorten(exc.msg)}") from None
    except (RecursionError, MemoryError):
        raise LossParseError(
            f"{name}: the expression is nested too deeply for the parser "
            "(long chains of operators count as nesting)"
        ) from None
    except ValueError as exc:  # e.g. null bytes (Python < 3.12)
        raise LossParseError(f"{name}: cannot parse the text: {_shorten(exc)}") from None
    return tree.body, source


def parse_loss(
    text: str,
    params: Sequence[str | sympy.Symbol] | None = None,
    consts: Sequence[str | sympy.Symbol] = (),
    *,
    name: str = "loss",
) -> tuple[sympy.Expr, tuple[sympy.Symbol, ...], tuple[sympy.Symbol, ...]]:
    """Parse a loss written as text, without evaluating any Python.

    See the module docstring for the accepted grammar. Names in the text are
    looked up among ``params`` and ``consts``; names given as strings become
    ``sympy.Symbol(name, real=True)``, Symbols are used as given.

    Args:
        text: The loss, e.g. ``"(x*y - 1)^2 / 2"``.
        params: The parameters, as names or Symbols, in the order wanted. If
            ``None``, every symbol of the text that is not a constant, in
            natural order (``theta2`` before ``theta10``). When given, the
            text may use only params and consts; unused params are allowed.
        consts: Symbols that are not differentiated (e.g. data, a scale).
        name: Argument name used in error messages.

    Returns:
        ``(expr, params, consts)``: the expression and the Symbol tuples, the
        very objects that occur in ``expr``.

    Raises:
        LossParseError: For anything outside the grammar, syntax errors, text
            beyond the resource bounds of the module doc (``MAX_LENGTH``,
            ``MAX_DEPTH``, ``MAX_SIZE``, ``MAX_EXPONENT``, ``MAX_EXACT_BITS``,
            ``MAX_MINMAX_ARGS``, constants outside float64), look-alike
            characters, unknown symbols, bad ``params``/``consts``, and results
            that are not finite and real (e.g. ``1/0``, ``log(0)``, ``sqrt(-1)``).

    Example:
        >>> expr, params, consts = parse_loss("(x*y - 1)^2 / 2 + lam*x**2", consts=["lam"])
        >>> expr
        lam*x**2 + (x*y - 1)**2/2
        >>> params, consts
        ((x, y), (lam,))
        >>> parse_loss("__import__('os').system('ls')")
        Traceback (most recent call last):
            ...
        derive.errors.LossParseError: loss: function '__import__' is not allowed
    """
    if not isinstance(text, str):
        raise LossParseError(f"{name}: expected a str, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise LossParseError(
            f"{name}: the text is too long ({len(text)} > {MAX_LENGTH} characters)"
        )
    if not text.strip():
        raise LossParseError(f"{name}: the text is empty")
    problem = _lookalike_problem(text)
    if problem:
        raise LossParseError(f"{name}: {problem}")
    const_map = _named_symbols(consts, "consts")
    param_map = None if params is None else _named_symbols(params, "params")
    if param_map is not None:
        if not param_map:
            raise LossParseError("params: expected at least one parameter, got none")
        both = sorted(set(param_map) & set(const_map), key=symbol_sort_key)
        if both:
            raise LossParseError(f"consts: {both} also appear in params")
    if _max_bracket_depth(text) > MAX_DEPTH:
        raise LossParseError(
            f"{name}: the expression is nested too deeply (more than {MAX_DEPTH} levels)"
        )

    known = {**const_map, **(param_map or {})}
    created: dict[str, sympy.Symbol] = {}

    def symbol(sym_name: str) -> sympy.Symbol:
        if sym_name in known:
            return known[sym_name]
        if sym_name not in created:
            created[sym_name] = sympy.Symbol(sym_name, real=True)
        return created[sym_name]

    tree, source = _parse_tree(text, name)
    expr = _Builder(source, name, symbol).build(tree)

    if param_map is not None and created:
        unknown = sorted(created, key=symbol_sort_key)
        raise LossParseError(
            f"{name}: unknown symbols {unknown}; params are {list(param_map)}, "
            f"consts are {list(const_map)}"
        )
    if expr.has(*_NONFINITE):
        raise LossParseError(f"{name}: the expression is not finite ({_shorten(expr)})")
    if expr.has(sympy.I):
        raise LossParseError(f"{name}: the expression is not real ({_shorten(expr)})")
    if param_map is None:
        param_syms = tuple(sorted(created.values(), key=symbol_sort_key))
        if not param_syms:
            raise LossParseError(
                f"{name}: the expression has no parameters (symbols other than consts)"
            )
    else:
        param_syms = tuple(param_map.values())
    return expr, param_syms, tuple(const_map.values())
