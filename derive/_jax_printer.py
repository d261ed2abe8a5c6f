"""SymPy to JAX source text: an expression printer and a straight-line DAG emitter.

`JaxCodePrinter` prints one SymPy expression as a `jax.numpy` expression (it is
SymPy's `JaxPrinter` with the differences below). `emit` prints many outputs at
once as straight-line code: the expressions are hash-consed into a DAG with
canonical sums and products, so every repeated subexpression is computed once.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import reduce
from typing import Any, Callable

import sympy as sp
from sympy.printing.numpy import JaxPrinter

MODULE_ALIASES = {"jax.numpy": "jnp", "jax.scipy.special": "jspecial", "jax.lax": "lax"}
IMPORTS = ("import jax.numpy as jnp", "import jax.scipy.special as jspecial")
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
    if expr.is_Integer:
        n = int(expr)
        return float(n) if abs(n) < 2**1000 else math.copysign(math.inf, n)
    if expr.is_Rational:
        return float(Fraction(int(expr.p), int(expr.q)))
    if expr.is_Float:
        return float(expr)
    if expr in (sp.oo, -sp.oo, sp.nan):
        return float(expr)
    value = expr.evalf(30)
    re, im = value.as_real_imag()
    if im != 0 or not re.is_Number or expr is sp.zoo:
        raise ValueError(f"exprs: the constant {expr} is not a real number")
    return float(re)


class JaxCodePrinter(JaxPrinter):
    """SymPy's JaxPrinter, printing `jnp.`/`jspecial.` names and JAX-friendly forms.

    Differences: numbers print as exact float literals (no int overflow, no int
    division); small integer powers as products; Piecewise as nested `jnp.where`;
    Min/Max as nested `jnp.minimum`/`jnp.maximum`; And/Or/Not as `jnp.logical_*`;
    erf, erfc, erfinv, gamma, loggamma, digamma, polygamma and beta via
    `jax.scipy.special`. Symbols print under the names in `symbol_names`.
    """

    printmethod = "_jaxcode"

    def __init__(self, settings: dict | None = None, symbol_names: dict | None = None):
        super().__init__(dict({"fully_qualified_modules": True}, **(settings or {})))
        self.symbol_names = dict(symbol_names or {})

    def _module_format(self, fqn: str, register: bool = True) -> str:
        module, _, attr = fqn.rpartition(".")
        return f"{MODULE_ALIASES[module]}.{attr}" if module in MODULE_ALIASES else fqn

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        name = self.symbol_names.get(expr)
        return name if name is not None else super()._print_Symbol(expr)

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

    # arithmetic
    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exp = expr.args
        b = self.parenthesize(base, 60)  # 60: SymPy's precedence of Pow
        if exp.is_Integer:
            n = abs(int(exp))
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

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        pieces = list(expr.args)
        if pieces[-1].cond == sp.true:
            out = self._print(pieces.pop().expr)
        else:
            out = "jnp.nan"
        for piece in reversed(pieces):
            out = f"jnp.where({self._print(piece.cond)}, {self._print(piece.expr)}, {out})"
        return out

    def _nested(self, fn: str, args: tuple) -> str:
        return reduce(lambda acc, a: f"{fn}({self._print(a)}, {acc})",
                      reversed(args[:-1]), self._print(args[-1]))

    def _print_Min(self, expr: sp.Min) -> str:
        return self._nested("jnp.minimum", expr.args)

    def _print_Max(self, expr: sp.Max) -> str:
        return self._nested("jnp.maximum", expr.args)

    def _print_And(self, expr: Any) -> str:
        return self._nested("jnp.logical_and", expr.args)

    def _print_Or(self, expr: Any) -> str:
        return self._nested("jnp.logical_or", expr.args)

    def _print_Not(self, expr: Any) -> str:
        return f"jnp.logical_not({self._print(expr.args[0])})"

    def _print_Heaviside(self, expr: Any) -> str:
        x, h0 = expr.args
        return f"jnp.heaviside({self._print(x)}, {self._print(h0)})"

    def _print_sign(self, expr: Any) -> str:
        return f"jnp.sign({self._print(expr.args[0])})"

    def _print_Abs(self, expr: Any) -> str:
        return f"jnp.abs({self._print(expr.args[0])})"

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


# --------------------------------------------------------------------------- DAG
# A node is a tuple; a reference to a value is (coefficient, node id). Node 0 is
# the constant 1, so the number c is (c, 0). Sums are stored normalized (first
# term's coefficient 1, the scale moves into the reference), so x + 2y and
# -3x - 6y are one node. In a sum, products with short polynomial factors
# (<= 4 monomials) are expanded and terms with the same monomial are collected:
# sum_i (a_i x + b_i y)(c_i x + d_i y) becomes a quadratic form in x, y.
ONE = 0
_SHORT_POLY, _MAX_EXPANSION = 4, 16
MATMUL_TERMS = 8
Ref = tuple  # (float, int)


class Dag:
    """Hash-consed expression DAG built from SymPy expressions."""

    def __init__(self) -> None:
        self.nodes: list[tuple] = [("one",)]
        self.ids: dict[tuple, int] = {("one",): ONE}
        self.memo: dict[sp.Basic, Ref] = {}
        self._short: dict[int, bool] = {}

    def intern(self, node: tuple) -> int:
        i = self.ids.get(node)
        if i is None:
            i = self.ids[node] = len(self.nodes)
            self.nodes.append(node)
        return i

    def ref(self, expr: sp.Basic) -> Ref:
        r = self.memo.get(expr)
        if r is None:
            r = self.memo[expr] = self._convert(expr)
        return r

    def node_id(self, r: Ref) -> int:
        """A node whose value is the reference's value."""
        c, i = r
        if c == 1.0:
            return i
        if i == ONE:
            return self.intern(("num", c))
        node = self.nodes[i]
        if node[0] == "mul":
            return self.intern(("mul", c * node[1], node[2]))
        return self.intern(("mul", c, ((i, 1),)))

    def _convert(self, e: sp.Basic) -> Ref:
        if e.is_Symbol:
            return 1.0, self.intern(("sym", e))
        if e.is_number:
            return real_value(e), ONE
        if e.is_Add:
            return self.add([self.ref(a) for a in e.args])
        if e.is_Mul:
            return self.mul(1.0, [(self.ref(a), 1) for a in e.args])
        if e.is_Pow:
            base, exp = e.args
            if exp.is_Integer:
                return self.mul(1.0, [(self.ref(base), int(exp))])
            b = self.node_id(self.ref(base))
            if exp.is_Rational and exp.q == 2:
                return self.mul(1.0, [((1.0, self.intern(("sqrt", b))), int(exp.p))])
            if exp.is_number:
                return 1.0, self.intern(("pow", b, real_value(exp)))
            return 1.0, self.intern(("powx", b, self.node_id(self.ref(exp))))
        return 1.0, self.intern(("op", e.func, tuple(self._spec(a) for a in e.args)))

    def _spec(self, a: sp.Basic) -> tuple:
        """Argument of an opaque function: a node, a literal atom, or a structure."""
        if isinstance(a, sp.Expr) and not a.is_number:
            return ("n", self.node_id(self.ref(a)))
        if isinstance(a, sp.Expr) or not a.args:
            return ("a", a)
        return ("s", a.func, tuple(self._spec(x) for x in a.args))

    def mul(self, coef: float, factors: list) -> Ref:
        powers: dict[int, int] = {}
        for (c, i), k in factors:
            coef *= c**k if c != 0.0 or k > 0 else math.nan
            node = self.nodes[i]
            if node[0] == "mul":
                coef *= node[1] ** k
                for j, e in node[2]:
                    powers[j] = powers.get(j, 0) + e * k
            elif node[0] == "num":
                coef *= node[1] ** k
            elif i != ONE:
                powers[i] = powers.get(i, 0) + k
        fs = tuple(sorted((j, e) for j, e in powers.items() if e))
        if coef == 0.0 or not fs:
            return coef, ONE
        if len(fs) == 1 and fs[0][1] == 1:
            return coef, fs[0][0]
        return coef, self.intern(("mul", 1.0, fs))

    def _is_monomial(self, i: int) -> bool:
        node = self.nodes[i]
        return node[0] == "sym" or (node[0] == "mul" and node[1] == 1.0 and all(
            self.nodes[j][0] == "sym" and e > 0 for j, e in node[2]))

    def _is_short_poly(self, i: int) -> bool:
        s = self._short.get(i)
        if s is None:
            node = self.nodes[i]
            s = self._short[i] = (node[0] == "add" and len(node[2]) + (node[1] != 0.0)
                                  <= _SHORT_POLY and all(self._is_monomial(j) for j, _ in node[2]))
        return s

    def _expand(self, c: float, i: int) -> list | None:
        """Product `c * node i` with its short-polynomial factors multiplied out."""
        node = self.nodes[i]
        polys = [(j, e) for j, e in node[2] if 0 < e <= 4 and self._is_short_poly(j)]
        if not polys or math.prod((len(self.nodes[j][2]) + 1) ** e
                                  for j, e in polys) > _MAX_EXPANSION:
            return None
        rest = [((1.0, j), e) for j, e in node[2] if (j, e) not in polys]
        partial = [(c * node[1], [])]
        for j, e in polys:
            _, const, terms = self.nodes[j]
            choices = list(terms) + ([(ONE, const)] if const != 0.0 else [])
            for _ in range(e):
                partial = [(pc * tc, mono + [tj]) for pc, mono in partial for tj, tc in choices]
        return [self.mul(pc, rest + [((1.0, m), 1) for m in mono]) for pc, mono in partial]

    def add(self, refs: list) -> Ref:
        const, terms = 0.0, {}
        pending = list(refs)
        while pending:
            c, i = pending.pop()
            node = self.nodes[i]
            if i == ONE:
                const += c
            elif node[0] == "add" and self._is_short_poly(i):
                const += c * node[1]
                pending.extend((c * tc, tj) for tj, tc in node[2])
            elif node[0] == "mul" and (expanded := self._expand(c, i)) is not None:
                pending.extend(expanded)
            else:
                terms[i] = terms.get(i, 0.0) + c
        return self._collect(const, terms)

    def _collect(self, const: float, terms: dict) -> Ref:
        groups: dict[tuple, list] = {}
        for i in sorted(terms):
            node = self.nodes[i]
            if node[0] == "sym":
                mono, rest = ((i, 1),), ()
            elif node[0] == "mul" and node[1] == 1.0:
                mono = tuple(f for f in node[2] if self.nodes[f[0]][0] == "sym" and f[1] > 0)
                rest = tuple(f for f in node[2] if f not in mono)
            else:
                mono, rest = (), ((i, 1),)
            groups.setdefault(mono, []).append((terms[i], i, rest))
        out: dict[int, float] = {}
        for mono, items in groups.items():
            with_rest = [it for it in items if it[2]]
            if len(with_rest) >= 2 and (mono or len(groups) > 1):
                sub = self.add([self.mul(c, [((1.0, j), e) for j, e in rest])
                                for c, _, rest in with_rest])
                c, i = self.mul(1.0, [(sub, 1)] + [((1.0, j), e) for j, e in mono])
                out[i] = out.get(i, 0.0) + c
                items = [it for it in items if not it[2]]
            for c, i, _ in items:
                out[i] = out.get(i, 0.0) + c
        out = {i: c for i, c in out.items() if c != 0.0}
        if not out:
            return const, ONE
        if len(out) == 1 and const == 0.0:
            (i, c), = out.items()
            return c, i
        lead = out[min(out)]
        body = tuple(sorted((i, c / lead) for i, c in out.items()))
        return lead, self.intern(("add", const / lead, body))


