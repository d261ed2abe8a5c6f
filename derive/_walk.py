"""Walks over SymPy expressions that visit every distinct subexpression once.

SymPy's own ``free_symbols``, ``has``, ``is_number`` and ``xreplace`` recurse over the expression
*tree*; gradients and Hessians of nested losses share subexpressions massively, so their trees
are exponentially larger than their DAGs (a 12-deep nested loss: 10⁶ tree nodes, 10³ distinct
ones). These walks memoize on the subexpression and are iterative (no recursion limit).
"""
from __future__ import annotations

from collections.abc import Callable, Container, Iterable

import sympy as sp

__all__ = ["FreeSymbols", "bottom_up", "postorder", "tree_size"]


def postorder(roots: Iterable[sp.Basic], done: Container = ()):
    """Every distinct subexpression of ``roots`` not in ``done``, children before parents, each once."""
    seen: set = set()
    for root in roots:
        if root in seen or root in done:
            continue
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                yield node
                continue
            if node in seen:
                continue
            seen.add(node)
            stack.append((node, True))
            stack.extend((a, False) for a in node.args if a not in seen and a not in done)


def tree_size(expr: sp.Basic) -> int:
    """Number of nodes of ``expr`` as a tree (what printing or SymPy's tree walks visit), in DAG time."""
    size: dict = {}
    for node in postorder([expr]):
        size[node] = 1 + sum(size[a] for a in node.args)
    return size[expr]


class FreeSymbols:
    """``expr.free_symbols`` memoized over shared subexpressions; one instance per batch of work."""

    def __init__(self) -> None:
        self._memo: dict[sp.Basic, frozenset] = {}

    def __call__(self, expr: sp.Basic) -> frozenset:
        memo = self._memo
        if expr in memo:
            return memo[expr]
        for node in postorder([expr], memo):
            if node.is_Symbol:
                memo[node] = frozenset((node,))
            elif not node.args:
                memo[node] = frozenset()
            elif isinstance(node, (sp.Lambda, sp.Subs, sp.Derivative, sp.Integral, sp.Sum, sp.Product)):
                memo[node] = frozenset(node.free_symbols)   # binds symbols: SymPy knows which
            else:
                memo[node] = frozenset().union(*(memo[a] for a in node.args))
        return memo[expr]

    def union(self, exprs: Iterable[sp.Basic]) -> frozenset:
        return frozenset().union(*(self(e) for e in exprs))


def bottom_up(expr: sp.Basic, rule: Callable[[sp.Basic], sp.Basic | None], memo: dict | None = None) -> sp.Basic:
    """Rebuild ``expr`` children first; ``rule(node)`` (on the rebuilt node) returns a replacement or None.

    A node none of whose children changed is kept as it is (not rebuilt: rebuilding re-runs
    SymPy's automatic evaluation, which on large nested expressions is exponential).
    """
    memo = {} if memo is None else memo
    changed = memo.setdefault(_CHANGED, set())
    for node in postorder([expr], memo):
        new = node
        if node.args and any(a in changed for a in node.args):
            new = node.func(*(memo[a] for a in node.args))
        out = rule(new)
        memo[node] = new if out is None else out
        if memo[node] is not node:
            changed.add(node)
    return memo[expr]


_CHANGED = object()   # memo key of the set of nodes whose replacement differs
