"""Rooted trees, grafting and re-rooting: the combinatorics behind B-series.

A rooted tree is a canonical nested tuple: the leaf • is ``()``, and ``(t1, ..., tm)`` is a
root whose children are the trees t1..tm, sorted. The elementary differential of a tree for
the field f is F(•) = f, F((t1..tm)) = f^{(m)}(F(t1), ..., F(tm)).

References: Hairer, Lubich & Wanner, *Geometric Numerical Integration*, ch. III.1 and IX.9.
"""
from __future__ import annotations

from collections import Counter
from fractions import Fraction
from functools import cache
from itertools import combinations_with_replacement

Tree = tuple

LEAF: Tree = ()


def tree(*children: Tree) -> Tree:
    """The canonical tree with the given children."""
    return tuple(sorted(children, key=_key))


def _key(t: Tree):
    return (size(t), tuple(_key(c) for c in t))


@cache
def size(t: Tree) -> int:
    """Number of nodes |t|."""
    return 1 + sum(size(c) for c in t)


@cache
def trees_of_size(n: int) -> tuple[Tree, ...]:
    """All rooted trees with n nodes, in canonical order."""
    if n == 1:
        return (LEAF,)
    out = set()
    for forest in forests_of_size(n - 1):
        out.add(tree(*forest))
    return tuple(sorted(out, key=_key))


@cache
def forests_of_size(n: int) -> tuple[tuple[Tree, ...], ...]:
    """All multisets of trees with n nodes in total (each a sorted tuple)."""
    if n == 0:
        return ((),)
    out = set()
    for first in range(1, n + 1):
        for t in trees_of_size(first):
            for rest in forests_of_size(n - first):
                out.add(tuple(sorted((t,) + rest, key=_key)))
    return tuple(sorted(out, key=lambda f: tuple(_key(t) for t in f)))


def graft(t: Tree, s: Tree) -> Counter:
    """Σ over the nodes v of t of the tree t with s attached as a new child of v."""
    out: Counter = Counter()
    out[tree(*t, s)] += 1
    for i, child in enumerate(t):
        for grafted, mult in graft(child, s).items():
            out[tree(*t[:i], grafted, *t[i + 1:])] += mult
    return out


# --------------------------------------------------------------------------- series

Series = dict  # Tree -> Fraction


def graft_series(v: Series, x: Series, max_size: int) -> Series:
    """The derivative V'[X] of B-series vector fields: Σ c_t d_s graft(t, s)."""
    out: dict = {}
    for t, ct in v.items():
        for s, ds in x.items():
            if size(t) + size(s) > max_size:
                continue
            for r, m in graft(t, s).items():
                out[r] = out.get(r, 0) + ct * ds * m
    return {t: c for t, c in out.items() if c != 0}


def compose_field(delta: Series, max_size: int) -> Series:
    """The series of f(y + δ) = Σ_m (1/m!) f^{(m)}(δ, ..., δ) for an increment δ.

    δ's tree t carries h^{|t|}; the result's tree t carries h^{|t|-1}.
    """
    items = sorted(delta.items(), key=lambda kv: _key(kv[0]))
    out: dict = {LEAF: Fraction(1)}
    for m in range(1, max_size):
        for combo in combinations_with_replacement(range(len(items)), m):
            if 1 + sum(size(items[i][0]) for i in combo) > max_size:
                continue
            coef = Fraction(1)
            for i in combo:
                coef *= items[i][1]
            for count in Counter(combo).values():
                coef /= _factorial(count)
            t = tree(*(items[i][0] for i in combo))
            out[t] = out.get(t, 0) + coef
    return {t: c for t, c in out.items() if c != 0}


def _factorial(k: int) -> int:
    out = 1
    for i in range(2, k + 1):
        out *= i
    return out


def flow_increment(field: Series, max_size: int) -> Series:
    """Time-h flow of y' = Σ_t c_t h^{|t|-1} F(t): y(h) - y = Σ_k h^k/k! (L_X)^{k-1} X."""
    out: dict = {}
    term = dict(field)
    k = 1
    while term:
        for t, c in term.items():
            out[t] = out.get(t, 0) + c / _factorial(k)
        k += 1
        term = graft_series(term, field, max_size)
    return {t: c for t, c in out.items() if c != 0}


# --------------------------------------------------------------------------- free trees

def _adjacency(t: Tree):
    """Nodes 0..n-1 of t (0 is the root) and an undirected adjacency list."""
    adj: list[list[int]] = []

    def add(sub, parent):
        idx = len(adj)
        adj.append([])
        if parent is not None:
            adj[idx].append(parent)
            adj[parent].append(idx)
        for c in sub:
            add(c, idx)
    add(t, None)
    return adj


def _rooted_at(adj, root, parent=None) -> Tree:
    return tree(*(_rooted_at(adj, nb, root) for nb in adj[root] if nb != parent))


def rootings(t: Tree) -> Counter:
    """Counter of the rooted trees obtained by rooting t's underlying free tree at each node."""
    adj = _adjacency(t)
    return Counter(_rooted_at(adj, r) for r in range(len(adj)))


def free_class(t: Tree) -> Tree:
    """A canonical representative of t's free (unrooted) tree: its smallest rooting."""
    return min(rootings(t), key=_key)


def center_rooting(t: Tree) -> Tree:
    """t's free tree rooted at a center (the canonical choice for printing scalars)."""
    adj = _adjacency(t)
    n = len(adj)
    degree = [len(a) for a in adj]
    leaves = [i for i in range(n) if degree[i] <= 1]
    remaining = n
    while remaining > 2:
        nxt = []
        for leaf in leaves:
            remaining -= 1
            for nb in adj[leaf]:
                degree[nb] -= 1
                if degree[nb] == 1:
                    nxt.append(nb)
            degree[leaf] = 0
        leaves = nxt
    return min((_rooted_at(adj, c) for c in leaves), key=_key)


def max_children(t: Tree) -> int:
    """The largest number of children of any node (0 for the leaf)."""
    return max([len(t)] + [max_children(c) for c in t])


def paths_to_nodes(t: Tree):
    """Yield, for every node x of t, the list [(node, index of next child on the path)] root→x."""
    def rec(sub, prefix):
        yield prefix + [(sub, None)]
        for i, c in enumerate(sub):
            yield from rec(c, prefix + [(sub, i)])
    yield from rec(t, [])