# ------------------------------------------------------------------------ emitter
_ATOM, _POW, _MUL, _ADD = 4, 3, 2, 1


def _paren(text: str, prec: int, need: int) -> str:
    return f"({text})" if prec < need else text


def _scaled(c: float, text: str, prec: int) -> tuple[str, int]:
    if c == 1.0:
        return text, prec
    if c == -1.0:
        return "-" + _paren(text, prec, _MUL), _ADD
    return f"{float_literal(c)}*{_paren(text, prec, _MUL)}", _ADD if c < 0 else _MUL


class Emitter:
    """Prints a `Dag` as assignments; nodes used more than once become temporaries.

    Long sums (>= `MATMUL_TERMS` terms) are batched: all sums over the same terms
    become one product `jnp.stack(terms) @ K` with a constant matrix K, so XLA
    sees a few matrix products instead of thousands of scalar operations.
    """

    def __init__(self, dag: Dag, printer: JaxCodePrinter, names: dict, temp: Callable[[int], str]):
        self.dag, self.printer, self.names, self.temp = dag, printer, names, temp
        self.uses: dict[int, int] = {}
        self.done: dict[int, tuple[str, int]] = {}
        self.lines: list[str] = []
        self.constants: list[tuple[str, list]] = []
        self.block_of: dict[int, tuple] = {}
        self.matrix_of: dict[tuple, str] = {}

    def plan_blocks(self) -> None:
        groups: dict[tuple, list[int]] = {}
        for i in sorted(self.uses):
            node = self.dag.nodes[i]
            if node[0] == "add" and len(node[2]) >= MATMUL_TERMS:
                groups.setdefault(tuple(j for j, _ in node[2]), []).append(i)
        for terms, members in groups.items():
            for m in members:
                self.block_of[m] = (terms, tuple(members))

    def _emit_block(self, terms: tuple, members: tuple) -> None:
        self.expr(terms[0])  # may emit the block that computes `terms`
        source = self.matrix_of.get(terms)
        if source is None:
            source = f"jnp.stack([{', '.join(self.expr(j)[0] for j in terms)}])"
        nodes = [self.dag.nodes[m] for m in members]
        matrix = [[dict(n[2])[j] for n in nodes] for j in terms]
        kname = f"_K{len(self.constants)}"
        self.constants.append((kname, matrix))
        text = f"{source} @ jnp.asarray({kname}, dtype)"
        if any(n[1] != 0.0 for n in nodes):
            bname = f"_K{len(self.constants)}"
            self.constants.append((bname, [n[1] for n in nodes]))
            text += f" + jnp.asarray({bname}, dtype)"
        name = self.temp(len(self.lines))
        self.lines.append(f"{name} = {text}")
        self.matrix_of[members] = name
        for k, m in enumerate(members):
            self.done[m] = (f"{name}[{k}]", _ATOM)

    def count(self, roots: list[int]) -> None:
        """Count, for every node, the outputs and distinct parents that use it."""
        stack: list[int] = []
        for r in roots:
            self.uses[r] = self.uses.get(r, 0) + 1
            if self.uses[r] == 1:
                stack.append(r)
        while stack:
            for j in self._children(stack.pop()):
                self.uses[j] = self.uses.get(j, 0) + 1
                if self.uses[j] == 1:
                    stack.append(j)

    def _children(self, i: int) -> list[int]:
        node = self.dag.nodes[i]
        kind = node[0]
        if kind == "add":
            return [j for j, _ in node[2]]
        if kind == "mul":
            return [j for j, _ in node[2]]
        if kind in ("sqrt", "pow"):
            return [node[1]]
        if kind == "powx":
            return [node[1], node[2]]
        if kind == "op":
            out: list[int] = []
            stack = list(node[2])
            while stack:
                s = stack.pop()
                if s[0] == "n":
                    out.append(s[1])
                elif s[0] == "s":
                    stack.extend(s[2])
            return out
        return []

    def ref(self, r: Ref) -> str:
        c, i = r
        if i == ONE:
            return float_literal(c)
        return _scaled(c, *self.expr(i))[0]

    def expr(self, i: int) -> tuple[str, int]:
        """Source text and precedence for node i, emitting temporaries as needed."""
        if i in self.done:
            return self.done[i]
        if i in self.block_of:
            self._emit_block(*self.block_of[i])
            return self.done[i]
        text, prec = self._print(i)
        if self.uses.get(i, 0) > 1 and self.dag.nodes[i][0] not in ("sym", "num"):
            name = self.temp(len(self.lines))
            self.lines.append(f"{name} = {text}")
            text, prec = name, _ATOM
        self.done[i] = (text, prec)
        return text, prec

    def _print(self, i: int) -> tuple[str, int]:
        node = self.dag.nodes[i]
        kind = node[0]
        if kind == "sym":
            return self.names[node[1]], _ATOM
        if kind == "num":
            return float_literal(node[1]), _ATOM if node[1] >= 0 else _ADD
        if kind == "add":
            parts = [_scaled(c, *self.expr(j))[0] for j, c in node[2]]
            if node[1] != 0.0:
                parts.append(float_literal(node[1]))
            text = parts[0] + "".join(f" - {p[1:]}" if p.startswith("-") else f" + {p}"
                                      for p in parts[1:])
            return text, _ADD
        if kind == "mul":
            num, den = [], []
            for j, e in node[2]:
                text, prec = self.expr(j)
                if e > 0:
                    num.append(self._power(text, prec, e))
                else:
                    den.append(self._power(text, prec, -e, _ATOM))
            coef = node[1]
            if not num:
                num, coef = [float_literal(abs(coef))], math.copysign(1.0, coef)
            body = "*".join(num)
            if den:
                d = "*".join(den)
                body += "/" + (f"({d})" if len(den) > 1 or "*" in d.replace("**", "") else d)
            return _scaled(coef, body, _MUL)
        if kind == "sqrt":
            return f"jnp.sqrt({self.expr(node[1])[0]})", _ATOM
        if kind == "pow":
            return f"{_paren(*self.expr(node[1]), _ATOM)}**{float_literal(node[2])}", _POW
        if kind == "powx":
            return f"{_paren(*self.expr(node[1]), _ATOM)}**{_paren(*self.expr(node[2]), _ATOM)}", _POW
        if kind == "op":
            rebuilt = node[1](*[self._rebuild(s) for s in node[2]])
            return self.printer.doprint(rebuilt), _ATOM
        raise AssertionError(kind)

    def _power(self, text: str, prec: int, n: int, need: int = _MUL) -> str:
        if n == 1:
            return _paren(text, prec, need)
        if prec == _ATOM and n <= 4 and text.isidentifier():
            return "*".join([text] * n)
        return f"{_paren(text, prec, _ATOM)}**{n}"

    def _rebuild(self, spec: tuple) -> sp.Basic:
        if spec[0] == "n":
            text, prec = self.expr(spec[1])
            return sp.Symbol(_paren(text, prec, _ATOM))
        if spec[0] == "a":
            return spec[1]
        return spec[1](*[self._rebuild(s) for s in spec[2]])


def emit(outputs: list[sp.Basic], names: dict, temp: Callable[[int], str]
         ) -> tuple[list[tuple[str, list]], list[str], list[str]]:
    """Straight-line code for `outputs` (a flat list of scalar SymPy expressions).

    Args:
        outputs: expressions whose free symbols are keys of `names`.
        names: Symbol -> Python identifier.
        temp: n -> name of a temporary (must not clash with `names`).

    Returns:
        (constants, lines, texts): module-level constant arrays as (name, nested
        list), assignment lines (they read a local `dtype`), and one source
        expression per output.
    """
    dag = Dag()
    refs = [dag.ref(e) for e in outputs]
    emitter = Emitter(dag, JaxCodePrinter(symbol_names=names), names, temp)
    emitter.count([i for _, i in refs if i != ONE])
    emitter.plan_blocks()
    texts = [emitter.ref(r) for r in refs]
    return emitter.constants, emitter.lines, texts
