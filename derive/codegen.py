"""Source-first code generation from SymPy to JAX (in the spirit of Symbolics.jl's build_function).

`build_function` prints SymPy expressions as one plain JAX function
`fn(theta, *consts)`: the parameters arrive packed in one array `theta`, the
constants as scalar arguments by name. The source is kept on the result,
registered with `linecache` (tracebacks and `inspect.getsource` show it) and can
be written to a standalone module whose header says what it was generated from.

References: Symbolics.jl `build_function`; SymPy `lambdify` and `JaxPrinter`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import itertools
import keyword
import linecache
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import sympy as sp
from sympy.tensor.array import NDimArray

from derive._dag import emit
from derive._nonsmooth import unsupported
from derive._walk import FreeSymbols
from derive._jax_printer import IMPORTS, JaxCodePrinter, float_literal

__all__ = ["GeneratedFunction", "build_function"]

_RESERVED = {"theta", "dtype", "jnp", "jax", "jspecial", "np", "lax", "math", "float", "ValueError"}


@dataclass(frozen=True, eq=False)
class GeneratedFunction:
    """A generated JAX function together with its source and provenance.

    Attributes:
        name: function name in the generated source.
        source: full text of the generated module (what `write` saves).
        fn: the raw function `fn(theta, *consts)`; plain JAX, so jit/vmap/grad apply.
        params: SymPy symbols, in the order they are packed in `theta`.
        consts: SymPy symbols passed as scalar arguments (positional or by name).
        exprs: the expressions it was generated from, as given.
        arg_names: the Python names of `consts` in `fn`'s signature.
        filename: the `linecache` name the source is registered under.
        timings: seconds spent checking and printing (`print`, CSE included) and in `exec`.
    """

    name: str
    source: str
    fn: Callable
    params: tuple[sp.Symbol, ...]
    consts: tuple[sp.Symbol, ...]
    exprs: Any
    arg_names: tuple[str, ...]
    filename: str
    timings: dict[str, float] = field(default_factory=dict, repr=False)

    def __call__(self, theta: Any, /, *args: Any, **kwargs: Any) -> Any:
        """`fn(theta, *consts)`; constants may also be passed by keyword, under their SymPy names
        (any name, even 'theta') or their Python argument names."""
        if kwargs:
            names = [s.name for s in self.consts]
            renamed = {}
            for key in kwargs:
                if names.count(key) > 1:
                    raise TypeError(f"{key}: {names.count(key)} constants are named {key!r}; pass them by position")
                if key in names:
                    renamed[key] = self.arg_names[names.index(key)]
                elif key in self.arg_names:
                    renamed[key] = key
                else:
                    raise TypeError(f"{key}: not a constant of {self.name} (constants: {names})")
            kwargs = {renamed[k]: v for k, v in kwargs.items()}
        return self.fn(theta, *args, **kwargs)

    def write(self, path: str | Path) -> Path:
        """Write the standalone module to `path` (UTF-8, `\\n` line ends) and return the path."""
        path = Path(path)
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(self.source)
        return path

    def __repr__(self) -> str:
        args = ", ".join(("theta",) + self.arg_names)
        return f"GeneratedFunction({self.name}({args}), params={list(self.params)})"


def build_function(exprs: Any, params: Sequence[sp.Symbol], consts: Sequence[sp.Symbol] = (),
                   *, name: str = "generated_fn", cse: bool = True,
                   source_note: str | None = None) -> GeneratedFunction:
    """Generate a JAX function evaluating SymPy expressions.

    The function is `name(theta, *consts)`: `theta` has shape `(len(params),)`
    and is unpacked as `params[k] = theta[k]`; each constant is a scalar passed
    positionally or by name. Outputs follow `exprs`: a scalar expression gives
    shape `()`, a column Matrix `(n,)`, any other Matrix `(m, k)`, an Array its
    shape, and a list/tuple of these a tuple. Outputs have theta's float dtype.

    With `cse=True` all outputs are printed as one straight-line program built
    from a hash-consed DAG (much faster than `sympy.cse` on large inputs):
    equal subexpressions are computed once (a Hessian whose mirrored entries are
    the same SymPy objects costs half); sums are normalized so scaled copies are
    shared; terms sharing a monomial are collected; in long sums, products of
    short homogeneous polynomials are expanded when that maps many products onto
    few monomials (Gram sums such as sum_i (a_i x + b_i y)^2 become quadratic
    forms); long linear combinations become matrix products with constant
    matrices. These rewrites change rounding only, and factors with a constant
    term, such as (x^2 - 1)^2, are never expanded. With `cse=False` every output
    is printed literally by `JaxCodePrinter`.

    Args:
        exprs: SymPy Expr, Matrix, Array, or a list/tuple of those.
        params: Symbols packed in `theta`, in order; at least one.
        consts: Symbols passed as scalar arguments; disjoint from `params`.
        name: Python identifier for the generated function.
        cse: share subexpressions and simplify arithmetic (see above).
        source_note: free text added to the generated module's header.

    Returns:
        The callable `GeneratedFunction`; `.source` holds the module text.

    Raises:
        TypeError: `exprs`, `params` or `consts` have the wrong type.
        ValueError: duplicate or overlapping symbols, free symbols of `exprs`
            missing from `params`/`consts`, or an expression JAX cannot express.

    References:
        Symbolics.jl `build_function` (source-first generation, golden files);
        SymPy `lambdify` and `printing.numpy.JaxPrinter`.

    Example:
        >>> import sympy as sp
        >>> x, y, a = sp.symbols("x y a")
        >>> f = build_function([a * x**2 + y, sp.Matrix([2 * a * x, 1])], [x, y], [a])
        >>> value, grad = f([3.0, 1.0], a=2.0)
        >>> float(value), grad.tolist()
        (19.0, [12.0, 1.0])
    """
    start = time.perf_counter()
    flat, layout, as_tuple = _flatten(exprs)
    params = _symbols(params, "params")
    consts = _symbols(consts, "consts")
    if not params:
        raise ValueError("params: expected at least one Symbol, got an empty sequence")
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"name: expected a Python identifier, got {name!r}")
    overlap = set(params) & set(consts)
    if overlap:
        raise ValueError(f"consts: {_names(overlap)} also appear in params")
    _check_free_symbols(flat, params, consts)
    why = unsupported(flat)
    if why:
        raise ValueError(f"exprs: {why}")

    taken = set(_RESERVED) | {name}
    names = {s: _identifier(s.name, taken) for s in (*params, *consts)}
    try:
        if cse:
            constants, lines, texts = emit(flat, names, "_x{}".format, "_K{}".format)
        else:
            printer = JaxCodePrinter(symbol_names=names)
            constants, lines, texts = [], [], [printer.doprint(e) for e in flat]
    except NotImplementedError as err:
        raise ValueError(f"exprs: cannot express in JAX: {err}".splitlines()[0]) from err

    fingerprint, shown = _fingerprint(flat)
    header = _header(name, params, consts, names, layout, fingerprint, shown, source_note)
    body = _function(name, params, consts, names, lines, texts, layout, as_tuple)
    imports = [line for line in IMPORTS if re.search(rf"\b{line.split()[-1]}\.", body)]
    imports += ["import numpy as np"] if constants else []
    arrays = [f"{k} = np.array({_nested_literal(v)})" for k, v in constants]
    source = "\n".join([*header, *imports, *([""] + arrays if arrays else []), "", "",
                        body]) + "\n"
    printed = time.perf_counter()
    filename = f"<gdflows-generated:{name}:{hashlib.sha256(source.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": f"gdflows_generated.{name}"}
    exec(compile(source, filename, "exec"), namespace)  # our own printed source
    timings = {"print": printed - start, "exec": time.perf_counter() - printed}
    return GeneratedFunction(name, source, namespace[name], params, consts, exprs,
                             tuple(names[s] for s in consts), filename, timings)


# ---------------------------------------------------------------- input checks
def _flatten(exprs: Any) -> tuple[list[sp.Expr], list[tuple[str, tuple]], bool]:
    """Flat scalar list, per-output (kind, shape), and whether a tuple is returned."""
    items, as_tuple = ((list(exprs), True) if isinstance(exprs, (list, tuple)) else ([exprs], False))
    if not items:
        raise ValueError("exprs: expected at least one expression, got an empty sequence")
    flat: list[sp.Expr] = []
    layout = []
    for k, item in enumerate(items):
        where = f"exprs[{k}]" if as_tuple else "exprs"
        if isinstance(item, sp.MatrixBase):
            shape = (item.rows,) if item.cols == 1 else (item.rows, item.cols)
            elements = list(item)
        elif isinstance(item, NDimArray):
            shape = tuple(item.shape)
            elements = [item[idx] for idx in itertools.product(*map(range, shape))]
        elif isinstance(item, sp.Expr):
            shape, elements = (), [item]
        else:
            raise TypeError(f"{where}: expected a SymPy Expr, Matrix or Array, "
                            f"got {type(item).__name__}")
        for e in elements:
            if not isinstance(e, sp.Expr):
                raise TypeError(f"{where}: expected SymPy Expr entries, got {type(e).__name__}")
        layout.append(("scalar" if not shape else "array", shape))
        flat.extend(elements)
    return flat, layout, as_tuple


def _symbols(seq: Iterable, arg: str) -> tuple[sp.Symbol, ...]:
    if isinstance(seq, (str, sp.Basic)) or not isinstance(seq, Iterable):
        raise TypeError(f"{arg}: expected a sequence of SymPy Symbols, got {type(seq).__name__}")
    out = tuple(seq)
    bad = [s for s in out if not isinstance(s, sp.Symbol)]
    if bad:
        raise TypeError(f"{arg}: expected SymPy Symbols, got {bad[0]!r} ({type(bad[0]).__name__})")
    dup = {s for s in out if out.count(s) > 1}
    if dup:
        raise ValueError(f"{arg}: duplicate symbols {_names(dup)}")
    return out


def _check_free_symbols(flat: list[sp.Expr], params: tuple, consts: tuple) -> None:
    known = set(params) | set(consts)
    free = FreeSymbols().union(flat) - known
    if free:
        hint = ""
        clash = {s.name for s in free} & {s.name for s in known}
        if clash:
            hint = f" (same names as params/consts but different assumptions: {sorted(clash)})"
        raise ValueError(f"exprs: free symbols {_names(free)} are neither params nor consts{hint}")


def _names(symbols: Iterable[sp.Symbol]) -> str:
    return "{" + ", ".join(sorted(s.name for s in symbols)) + "}"


def _identifier(name: str, taken: set[str]) -> str:
    """A fresh Python identifier resembling `name`."""
    ident = re.sub(r"\W", "_", name) or "_"
    if not ident.isidentifier():
        ident = "_" + re.sub(r"[^0-9A-Za-z_]", "_", ident)
    if keyword.iskeyword(ident) or ident in _RESERVED:
        ident += "_"
    base, k = ident, 1
    while ident in taken or re.fullmatch(r"_[xK]\d+", ident):
        ident, k = f"{base}_{k}", k + 1
    taken.add(ident)
    return ident


# ------------------------------------------------------------------- printing
def _version() -> str:
    import derive

    version = getattr(derive, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version("gdflows")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
    return version


def _fingerprint(flat: list[sp.Expr]) -> tuple[str, list[str]]:
    """sha256 of the expression trees, and short text for the small ones."""
    memo: dict[sp.Basic, tuple[bytes, int]] = {}

    def digest(e: sp.Basic) -> tuple[bytes, int]:
        if e not in memo:
            if e.args:
                parts = [digest(a) for a in e.args]
                data = type(e).__name__.encode() + b"(" + b",".join(p[0] for p in parts)
                memo[e] = (hashlib.sha256(data).digest(), 1 + sum(p[1] for p in parts))
            else:   # a Dummy by name and assumptions: its index changes from session to session
                text = f"Dummy({e.name!r}, {sorted(e.assumptions0.items())})" if isinstance(e, sp.Dummy) \
                    else sp.srepr(e)
                memo[e] = (hashlib.sha256(text.encode()).digest(), 1)
        return memo[e]

    total = hashlib.sha256()
    shown = []
    for e in flat:
        d, size = digest(e)
        total.update(d)
        if size <= 60 and len(shown) < 12:
            text = sp.sstr(e)
            shown.append(text if len(text) <= 90 else text[:87] + "...")
    return total.hexdigest()[:16], shown


def _header(name: str, params: tuple, consts: tuple, names: dict, layout: list,
            fingerprint: str, shown: list[str], note: str | None) -> list[str]:
    def listing(symbols: tuple) -> str:
        return ", ".join(names[s] if names[s] == s.name else f"{names[s]} (SymPy {s.name!r})"
                         for s in symbols) or "(none)"

    outputs = ", ".join("scalar" if kind == "scalar" else f"array{shape}" for kind, shape in layout)
    lines = [f"# Generated by gdflows {_version()} (derive.codegen.build_function); do not edit.",
             "# Regenerate from the SymPy source instead: identical input gives identical bytes.",
             f"# function: {name}({', '.join(['theta', *(names[s] for s in consts)])})",
             f"# params (packed in theta, in order): {listing(params)}",
             f"# consts (scalar arguments): {listing(consts)}",
             f"# outputs: {outputs}",
             f"# exprs sha256: {fingerprint}"]
    lines += [f"#   {text}" for text in shown]
    lines += [f"# note: {line}".rstrip() for line in (note or "").splitlines()]
    return [_printable(line) for line in lines] + ["", ""]


def _printable(line: str) -> str:
    """A comment line that stays one line whatever the symbol names contain."""
    return "".join(ch if ch.isprintable() else "?" for ch in line)


def _function(name: str, params: tuple, consts: tuple, names: dict, lines: list[str],
              texts: list[str], layout: list, as_tuple: bool) -> str:
    args = ", ".join(["theta", *(names[s] for s in consts)])
    n = len(params)
    out = [f"def {name}({args}):",
           f'    """Generated kernel; see the module header. theta: shape ({n},)."""',
           "    theta = jnp.asarray(theta)",
           "    dtype = jnp.result_type(theta.dtype, float)",
           f"    if theta.shape != ({n},):",
           f'        raise ValueError(f"theta: expected shape ({n},), got {{theta.shape}}")']
    for s in consts:   # as arrays: never Python float arithmetic (1.0/0.0 raises, 10.0**400 overflows)
        c = names[s]
        out += ["    try:",
                f"        {c} = jnp.asarray({c}, dtype)",
                "    except (TypeError, ValueError):",
                f'        raise TypeError(f"{c}: expected a number, got {{type({c}).__name__}}") from None',
                f"    if jnp.ndim({c}) != 0:",
                f'        raise ValueError(f"{c}: expected a scalar, got shape {{jnp.shape({c})}}")']
    out.append("    theta = theta.astype(dtype)")
    out += [f"    {names[s]} = theta[{k}]" for k, s in enumerate(params)]
    out += [f"    {line}" for line in lines]
    results, pos = [], 0
    indent = 8 if as_tuple else 4
    for kind, shape in layout:
        size = math.prod(shape)
        chunk, pos = texts[pos:pos + size], pos + size
        if kind == "scalar":
            results.append(f"jnp.asarray({chunk[0]}, dtype)")
        else:
            results.append(f"jnp.array({_nest(chunk, shape, indent + 4)}, dtype)")
    if as_tuple:
        out += ["    return ("] + [f"        {r}," for r in results] + ["    )"]
    else:
        out.append(f"    return {results[0]}")
    return "\n".join(out)


def _nest(items: list[str], shape: tuple, indent: int) -> str:
    """Nested list literal of `items` (C order) with the given shape."""
    if len(shape) == 1:
        return "[" + ", ".join(items) + "]"
    step = len(items) // shape[0]
    rows = [_nest(items[k * step:(k + 1) * step], shape[1:], indent + 4) for k in range(shape[0])]
    pad = " " * indent
    return "[\n" + "".join(f"{pad}{r},\n" for r in rows) + " " * (indent - 4) + "]"


def _nested_literal(values: Any) -> str:
    if isinstance(values, list) and values and isinstance(values[0], list):
        return "[\n" + "".join(f"    [{', '.join(map(float_literal, row))}],\n"
                               for row in values) + "]"
    return "[" + ", ".join(map(float_literal, values)) + "]"
