"""Print operator formulas as JAX autodiff programs for any loss over a parameter pytree.

No expression of the loss is needed: ∇L is ``grad``, H v a jvp of the gradient, D³L[u, v] a jvp
of that, and so on (forward-over-reverse). :func:`compile_operator` prints the formula(s) as a
small Python module, in the spirit of Symbolics.jl's ``build_function``: one function over the
flat parameter vector ``w`` that computes each distinct contraction once as a named local
(``g = grad(w)``, ``H_g = jvp(grad, w, g)``, ``T_g_g = jvp(lambda x: jvp(grad, x, g), w, g)``,
``dot_g_H_g = jnp.vdot(g, H_g)``), then the scalar and vector arithmetic. The program runs that
printed function; nothing walks the formula tree while JAX traces. A change to a formula is a
diff of generated code (golden files in ``tests/golden/``). The programs compose with
``jax.jit`` and ``jax.vmap`` and run unchanged on networks with millions of parameters.

References: Symbolics.jl ``build_function`` (source-first generation, golden files).
"""
from __future__ import annotations

import hashlib
import keyword
import linecache
import re
from collections.abc import Callable
from pathlib import Path

import sympy as sp
from sympy.printing.str import StrPrinter

from ._jax_printer import float_literal
from .codegen import _printable, _version
from .ops import DL, Dot, Form, Vec, _chain, opstr
from .ops import eta as ETA

__all__ = ["OperatorProgram", "compile_operator"]

_ATOMS = (DL, Form, Dot)
# the generated module's globals and the function's fixed arguments and locals
_FIXED = {"w", "x", "loss", "grad", "jvp", "jax", "jnp", "eta"}
_RESERVED = _FIXED | {"g", "L"}     # inputs with these names get a suffix (g and L are ∇L and L)
_KEYWORDS = {"params", "eta"}        # keywords of OperatorProgram.__call__ itself
_MAX_NAME = 40


class OperatorProgram:
    """A compiled operator formula: ``program(params, eta=..., **inputs)``.

    Vector formulas return a pytree shaped like ``params``; scalar formulas a 0-d array; a list
    of formulas a list. Named input vectors (:class:`~derive.ops.Vec`) are pytrees shaped like
    ``params``; other free scalar symbols are passed by name as keyword arguments. The learning
    rate is the symbol :data:`derive.ops.eta` itself (matched by SymPy equality, never by name)
    and is passed as ``eta=``.

    Attributes:
        source: the generated module (what :meth:`write` saves); registered with ``linecache``.
        fn: the generated function ``fn(w, loss, grad, [eta], *vectors, *scalars)`` over flat ``w``.
        function_name: its name in ``source``.
        filename: the ``linecache`` name of ``source`` (shown in tracebacks).
        vector_inputs, scalar_inputs: the keyword names of the inputs, sorted.
    """

    def __init__(self, expr, loss_fn: Callable, name: str = "operator"):
        if not callable(loss_fn):
            raise TypeError(f"loss_fn: expected a callable params -> scalar, got {type(loss_fn).__name__}")
        if not isinstance(name, str):
            raise TypeError(f"name: expected a string, got {type(name).__name__}")
        self.many = isinstance(expr, (list, tuple, sp.MatrixBase))
        self.exprs = tuple(sp.sympify(e) for e in (expr if self.many else [expr]))
        if not self.exprs:
            raise ValueError("expr: expected at least one formula, got an empty list")
        self.expr = sp.Tuple(*self.exprs) if self.many else self.exprs[0]
        self.loss_fn = loss_fn
        self.name = name
        gen = _Generator(self.exprs, name, self.many)
        self.uses_eta = gen.uses_eta
        self.vector_inputs = tuple(s.name for s in gen.vectors)
        self.scalar_inputs = tuple(s.name for s in gen.scalars)
        self.function_name = gen.fname
        self.source = gen.source
        self.filename = f"<gdflows-operator:{gen.fname}:{hashlib.sha256(self.source.encode()).hexdigest()[:12]}>"
        linecache.cache[self.filename] = (len(self.source), None, self.source.splitlines(True), self.filename)
        namespace: dict = {"__name__": f"gdflows_generated.{gen.fname}"}
        exec(compile(self.source, self.filename, "exec"), namespace)  # our own printed source
        self.fn = namespace[gen.fname]

    def __repr__(self):
        return f"OperatorProgram({self.name}: {self.expr})"

    def write(self, path) -> Path:
        """Write the generated module to ``path`` (UTF-8, ``\\n`` line ends) and return the path."""
        path = Path(path)
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(self.source)
        return path

    def __call__(self, params, eta=None, **inputs):
        import jax
        import jax.numpy as jnp
        from jax.flatten_util import ravel_pytree

        flat, unravel = ravel_pytree(params)
        missing = [n for n in self.vector_inputs + self.scalar_inputs if n not in inputs]
        if missing:
            raise ValueError(f"inputs: {self.name} needs {missing}")
        if eta is None and self.uses_eta:
            raise ValueError(f"eta: {self.name} depends on the learning rate; pass eta=")
        vecs = [ravel_pytree(inputs[n])[0].astype(flat.dtype) for n in self.vector_inputs]
        for n, v in zip(self.vector_inputs, vecs):
            if v.shape != flat.shape:
                raise ValueError(f"{n}: expected {flat.shape[0]} entries like params, got {v.shape[0]}")
        scalars = [jnp.asarray(inputs[n], flat.dtype) for n in self.scalar_inputs]

        def loss_flat(x):
            return self.loss_fn(unravel(x))

        def grad_flat(x):   # the gradient of the pytree loss, then flattened (see numeric.problem.Problem)
            return ravel_pytree(jax.grad(self.loss_fn)(unravel(x)))[0].astype(x.dtype)

        lr = [jnp.asarray(eta, flat.dtype)] if self.uses_eta else []
        out = self.fn(flat, loss_flat, grad_flat, *lr, *vecs, *scalars)
        results = [unravel(r) if jnp.ndim(r) == 1 else r for r in (out if self.many else [out])]
        return results if self.many else results[0]


