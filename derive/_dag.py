"""Straight-line JAX code for many SymPy outputs at once.

The expressions are hash-consed into a DAG with canonical sums and products, so every repeated
subexpression is computed once; long sums with constant coefficients become matrix products.
Single expressions are printed by :class:`derive._jax_printer.JaxCodePrinter`.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import sympy as sp

from ._jax_printer import JaxCodePrinter, all_of, any_of, float_literal, real_value
from ._nonsmooth import NONSMOOTH, branches
from ._walk import FreeSymbols

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


def _constant(e: sp.Expr) -> float:
    """A constant's float value; NaN where it is not real (a rewritten branch such as (-2)**(1/2)),
    as float64 arithmetic would give. Constants the user wrote with I are refused earlier."""
    try:
        return real_value(e)
    except ValueError:
        return math.nan


_TINY_RATIO = 2.0**-960   # normalized coefficients below this lose precision (subnormal) or vanish


def _lead(const: float, terms: dict) -> float:
    """The scale a sum is divided by: its largest coefficient (ties: the lowest node), so that every
    normalized coefficient has magnitude ≤ 1 and nothing overflows; 1.0 where dividing would
    underflow a coefficient or a coefficient is not finite (such sums are left as written)."""
    coefs = [terms[i] for i in sorted(terms)] + ([const] if const else [])
    if not all(math.isfinite(c) for c in coefs):
        return 1.0
    lead = max(coefs, key=abs)   # max keeps the first of equal magnitudes
    if min(abs(c) for c in coefs) < _TINY_RATIO * abs(lead):
        return 1.0
    return lead


def _power(c: float, k: int) -> float:
    try:
        return c**k
    except OverflowError:
        return math.copysign(math.inf, c if k % 2 else 1.0)
    except ZeroDivisionError:
        return math.nan


_RELATIONS = {"<": "jnp.less", "<=": "jnp.less_equal", ">": "jnp.greater", ">=": "jnp.greater_equal",
              "==": "jnp.equal", "!=": "jnp.not_equal"}


class Dag:
    """Hash-consed expression DAG built from SymPy expressions.

    A Piecewise whose deciding condition compares a NaN is NaN (IEEE comparisons with NaN are
    False, which would otherwise pick a branch silently: sign(NaN) = 0, Max(NaN, 1) = 1); a NaN
    in a comparison that does not decide (x ≥ √−x beside x ≥ 0 at x = 1) changes nothing.

    Piecewise branches are converted under a *mask*: inside branch k every symbol s becomes
    ``where(taken_k, s, stop_gradient(s))`` (taken_k: branch k is the one selected). Values are
    unchanged; derivatives of an untaken branch never reach s, so a branch that is undefined
    where it is not taken (log(x) for x < 0) cannot turn gradients into NaN (the double-where
    pattern, with stop_gradient as the safe value).
    """

    def __init__(self, symbols: Iterable[sp.Symbol]) -> None:
        self.symbols = set(symbols)
        self.nodes: list[tuple] = [("one",)]
        self.ids: dict[tuple, int] = {("one",): ONE}
        self.memo: dict[tuple, Ref] = {}
        self.free = FreeSymbols()
        self.mask: int | None = None          # boolean node: the branch being converted is taken
        self._short: dict[int, bool] = {}

    def intern(self, node: tuple) -> int:
        i = self.ids.get(node)
        if i is None:
            i = self.ids[node] = len(self.nodes)
            self.nodes.append(node)
        return i

    def ref(self, expr: sp.Basic) -> Ref:
        key = (expr, self.mask)
        r = self.memo.get(key)
        if r is None:
            r = self.memo[key] = self._convert(expr)
        return r

    def node_id(self, r: Ref) -> int:
        """A node whose value is the reference's value."""
        c, i = r
        if c == 1.0 and i != ONE:
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
            i = self.intern(("sym", e))
            return 1.0, (i if self.mask is None else self.intern(("mask", i, self.mask)))
        if not self.free(e):
            return _constant(e), ONE
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
            if not self.free(exp):
                return 1.0, self.intern(("pow", b, real_value(exp)))
            return 1.0, self.intern(("powx", b, self.node_id(self.ref(exp))))
        if isinstance(e, sp.Piecewise):
            return 1.0, self._pieces([(lambda c=p.cond: self.boolean(c), p.expr) for p in e.args])
        if isinstance(e, NONSMOOTH):   # the branch convention of derive._nonsmooth
            return 1.0, self._pieces([(lambda c=c: self._relations(c), v) for c, v in branches(e)])
        return 1.0, self.intern(("op", e.func, tuple(self._spec(a) for a in e.args)))

    def _pieces(self, branches: list[tuple[Callable[[], int], sp.Expr]]) -> int:
        """A piecewise node from (condition builder, value) pairs; the first that holds is taken."""
        outer, pieces, earlier = self.mask, [], []
        for build_condition, value in branches:
            cond = build_condition()
            taken = self._and([cond] + [self.intern(("not", c)) for c in earlier])
            self.mask = taken if outer is None else self._and([outer, taken])
            try:
                pieces.append((cond, self.ref(value)))
            finally:
                self.mask = outer
            earlier.append(cond)
            if self.nodes[cond] == ("true",):
                break
        return self.intern(("piecewise", tuple((c, self.known(c), v) for c, v in pieces)))

    def _relations(self, conds: tuple) -> int:
        """The conjunction of (op, lhs, rhs) comparisons of a non-smooth function's branch."""
        return self._and([self.intern(("rel", op, self.ref(lhs), self.ref(rhs))) for op, lhs, rhs in conds])

    def known(self, b: int) -> int:
        """Boolean node: condition b is decided, i.e. no comparison it depends on involves a NaN
        (Kleene logic: a decided False in an And, or a decided True in an Or, decides it)."""
        node = self.nodes[b]
        kind = node[0]
        if kind in ("true", "false"):
            return self.intern(("true",))
        if kind == "rel":
            ids = tuple(sorted({i for _, i in node[2:] if i != ONE}))
            return self.intern(("defined", ids)) if ids else self.intern(("true",))
        if kind == "not":
            return self.known(node[1])
        decisive = [self._and([self.known(c), c if kind == "or" else self.intern(("not", c))]) for c in node[1]]
        everything = self._and([self.known(c) for c in node[1]])
        return self.intern(("or", tuple(sorted({everything, *decisive}))))

    def _and(self, ids: list[int]) -> int:
        ids = sorted(set(i for i in ids if self.nodes[i] != ("true",)))
        if not ids:
            return self.intern(("true",))
        return ids[0] if len(ids) == 1 else self.intern(("and", tuple(ids)))

    def boolean(self, c: sp.Basic) -> int:
        """A boolean node for a Piecewise condition."""
        if c == sp.true:
            return self.intern(("true",))
        if c == sp.false:
            return self.intern(("false",))
        if isinstance(c, sp.core.relational.Relational) and c.rel_op in _RELATIONS:
            return self.intern(("rel", c.rel_op, self.ref(c.lhs), self.ref(c.rhs)))
        if isinstance(c, sp.And):
            return self._and([self.boolean(a) for a in c.args])
        if isinstance(c, sp.Or):
            return self.intern(("or", tuple(sorted({self.boolean(a) for a in c.args}))))
        if isinstance(c, sp.Not):
            return self.intern(("not", self.boolean(c.args[0])))
        if isinstance(c, sp.logic.boolalg.BooleanFunction):   # ITE, Xor, Implies, ...: And/Or/Not form
            nnf = c.to_nnf()
            if nnf != c:
                return self.boolean(nnf)
        raise NotImplementedError(f"condition {type(c).__name__} is not supported in Piecewise")

    def _spec(self, a: sp.Basic) -> tuple:
        """Argument of an opaque function: a node, a literal atom, or a structure."""
        if isinstance(a, sp.Expr) and self.free(a):
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
        lead = _lead(const, out)
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
        if kind == "mask":
            return [node[1], node[2]]
        if kind == "rel":
            return [i for _, i in node[2:] if i != ONE]
        if kind in ("and", "or"):
            return list(node[1])
        if kind == "not":
            return [node[1]]
        if kind == "piecewise":
            return [j for cond, known, (_, i) in node[1] for j in (cond, known, i) if j != ONE]
        if kind == "defined":
            return list(node[1])
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
        if self.uses.get(i, 0) > 1 and self.dag.nodes[i][0] not in ("sym", "num", "true", "false"):
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
                    den.append((_paren(text, prec, _ATOM), -e))
            coef = node[1]
            if len(den) == 1 and den[0][1] == 1:    # c/x: one division
                if not num:
                    num, coef = [float_literal(abs(coef))], math.copysign(1.0, coef)
                return _scaled(coef, "*".join(num) + "/" + den[0][0], _MUL)
            # x**-k per factor, not 1/(x*...*y): autodiff of 1/u squares u, which underflows
            # (jax.grad of 1/(x*x*x) is -inf at x = 4e-65, of x**-3 the true -1.2e258)
            factors = num + [f"{text}**-{k}" for text, k in den]
            return _scaled(coef, "*".join(factors) if factors else "1.0", _MUL)
        if kind == "sqrt":
            return f"jnp.sqrt({self.expr(node[1])[0]})", _ATOM
        if kind == "pow":
            return f"{_paren(*self.expr(node[1]), _ATOM)}**{float_literal(node[2])}", _POW
        if kind == "powx":
            return f"{_paren(*self.expr(node[1]), _ATOM)}**{_paren(*self.expr(node[2]), _ATOM)}", _POW
        if kind == "op":
            rebuilt = node[1](*[self._rebuild(s) for s in node[2]])
            return self.printer.doprint(rebuilt), _ATOM
        if kind == "mask":
            x, taken = self.expr(node[1])[0], self.expr(node[2])[0]
            return f"jnp.where({taken}, {x}, lax.stop_gradient({x}))", _ATOM
        if kind in ("true", "false"):
            return kind.capitalize(), _ATOM
        if kind == "rel":
            return f"{_RELATIONS[node[1]]}({self.ref(node[2])}, {self.ref(node[3])})", _ATOM
        if kind in ("and", "or"):
            texts = [self.expr(j)[0] for j in node[1]]
            return (all_of(texts) if kind == "and" else any_of(texts)), _ATOM
        if kind == "not":
            return f"jnp.logical_not({self.expr(node[1])[0]})", _ATOM
        if kind == "piecewise":   # where(decided, where(cond, value, rest), nan): NaN in, NaN out
            pieces = node[1]
            otherwise = self.dag.nodes[pieces[-1][0]] == ("true",)
            out = self.ref(pieces[-1][2]) if otherwise else "jnp.nan"   # no branch holds: undefined
            for cond, known, value in reversed(pieces[:-1] if otherwise else pieces):
                out = f"jnp.where({self.expr(cond)[0]}, {self.ref(value)}, {out})"
                if self.dag.nodes[known] != ("true",):
                    out = f"jnp.where({self.expr(known)[0]}, {out}, jnp.nan)"
            return out, _ATOM
        if kind == "defined":
            return "jnp.logical_not(" + any_of([f"jnp.isnan({self.expr(j)[0]})" for j in node[1]]) + ")", _ATOM
        raise AssertionError(kind)

    def _power(self, text: str, prec: int, n: int, need: int = _MUL) -> str:
        if n == 1:
            return _paren(text, prec, need)
        if prec == _ATOM and n <= 4 and text.isidentifier():
            return "*".join([text] * n)
        return f"{_paren(text, prec, _ATOM)}**{n}"

    def _rebuild(self, spec: tuple) -> sp.Basic:
        if spec[0] == "n":   # a placeholder that prints as the argument's text (a Dummy: equal to no user symbol)
            text, prec = self.expr(spec[1])
            placeholder = sp.Dummy()
            self.printer.symbol_names[placeholder] = _paren(text, prec, _ATOM)
            return placeholder
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
