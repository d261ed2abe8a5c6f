"""Straight-line JAX code for many SymPy outputs at once.

The expressions are hash-consed into a DAG with canonical sums and products, so every repeated
subexpression is computed once; long sums with constant coefficients become matrix products.
Single expressions are printed by :class:`derive._jax_printer.JaxCodePrinter`.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import sympy as sp

from ._jax_printer import JaxCodePrinter, float_literal, real_value

# --------------------------------------------------------------------------- DAG
# A node is a tuple; a reference to a value is (coefficient, node id). Node 0 is
# the constant 1, so the number c is (c, 0). Sums are stored normalized (first
# term's coefficient 1, the scale moves into the reference), so x + 2y and
# -3x - 6y are one node. Terms sharing a monomial are collected (x*A + x*B ->
# x*(A + B)). In long sums (>= MATMUL_TERMS terms) products with short
# homogeneous polynomial factors (<= 4 monomials, no constant term) are expanded
# when that maps many products onto few monomials (>= _COMPRESSION : 1), so
# sum_i (a_i x + b_i y)(c_i x + d_i y) becomes a quadratic form in x, y. Factors
# with a constant term, such as (x**2 - 1)**2, and sums like sum_j (x_j - x_j+1)**2
# that would not compress are left alone: expanding them loses accuracy where
# they nearly vanish.
ONE = 0
_SHORT_POLY, _MAX_EXPANSION, _COMPRESSION = 4, 16, 4
MATMUL_TERMS = 8
Ref = tuple  # (float, int)


def _power(c: float, k: int) -> float:
    try:
        return c**k
    except OverflowError:
        return math.copysign(math.inf, c if k % 2 else 1.0)
    except ZeroDivisionError:
        return math.nan


class Dag:
    """Hash-consed expression DAG built from SymPy expressions."""

    def __init__(self, symbols: Iterable[sp.Symbol]) -> None:
        self.symbols = set(symbols)
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
            if e not in self.symbols:  # bound, e.g. the index of an unevaluated Sum
                raise NotImplementedError(f"symbol {e} is bound; call .doit() first")
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
            coef *= _power(c, k)
            node = self.nodes[i]
            if node[0] == "mul":
                coef *= _power(node[1], k)
                for j, e in node[2]:
                    powers[j] = powers.get(j, 0) + e * k
            elif node[0] == "num":
                coef *= _power(node[1], k)
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
            s = self._short[i] = (node[0] == "add" and node[1] == 0.0 and len(node[2]) <= _SHORT_POLY
                                  and all(self._is_monomial(j) for j, _ in node[2]))
        return s

    def _expand(self, c: float, i: int) -> list | None:
        """Product `c * node i` with its short-polynomial factors multiplied out."""
        node = self.nodes[i]
        polys = [(j, e) for j, e in node[2] if 0 < e <= 4 and self._is_short_poly(j)]
        if not polys or math.prod(len(self.nodes[j][2]) ** e
                                  for j, e in polys) > _MAX_EXPANSION:
            return None
        rest = [((1.0, j), e) for j, e in node[2] if (j, e) not in polys]
        partial = [(c * node[1], [])]
        for j, e in polys:
            for _ in range(e):
                partial = [(pc * tc, mono + [tj]) for pc, mono in partial for tj, tc in self.nodes[j][2]]
        return [self.mul(pc, rest + [((1.0, m), 1) for m in mono]) for pc, mono in partial]

    def add(self, refs: list) -> Ref:
        const, terms, expandable = 0.0, {}, []
        long_sum = len(refs) >= MATMUL_TERMS
        pending = list(refs)
        while pending:
            c, i = pending.pop()
            node = self.nodes[i]
            if i == ONE:
                const += c
            elif node[0] == "add" and self._is_short_poly(i):
                const += c * node[1]
                pending.extend((c * tc, tj) for tj, tc in node[2])
            elif long_sum and node[0] == "mul" and (expanded := self._expand(c, i)) is not None:
                expandable.append(((c, i), expanded))
            else:
                terms[i] = terms.get(i, 0.0) + c
        # expand only where it compresses: many products onto few monomials
        pieces = [p for _, ps in expandable for p in ps]
        monomials = {self._split(i)[0] for _, i in pieces}
        chosen = pieces if len(expandable) >= _COMPRESSION * len(monomials) else [r for r, _ in expandable]
        for c, i in chosen:
            terms[i] = terms.get(i, 0.0) + c
        return self._collect(const, terms)

    def _split(self, i: int) -> tuple[tuple, tuple]:
        """(monomial, rest) factors of node i."""
        node = self.nodes[i]
        if node[0] == "sym":
            return ((i, 1),), ()
        if node[0] == "mul" and node[1] == 1.0:
            mono = tuple(f for f in node[2] if self.nodes[f[0]][0] == "sym" and f[1] > 0)
            return mono, tuple(f for f in node[2] if f not in mono)
        return (), ((i, 1),)

    def _collect(self, const: float, terms: dict) -> Ref:
        groups: dict[tuple, list] = {}
        for i in sorted(terms):
            mono, rest = self._split(i)
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
    if prec == _MUL and text.startswith("1.0/") and math.isfinite(c):  # 1.0/d is a product, not a sum
        return float_literal(c) + text[3:], _ADD if c < 0 else _MUL
    if c == -1.0:
        return "-" + _paren(text, prec, _MUL), _ADD
    return f"{float_literal(c)}*{_paren(text, prec, _MUL)}", _ADD if c < 0 else _MUL


class Emitter:
    """Prints a `Dag` as assignments; nodes used more than once become temporaries.

    Long sums (>= `MATMUL_TERMS` terms) are batched: all sums over the same terms
    become one product `jnp.stack(terms) @ K` with a constant matrix K, so XLA
    sees a few matrix products instead of thousands of scalar operations.
    """

    def __init__(self, dag: Dag, printer: JaxCodePrinter, names: dict,
                 temp: Callable[[int], str], const: Callable[[int], str]):
        self.dag, self.printer, self.names, self.temp, self.const = dag, printer, names, temp, const
        self.uses: dict[int, int] = {}
        self.done: dict[int, tuple[str, int]] = {}
        self.lines: list[str] = []
        self.constants: list[tuple[str, list]] = []
        self.block_of: dict[int, tuple] = {}
        self.position: dict[int, tuple[str, int]] = {}
        self.block_size: dict[str, int] = {}

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
        name, k0 = self.position.get(terms[0], (None, 0))
        if name and all(self.position.get(j) == (name, k0 + k) for k, j in enumerate(terms)):
            size = self.block_size[name]
            source = name if k0 == 0 and len(terms) == size else f"{name}[{k0}:{k0 + len(terms)}]"
        else:
            source = f"jnp.stack([{', '.join(self.expr(j)[0] for j in terms)}])"
        nodes = [self.dag.nodes[m] for m in members]
        coefs = [dict(n[2]) for n in nodes]
        matrix = [[c[j] for c in coefs] for j in terms]
        kname = self.const(len(self.constants))
        self.constants.append((kname, matrix))
        text = f'jnp.dot({source}, jnp.asarray({kname}, dtype), precision="highest")'
        if any(n[1] != 0.0 for n in nodes):
            bname = self.const(len(self.constants))
            self.constants.append((bname, [n[1] for n in nodes]))
            text += f" + jnp.asarray({bname}, dtype)"
        name = self.temp(len(self.lines))
        self.lines.append(f"{name} = {text}")
        self.block_size[name] = len(members)
        for k, m in enumerate(members):
            self.done[m] = (f"{name}[{k}]", _ATOM)
            self.position[m] = (name, k)

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
        if kind in ("add", "mul"):
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


def emit(outputs: list[sp.Basic], names: dict, temp: Callable[[int], str],
         const: Callable[[int], str]) -> tuple[list[tuple[str, list]], list[str], list[str]]:
    """Straight-line code for `outputs` (a flat list of scalar SymPy expressions).

    Args:
        outputs: expressions whose free symbols are keys of `names`.
        names: Symbol -> Python identifier.
        temp: n -> name of a temporary (must not clash with `names`).
        const: n -> name of a module-level constant array.

    Returns:
        (constants, lines, texts): module-level constant arrays as (name, nested
        list), assignment lines (they read a local `dtype`), and one source
        expression per output.
    """
    dag = Dag(names)
    refs = [dag.ref(e) for e in outputs]
    emitter = Emitter(dag, JaxCodePrinter(symbol_names=names), names, temp, const)
    emitter.count([i for _, i in refs if i != ONE])
    emitter.plan_blocks()
    texts = [emitter.ref(r) for r in refs]
    return emitter.constants, emitter.lines, texts