def compile_operator(expr, loss_fn: Callable, name: str = "operator") -> OperatorProgram:
    """Compile an operator formula (or a list of them) for a JAX loss ``loss_fn(params) -> scalar``.

    The formula is printed as a Python function over the flat parameter vector (``.source``,
    ``.write(path)``), which the returned program runs: ∇L by ``jax.grad``, every higher
    derivative by jvps of it, each distinct contraction computed once. A list of formulas
    becomes one program returning a list; shared contractions (e.g. the third-derivative
    vectors of a central flow's A, B and velocity) are computed once. Identical formulas and
    name give identical source bytes.

    Args:
        expr: a formula over :mod:`derive.ops` (``DL``, ``Form``, ``Dot``, ``Vec``, ``eta``,
            other scalar symbols, numbers, ``+``, ``*``, ``**``), or a list of them.
        loss_fn: the loss, a JAX function of a parameter pytree.
        name: the program's title (the generated function is named after it).

    Returns:
        The callable :class:`OperatorProgram` ``program(params, eta=..., **inputs)``.

    Raises:
        TypeError: ``loss_fn`` is not callable.
        ValueError: the formula uses something outside the vocabulary, or two different free
            symbols share a name, or a symbol other than ``derive.ops.eta`` is named ``eta``.

    Example:
        >>> import jax.numpy as jnp
        >>> from derive.ops import DL, grad
        >>> hg = compile_operator(DL(grad), lambda p: jnp.sum(p["w"] ** 4) / 4)
        >>> hg({"w": jnp.array([1.0, 2.0])})["w"].tolist()   # H g = 3 w² · w³
        [3.0, 96.0]
        >>> print(hg.source.split("def operator")[1].splitlines()[2:4])
        ['    g = grad(w)', '    H_g = jvp(grad, w, g)']
    """
    return OperatorProgram(expr, loss_fn, name)


# --------------------------------------------------------------------------- generation

