"""Independent check of modified equations: one method step against the time-η flow.

Everything is exact rational arithmetic on polynomials in ``QQ[x, η, v]`` (x the parameters, v
the coordinates of input vectors), not on trees: the flow of a field X is the Lie series
y(η) = y + Σ_k η^k/k! (X·∇)^{k-1} X, and the method step is expanded by composing polynomials.

Two modes. *Global* (no point): the η^m coefficients of step − flow are polynomials in x, so
"zero" is an identity on all of R^n; exact but costly. *Local* (at a rational point): x is the
offset from the point and every polynomial is a jet, truncated by the weight |α| + k of
x^α η^k. Each derivative in the Lie series comes with a factor η and a stage of the step is
f(y + O(η)), so weight never decreases and the η^{≤N} coefficients at the point depend only on
the weight-≤N jets. Operator formulas (:mod:`derive.ops`) are evaluated on those jets directly
(:class:`Jets`), so a term η^j D^{m+1}L[...] costs a jet of weight N − j, not a polynomial of
degree m·deg L.

The witness losses (:func:`witness`) are generic polynomials with fixed pseudo-random rational
coefficients; see :mod:`derive.modified` for why their degree and dimension suffice.
"""
from __future__ import annotations

import random
from functools import cache, lru_cache
from math import comb, factorial, lcm

import sympy as sp
from sympy import QQ
from sympy.polys.rings import ring

from .ops import DL, Dot, Form, Vec
from .ops import eta as ETA

__all__ = ["Jets", "jets_at", "step_vs_flow", "witness"]


@cache
def witness(degree: int, n: int) -> tuple[sp.Expr, tuple[sp.Symbol, ...]]:
    """A generic polynomial loss of the given degree in n variables, and its variables.

    Every monomial of degree ≤ ``degree`` has a non-zero rational coefficient ±a/b (1 ≤ a, b ≤ 9)
    drawn from a fixed generator in graded order, so the witness of one degree is the
    truncation of the witness of the next, and its jet at a point is generic up to that degree:
    every D^kL with k ≤ degree is a full, unstructured symmetric tensor.
    """
    params = sp.symbols(f"w0:{n}", real=True)
    rng = random.Random(f"gdflows witness n={n}")
    terms = []
    for d in range(degree + 1):
        for combo in _monomials(n, d):
            c = sp.Rational(rng.choice((-1, 1)) * rng.randint(1, 9), rng.randint(1, 9))
            terms.append(c * sp.Mul(*[p**e for p, e in zip(params, combo)]))
    return sp.Add(*terms), params


def _monomials(n, d):
    """Exponent tuples of the degree-d monomials in n variables, in a fixed order."""
    if n == 1:
        return [(d,)]
    return [(e,) + rest for e in range(d, -1, -1) for rest in _monomials(n - 1, d - e)]


