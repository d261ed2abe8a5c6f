"""Instantiate operator formulas on a concrete SymPy loss in explicit parameters.

``D^{m+1}L[a1, ..., am]`` is computed as a directional derivative in which the directions are
held fixed: fresh dummy symbols stand for the directions while differentiating and are
substituted afterwards, so a direction that itself depends on the parameters (like ∇L) is not
differentiated by mistake.
"""
from __future__ import annotations

import sympy as sp

from .ops import DL, Dot, Form, Vec
from .ops import eta as ETA

__all__ = ["Instantiator", "instantiate"]


class Instantiator:
    """Evaluates operator expressions for one loss, memoizing derivative contractions.

    Args:
        loss: scalar SymPy expression.
        params: the parameter symbols (coordinates of w).
        eta: value (or symbol) substituted for the learning rate η.
        vectors: ``{name: column Matrix}`` for each :class:`~derive.ops.Vec` input; a missing
            input becomes a column of Dummy symbols ``name_<param>`` (never a user's symbol).
    """

    def __init__(self, loss, params, eta=ETA, vectors=None):
        self.loss = loss
        self.params = tuple(params)
        self.eta = eta
        self.vectors = {str(k): sp.Matrix(v) for k, v in (vectors or {}).items()}
        self._memo: dict = {}
        self._dummy_count = 0

    # ---- building blocks
    def _dummies(self):
        self._dummy_count += 1
        return sp.Matrix([sp.Dummy(f"a{self._dummy_count}_{i}") for i in range(len(self.params))])

    def _contract(self, scalar, directions):
        """Σ_j ∂_j(...) a_j applied once per direction, directions held fixed."""
        subs = {}
        for vec in directions:
            d = self._dummies()
            scalar = sum((sp.diff(scalar, p) * d[i] for i, p in enumerate(self.params)),
                         sp.Integer(0))
            subs.update({d[i]: vec[i] for i in range(len(self.params))})
        return scalar, subs

    def vector_input(self, v: Vec):
        if v.name not in self.vectors:
            self.vectors[v.name] = sp.Matrix([sp.Dummy(f"{v.name}_{p}", real=True)
                                              for p in self.params])
        vec = self.vectors[v.name]
        if vec.shape != (len(self.params), 1):
            raise ValueError(f"vectors: {v.name!r} must be a column of length {len(self.params)}, "
                             f"got shape {vec.shape}")
        return vec

    def derivative_vector(self, args):
        key = ("DL", args)
        if key not in self._memo:
            dirs = [self.value(a) for a in args]
            scalar, subs = self._contract(self.loss, dirs)
            vec = sp.Matrix([sp.diff(scalar, p) for p in self.params]).xreplace(subs)
            self._memo[key] = vec
        return self._memo[key]

    def derivative_form(self, args):
        key = ("Form", args)
        if key not in self._memo:
            if not args:
                self._memo[key] = self.loss
            else:
                v = self.derivative_vector(args[:-1])
                self._memo[key] = (v.T * self.value(args[-1]))[0, 0]
        return self._memo[key]

    # ---- evaluation
    def vector(self, expr):
        """Evaluate a vector formula; the formula 0 gives the zero column."""
        out = self.value(expr)
        if isinstance(out, sp.MatrixBase):
            return out
        if out == 0:
            return sp.zeros(len(self.params), 1)
        raise ValueError(f"expr: expected a vector formula, got the scalar {expr}")

    def value(self, expr):
        """Evaluate an operator expression: a column Matrix (vectors) or a scalar."""
        expr = sp.sympify(expr)
        if isinstance(expr, Vec):
            return self.vector_input(expr)
        if isinstance(expr, DL):
            return self.derivative_vector(expr.args)
        if isinstance(expr, Form):
            return self.derivative_form(expr.args)
        if isinstance(expr, Dot):
            a, b = (self.value(x) for x in expr.args)
            return (a.T * b)[0, 0]
        if expr == ETA:
            return self.eta
        if isinstance(expr, sp.Add):
            parts = [self.value(t) for t in expr.args]
            total = parts[0]
            for p in parts[1:]:
                total = total + p
            return total
        if isinstance(expr, sp.Mul):
            out = sp.Integer(1)
            for f in expr.args:
                out = out * self.value(f)
            return out
        if isinstance(expr, sp.Pow):
            return self.value(expr.args[0]) ** self.value(expr.args[1])
        if expr.is_Atom:
            return expr
        if isinstance(expr, sp.Function):
            return expr.func(*[self.value(a) for a in expr.args])
        raise ValueError(f"expr: cannot instantiate {type(expr).__name__}")


def instantiate(expr, loss, params, eta=ETA, vectors=None):
    """Evaluate one operator expression on a concrete loss (see :class:`Instantiator`)."""
    return Instantiator(loss, params, eta, vectors).value(expr)