def _has_vector(e) -> bool:
    """Whether ``e`` is vector-valued (a DL/Vec outside any Dot/Form)."""
    if isinstance(e, (DL, Vec)):
        return True
    if isinstance(e, (Dot, Form)) or not e.args:
        return False
    return any(_has_vector(a) for a in e.args)


def _is_constant(e) -> bool:
    """A number (``e.is_number`` alone would also say so of ``Form()``, which has no arguments)."""
    return not e.free_symbols and not any(isinstance(a, _ATOMS) for a in sp.preorder_traversal(e))


def _describe(s) -> str:
    """``Symbol``, ``Dummy``, ``Vec`` with the assumptions it was made with, e.g. ``Symbol(positive)``."""
    given = sorted(k if v else f"not {k}" for k, v in getattr(s, "_assumptions_orig", {}).items())
    return type(s).__name__ + (f"({', '.join(given)})" if given else "")


def _linear(e):
    """``e`` as ``{vector atom: scalar coefficient}`` (insertion-ordered), or None if not linear."""
    if isinstance(e, (DL, Vec)):
        return {e: sp.Integer(1)}
    if isinstance(e, sp.Add):
        out: dict = {}
        for t in e.args:
            part = _linear(t)
            if part is None:
                return None
            for a, c in part.items():
                out[a] = out.get(a, sp.Integer(0)) + c
        return out
    if isinstance(e, sp.Mul):
        vec = [f for f in e.args if _has_vector(f)]
        if len(vec) != 1:
            return None
        part = _linear(vec[0])
        scale = sp.Mul(*[f for f in e.args if f is not vec[0]])
        return None if part is None else {a: scale * c for a, c in part.items()}
    return None


def _check_node(e):
    if isinstance(e, (*_ATOMS, sp.Symbol, sp.Add, sp.Mul, sp.Pow, sp.NumberSymbol)):
        return
    if isinstance(e, (sp.Integer, sp.Rational)) or (isinstance(e, sp.Float) and e.is_finite):
        return
    text = str(e)
    text = text if len(text) <= 60 else text[:57] + "..."
    raise ValueError(f"expr: cannot compile {type(e).__name__} ({text})")


def _identifier(name: str) -> str:
    """An ASCII Python identifier resembling ``name`` (non-ASCII and punctuation become ``_``)."""
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name) or "_"
    return "_" + ident if ident[0].isdigit() else ident


class _Printer(StrPrinter):
    """Python arithmetic over the program's locals: atoms and symbols print as their names."""

    def __init__(self, names):
        super().__init__()
        self.names = names

    def _print_local(self, e):
        return self.names[e]

    _print_Symbol = _print_Dummy = _print_Vec = _print_local
    _print_DL = _print_Form = _print_Dot = _print_local

    def _print_Pow(self, e, rational=False):
        return super()._print_Pow(e, rational=True)     # x**(1/2), never sqrt(x)

    def _print_Float(self, e):
        return float_literal(float(e))

    def _print_NumberSymbol(self, e):
        return float_literal(float(e))

    _print_Pi = _print_Exp1 = _print_EulerGamma = _print_GoldenRatio = _print_NumberSymbol
    _print_Catalan = _print_TribonacciConstant = _print_NumberSymbol