class Jets:
    """Truncated polynomials in ``QQ[x, η, v]`` for one polynomial loss, and formulas on them.

    Values are memoized and shared: never modify a returned polynomial or list in place.

    Args:
        loss: a polynomial in ``params`` with rational coefficients.
        params: its variables.
        point: rational coordinates (local mode: x is the offset from the point), or ``None``
            (global mode: x are the parameters themselves and only η is truncated).
        inputs: names of :class:`~derive.ops.Vec` inputs; each becomes n fresh generators.
    """

    def __init__(self, loss, params, point=None, inputs=()):
        self.params = tuple(params)
        self.n = n = len(self.params)
        self.local = point is not None
        self.input_names = tuple(inputs)
        input_syms = [sp.Dummy(f"{name}{i}") for name in self.input_names for i in range(n)]
        self.R, *gens = ring(list(self.params) + [ETA] + input_syms, QQ)
        self.x, self.eta = gens[:n], gens[n]
        self.inputs = {name: gens[n + 1 + k * n: n + 1 + (k + 1) * n] for k, name in enumerate(self.input_names)}
        self._weights = [1 if self.local else 0] * n + [1] + [0] * len(input_syms)
        pad = (0,) * (1 + len(input_syms))
        L = self.R.from_dict({m + pad: c for m, c in _coefficients(loss, self.params).items()})
        if self.local:  # move the point to the origin
            L = self._shift(L, point)
        self.loss = L
        # derivatives are contracted in integer arithmetic (the hot loop), on c·L with c clearing
        # the denominators; results are divided by c again, as contraction is linear in L
        self._scale = lcm(*[int(c.denominator) for c in L.values()], 1)
        self._int_loss = [(m, int(c * self._scale)) for m, c in L.items()]
        self._partials: dict = {}
        self._memo: dict = {}

    def _shift(self, p, point):
        """p(x + point), one variable at a time: x_i^e → Σ_k C(e, k) a_i^{e−k} x_i^k."""
        terms = dict(p)
        for i, a in enumerate(point):
            a, out = _qq(a), {}
            for m, c in terms.items():
                e = m[i]
                for k in range(e + 1):
                    mk = m[:i] + (k,) + m[i + 1:]
                    out[mk] = out.get(mk, 0) + c * comb(e, k) * a ** (e - k)
            terms = out
        return self.R.from_dict(terms)

    # ---- truncated arithmetic
    def weight(self, monom) -> int:
        return sum(w * e for w, e in zip(self._weights, monom))

    def truncate(self, p, K):
        if not p:
            return p
        return self.R.from_dict({m: c for m, c in p.items() if self.weight(m) <= K})

    def mul(self, p, q, K):
        """p·q without the monomials of weight > K."""
        if not p or not q:
            return self.R.zero
        if p.is_ground or q.is_ground:
            return self.truncate(p * q, K)
        (ip, dp), (iq, dq) = self._to_int(p), self._to_int(q)
        return self._from_packed(self._imul(ip, iq, K), dp * dq)

    def coefficient(self, p, k):
        """The η^k coefficient of p (in local mode: its value at the point, a rational)."""
        n = self.n
        if self.local:
            return p.get((0,) * n + (k,) + (0,) * (len(p.ring.gens) - n - 1), QQ(0)) if p else QQ(0)
        return self.R.from_dict({m[:n] + (0,) + m[n + 1:]: c for m, c in p.items() if m[n] == k})

    def derivative_at_point(self, p, k):
        """∂p/∂x_k at the point (local mode), for a jet p without η."""
        monom = tuple(int(i == k) for i in range(self.n)) + (0,) * (len(self.R.gens) - self.n)
        return p.get(monom, QQ(0)) if p else QQ(0)

    def partial(self, alpha, K):
        """∂^α L (α a tuple of exponents) as a jet of weight K."""
        return self._from_packed(self._ipartial(alpha, K), self._scale)

    # Integer jets: {packed monomial: int}. A packed monomial holds each exponent in a 16-bit
    # field and its weight above them, so multiplying monomials is adding integers.
    def _pack(self, monom):
        packed = self.weight(monom) << (16 * len(monom))
        for i, e in enumerate(monom):
            packed |= e << (16 * i)
        return packed

    def _from_packed(self, p, den):
        G = len(self._weights)
        return self.R.from_dict({tuple((m >> (16 * i)) & 0xFFFF for i in range(G)): QQ(c, den)
                                 for m, c in p.items() if c})

    def _to_int(self, p):
        """(integer jet, denominator) with p = jet / denominator."""
        d = lcm(*[int(c.denominator) for c in p.values()], 1)
        return {self._pack(m): int(c.numerator) * (d // int(c.denominator)) for m, c in p.items()}, d

    def _ipartial(self, alpha, K):
        """∂^α (c·L) as an integer jet of weight K."""
        key = (alpha, K)
        if key not in self._partials:
            if not any(alpha):
                out = {self._pack(m): c for m, c in self._int_loss if self.weight(m) <= K}
            else:
                i = next(i for i, a in enumerate(alpha) if a)
                lower = alpha[:i] + (alpha[i] - 1,) + alpha[i + 1:]
                out = self._idiff(self._ipartial(lower, K + self._weights[i]), i)
            self._partials[key] = out
        return self._partials[key]

    def _idiff(self, p, i):
        """∂/∂x_i of an integer jet (it lowers the weight by that of x_i)."""
        unit = (1 << (16 * i)) + (self._weights[i] << (16 * len(self._weights)))
        out = {}
        for m, c in p.items():
            e = (m >> (16 * i)) & 0xFFFF
            if e:
                out[m - unit] = c * e
        return out

    def _imul(self, p, q, K):
        top = (K + 1) << (16 * len(self._weights))        # packed monomials below this have weight ≤ K
        out: dict = {}
        for m1, c1 in p.items():
            for m2, c2 in q.items():
                m = m1 + m2
                if m < top:
                    out[m] = out.get(m, 0) + c1 * c2
        return out

    # ---- operator formulas
    def value(self, expr, K):
        """A formula over :mod:`derive.ops` as a jet of weight K: a list (vector) or a polynomial."""
        expr = sp.sympify(expr)
        key = (expr, K)
        if key not in self._memo:
            self._memo[key] = self._value(expr, K)
        return self._memo[key]

    def vector(self, expr, K):
        """A vector formula as a list of jets of weight K; the formula 0 gives zeros."""
        out = self.value(expr, K)
        if isinstance(out, list):
            return out
        if not out:
            return [self.R.zero] * self.n
        raise ValueError(f"expr: expected a vector formula, got the scalar {expr}")

    def _zero(self, expr):
        return [self.R.zero] * self.n if _is_vector(expr) else self.R.zero

    def _value(self, expr, K):
        if K < 0:
            return self._zero(expr)
        if isinstance(expr, Vec):
            if expr.name not in self.inputs:
                raise ValueError(f"expr: input vector {expr.name!r} not among the inputs {list(self.inputs)}")
            return list(self.inputs[expr.name])
        if isinstance(expr, DL):
            return [self._contract(expr.args, (i,), K) for i in range(self.n)]
        if isinstance(expr, Form):
            return self._contract(expr.args, (), K)
        if isinstance(expr, Dot):
            a, b = (self.value(x, K) for x in expr.args)
            return self._sum(self.mul(ai, bi, K) for ai, bi in zip(a, b))
        if expr == ETA:
            return self.eta if K >= 1 else self.R.zero
        if isinstance(expr, sp.Add):
            parts = [self.value(t, K) for t in expr.args]
            if isinstance(parts[0], list):
                return [self._sum(c) for c in zip(*parts)]
            return self._sum(parts)
        if isinstance(expr, sp.Mul):
            return self._product(expr.args, K)
        if isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp > 0:
            return self._product([expr.base] * int(expr.exp), K)
        if expr.is_Rational:
            return self.R(_qq(expr))
        raise ValueError(f"expr: cannot evaluate {expr} exactly on a polynomial witness")

    def _product(self, factors, K):
        floors = [_min_weight(f) for f in factors]
        out, vec = self.R.one, None
        for i, f in enumerate(factors):
            budget = K - (sum(floors) - floors[i])
            v = self.value(f, budget)
            if isinstance(v, list):
                vec = v
            else:
                out = self.mul(out, v, K)
        return [self.mul(out, c, K) for c in vec] if vec is not None else out

    def _int_vector(self, expr, K):
        """(integer jets, denominator) of a vector formula; the contraction is multilinear, so
        the arguments' denominators can be cleared first."""
        key = ("int", expr, K)
        if key not in self._memo:
            parts = [self._to_int(comp) for comp in self.vector(expr, K)]
            d = lcm(*[dc for _, dc in parts])
            self._memo[key] = [{m: c * (d // dc) for m, c in ic.items()} for ic, dc in parts], d
        return self._memo[key]

    def _contract(self, args, free, K):
        """D^{m+|free|}L[args..., e_free] for the vector formulas ``args`` (held fixed)."""
        ints, den = [], 1
        for a in args:
            ia, d = self._int_vector(a, K)
            ints.append(ia)
            den *= d
        memo: dict = {}

        def rec(k, alpha):
            if (k, alpha) not in memo:
                if k == len(ints):
                    memo[k, alpha] = self._ipartial(alpha, K)
                else:
                    total: dict = {}
                    for j in range(self.n):
                        if ints[k][j]:
                            for m, c in self._imul(rec(k + 1, _bump(alpha, j)), ints[k][j], K).items():
                                total[m] = total.get(m, 0) + c
                    memo[k, alpha] = total
            return memo[k, alpha]

        alpha = (0,) * self.n
        for i in free:
            alpha = _bump(alpha, i)
        return self._from_packed(rec(0, alpha), den * self._scale)

    def _sum(self, polys):
        total = self.R.zero
        for p in polys:
            total += p
        return total

    # ---- the step and the flow
    def gradient_field(self, K):
        """f = −∇L as jets of weight K."""
        return [-self.partial(_bump((0,) * self.n, i), K) for i in range(self.n)]

    def flow_increment(self, field, N):
        """y(η) − y for the flow of ``field`` (jets), up to weight N.

        With X = X̃/D (X̃ integral) the Lie-series terms are T̃_k/(D^k k!) with T̃_1 = ηX̃ and
        T̃_{k+1} = η Σ_j ∂_j T̃_k X̃_j, all in integer arithmetic.
        """
        parts = [self._to_int(c) for c in field]
        D = lcm(*[d for _, d in parts])
        X = [{m: c * (D // d) for m, c in ic.items()} for ic, d in parts]
        eta = self._pack(tuple(int(i == self.n) for i in range(len(self._weights))))
        top = (N + 1) << (16 * len(self._weights))
        term = [{m + eta: c for m, c in Xc.items() if m + eta < top} for Xc in X]
        total = [{} for _ in X]
        for k in range(1, N + 1):
            scale = D ** (N - k) * (factorial(N) // factorial(k))   # T̃_k/(D^k k!) = T̃_k·scale/(D^N N!)
            for tot, t in zip(total, term):
                for m, c in t.items():
                    tot[m] = tot.get(m, 0) + c * scale
            if k == N:
                break
            new = []
            for t in term:
                acc: dict = {}
                for j, Xj in enumerate(X):
                    for m, c in self._imul(self._idiff(t, j), Xj, N - 1).items():
                        acc[m + eta] = acc.get(m + eta, 0) + c
                new.append(acc)
            term = new
        return [self._from_packed(t, D**N * factorial(N)) for t in total]

    def method_increment(self, method, N):
        """One explicit Runge–Kutta step y₁ − y for y' = −∇L, up to weight N."""
        f = self.gradient_field(N - 1 if self.local else N)
        stages = []
        for i in range(len(method.b)):
            shift = [self._sum(self.eta * _qq(method.a[i][j]) * stages[j][c]
                               for j in range(i) if method.a[i][j] != 0) for c in range(self.n)]
            if all(not s for s in shift) and not self.local:
                stages.append(list(f))
                continue
            # local mode: only the value at the point is needed, so x → shift (not x + shift)
            subs = [(x, s if self.local else x + s) for x, s in zip(self.x, shift)]
            stages.append([self.truncate(fc.compose(subs), N - 1) for fc in f])
        return [self.truncate(self._sum(self.eta * _qq(bi) * st[c] for bi, st in zip(method.b, stages) if bi != 0), N)
                for c in range(self.n)]

    def residual(self, field, method, N):
        """η^m coefficients (m = 1..N) of method step − flow of ``field`` (jets of weight ≥ N − 1)."""
        step = self.method_increment(method, N)
        flow = self.flow_increment([self.truncate(c, N - 1) for c in field], N)
        return [[self.coefficient(s - fl, m) for s, fl in zip(step, flow)] for m in range(1, N + 1)]


@lru_cache(maxsize=8)
def jets_at(loss, params, point, inputs=()) -> Jets:
    """A shared :class:`Jets` (local mode) for the witness at a point: repeated checks on the
    same witness (e.g. ``verify()`` after editing one term) reuse the jets already computed."""
    return Jets(loss, params, point, inputs)


def step_vs_flow(field_exprs, loss, params, method, max_power, point=None):
    """η^m coefficients (m = 1..max_power) of method step − flow, as SymPy column matrices.

    Args:
        field_exprs: the field's components, SymPy polynomials in the params and η.
        loss: polynomial loss; the method is applied to y' = −∇L.
        params: the loss's variables.
        method: a :class:`~derive.bseries.ButcherTableau`.
        max_power: highest power of η compared.
        point: rational coordinates: compare the values there (cheap). Without it the
            comparison is a polynomial identity on all of R^n.
    """
    J = Jets(loss, params, point)
    field = [J.R.from_expr(sp.expand(e)) if e != 0 else J.R.zero for e in field_exprs]
    if J.local:
        field = [c.compose([(x, x + _qq(v)) for x, v in zip(J.x, point)]) for c in field]
    res = J.residual([J.truncate(c, max_power - 1) for c in field], method, max_power)
    as_expr = (lambda c: J.R(c).as_expr()) if J.local else (lambda c: c.as_expr())
    return [sp.Matrix([as_expr(c) for c in r]) for r in res]


@lru_cache(maxsize=32)
def _coefficients(loss, params):
    """{exponents: rational coefficient} of a polynomial loss (witnesses are reused: cached)."""
    if loss == 0:
        return {}
    return dict(ring(list(params), QQ)[0].from_expr(loss))


def _qq(v):
    v = sp.Rational(v)
    return QQ(int(v.p), int(v.q))


def _bump(alpha, i):
    return alpha[:i] + (alpha[i] + 1,) + alpha[i + 1:]


def _is_vector(expr) -> bool:
    if isinstance(expr, (DL, Vec)):
        return True
    if isinstance(expr, sp.Add):
        return _is_vector(expr.args[0])
    if isinstance(expr, sp.Mul):
        return any(_is_vector(f) for f in expr.args)
    return False


def _min_weight(expr) -> int:
    """A lower bound on the weight of every monomial of a factor: k for η^k, else 0."""
    if expr == ETA:
        return 1
    if isinstance(expr, sp.Pow) and expr.base == ETA and expr.exp.is_Integer and expr.exp > 0:
        return int(expr.exp)
    return 0