class _Generator:
    """Prints formulas as one function; ``.source`` is the module text."""

    def __init__(self, exprs, title: str, many: bool):
        for e in exprs:
            for node in sp.preorder_traversal(e):
                _check_node(node)
        free = set().union(*(e.free_symbols for e in exprs))
        by_name: dict = {}
        for s in free:
            by_name.setdefault(s.name, []).append(s)
        for n, syms in sorted(by_name.items()):
            if len(syms) > 1:
                kinds = ", ".join(sorted(_describe(s) for s in syms))
                raise ValueError(f"expr: {len(syms)} different symbols are named {n!r} ({kinds}); "
                                 "rename one")
            if n in _KEYWORDS and syms[0] != ETA:
                raise ValueError(f"expr: symbol {n!r} is not the learning rate derive.ops.eta, but {n}= "
                                 "is a keyword of the program; rename it")
        self.uses_eta = ETA in free
        self.vectors = sorted((s for s in free if isinstance(s, Vec)), key=lambda s: s.name)
        self.scalars = sorted((s for s in free if not isinstance(s, Vec) and s != ETA), key=lambda s: s.name)

        self.taken = set(_FIXED)
        self.rank: dict = {}
        self.names: dict = {ETA: "eta"} if self.uses_eta else {}
        for s in (*self.vectors, *self.scalars):
            ident = _identifier(s.name)
            self.names[s] = self._fresh(ident, always_suffix=ident in _RESERVED)
        self.fname = self._function_name(title)
        self.args = ["w", "loss", "grad"] + (["eta"] if self.uses_eta else []) + \
            [self.names[s] for s in (*self.vectors, *self.scalars)]
        self.printer = _Printer(self.names)
        self.lines: list[str] = []
        self.n_temp = 0
        outputs = [self._output(e) for e in exprs]
        self.source = self._module(exprs, title, outputs, many)

    # ---- names
    def _fresh(self, base: str, always_suffix: bool = False) -> str:
        if keyword.iskeyword(base) or always_suffix:
            base += "_"
        name, k = base, 2
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name

    def _function_name(self, title: str) -> str:
        base = re.sub(r"[^0-9A-Za-z]+", "_", title).strip("_") or "operator"
        base = "op_" + base if base[0].isdigit() else base
        if keyword.iskeyword(base) or base in {"jax", "jnp", "jvp"}:
            base += "_program"
        return base

    def _atom_name(self, e, args: list[str]) -> str:
        if isinstance(e, DL):
            if not e.args:
                return "g"
            if len(e.args) == 1:
                k, base = _chain(e)
                inner = self.names[base] if base in self.names else args[0]
                if base not in self.names:
                    k = 1
                return ("H_" if k == 1 else f"H{k}_") + inner
            return ("T_" if len(e.args) == 2 else f"D{len(e.args) + 1}_") + "_".join(args)
        if isinstance(e, Form):
            return "_".join(["L", *args])
        return "sq_" + args[0] if args[0] == args[1] else "_".join(["dot", *args])

    # ---- emission (post-order, first encounter: the order the formulas are read)
    def _visit(self, e) -> None:
        if e in self.names or e.is_Number or isinstance(e, sp.NumberSymbol):
            return
        if isinstance(e, DL):
            args = [self._vector(a) for a in e.args]
            if not e.args:
                call = "grad(w)"
            else:
                f = "grad"
                for a in args[:-1]:
                    f = f"lambda x: jvp({f}, x, {a})"
                call = f"jvp({f}, w, {args[-1]})"
        elif isinstance(e, Form):
            if not e.args:
                args, call = [], "loss(w)"
            else:
                self._visit(DL(*e.args[:-1]))
                last = self._vector(e.args[-1])
                args = [self._vector(a) for a in e.args]
                call = f"jnp.vdot({self.names[DL(*e.args[:-1])]}, {last})"
        elif isinstance(e, Dot):
            args = [self._vector(a) for a in e.args]
            call = f"jnp.vdot({args[0]}, {args[1]})"
        else:
            for a in e.args:
                self._visit(a)
            return
        name = self._atom_name(e, args)
        if len(name) > _MAX_NAME:
            name = name.split("_")[0]
        self.names[e] = self._fresh(name)
        self.rank[e] = len(self.lines)
        self.lines.append(f"{self.names[e]} = {call}")

    def _vector(self, e) -> str:
        """The local holding vector expression ``e`` (a new ``v<k>`` for a linear combination)."""
        self._visit(e)
        if e not in self.names:
            self.n_temp += 1
            self.names[e] = self._fresh(f"v{self.n_temp}")
            self.rank[e] = len(self.lines)
            self.lines.append(f"{self.names[e]} = {self._arith(e)}")
        return self.names[e]

    def _arith(self, e) -> str:
        """Python for ``e`` over named locals; vectors as Σ (scalar coefficient) * vector."""
        terms = _linear(e) if _has_vector(e) else None
        if terms is None:
            if _is_constant(e):
                return f"jnp.asarray({self.printer.doprint(e)}, w.dtype)"
            return self.printer.doprint(e)
        parts = []
        # in the order the program computes them (inputs first)
        for a in sorted((a for a, c in terms.items() if c != 0), key=lambda a: self.rank.get(a, -1)):
            c, neg = terms[a], False
            if c.could_extract_minus_sign():
                c, neg = -c, True
            text = self.names[a] if c == 1 else f"{self.printer.parenthesize(c, 50)} * {self.names[a]}"
            parts.append(("- " if neg else "+ ") + text)
        if not parts:
            return "jnp.zeros_like(w)"
        first = parts[0]
        return " ".join([("-" if first[0] == "-" else "") + first[2:], *parts[1:]])

    def _output(self, e) -> str:
        self._visit(e)
        return self._arith(e)

    # ---- the module
    def _module(self, exprs, title: str, outputs: list[str], many: bool) -> str:
        def listing(symbols, one, many):
            shown = [self.names[s] if self.names[s] == s.name else f"{self.names[s]} (keyword {s.name!r})"
                     for s in symbols]
            return [f"#   {', '.join(shown)}: {one if len(shown) == 1 else many}"] if shown else []

        header = [f"# Generated by gdflows {_version()} (derive.operators.compile_operator); do not edit.",
                  "# Regenerate from the formulas instead: identical input gives identical bytes.",
                  f"# program: {title}",
                  f"# function: {self.fname}({', '.join(self.args)})",
                  "#   w: flat parameters, shape (n,); loss(w) -> L(w); grad(w) -> ∇L(w), shape (n,)"]
        header += ["#   eta: the learning rate (derive.ops.eta)"] if self.uses_eta else []
        header += listing(self.vectors, "input vector, flat like w", "input vectors, flat like w")
        header += listing(self.scalars, "scalar input", "scalar inputs")
        header += [f"# formulas sha256: {_fingerprint(exprs)}",
                   "# outputs (derive.ops.opstr):"]
        for k, e in enumerate(exprs):
            kind = "vector" if _has_vector(e) else "scalar"
            header.append(f"#   {f'[{k}] ' if many else ''}{kind}: {opstr(e)}")
        body = [f"def {self.fname}({', '.join(self.args)}):",
                '    """The program in the module header: ∇L is grad, every higher derivative a jvp of it."""']
        body += [f"    {line}" for line in self.lines]
        if many:
            body += ["    return ["] + [f"        {o},  # [{k}]" for k, o in enumerate(outputs)] + ["    ]"]
        else:
            body.append(f"    return {outputs[0]}")
        helper = ["def jvp(f, x, v):",
                  '    """The derivative of f at x along v (forward mode): f\'(x) v."""',
                  "    return jax.jvp(f, (x,), (v,))[1]"]
        return "\n".join([*(_printable(h) for h in header), "",
                          "import jax", "import jax.numpy as jnp", "", "",
                          *helper, "", "", *body]) + "\n"


def _fingerprint(exprs) -> str:
    """sha256 of the formula trees; symbols by role and name, so it is stable across sessions.

    The learning rate is tagged by identity with ``derive.ops.eta``; other symbols by their kind
    (vector or scalar) and name, never by a ``Dummy`` index or the Python object.
    """
    memo: dict = {}

    def digest(e) -> bytes:
        if e not in memo:
            if e == ETA:
                data = b"eta"
            elif isinstance(e, Vec):
                data = b"Vec:" + e.name.encode()
            elif isinstance(e, sp.Symbol):
                data = b"Symbol:" + e.name.encode()
            elif e.args:
                data = type(e).__name__.encode() + b"(" + b",".join(digest(a) for a in e.args) + b")"
            else:
                data = sp.srepr(e).encode()
            memo[e] = hashlib.sha256(data).hexdigest().encode()
        return memo[e]

    total = hashlib.sha256()
    for e in exprs:
        total.update(digest(e))
    return total.hexdigest()[:16]
