"""Compile operator formulas into JAX autodiff programs for any loss over a parameter pytree.

No expression of the loss is needed: ∇L is ``jax.grad``, H v a jvp of the gradient,
D³L[u, v] a jvp of that, and so on (forward-over-reverse). Contractions are memoized while
tracing, so a formula that uses T[g, g] twice computes it once. The program composes with
``jax.jit`` and ``jax.vmap`` and runs unchanged on a network with millions of parameters.
"""
from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from .ops import DL, Dot, Form, Vec
from .ops import eta as ETA

__all__ = ["OperatorProgram", "compile_operator"]


class OperatorProgram:
    """A compiled operator formula: ``program(params, eta=..., **inputs)``.

    Vector formulas return a pytree shaped like ``params``; scalar formulas a scalar.
    Named input vectors (:class:`~derive.ops.Vec`) are pytrees shaped like ``params``; other
    free scalar symbols are passed by name as keyword arguments.
    """

    def __init__(self, expr, loss_fn: Callable, name: str = "operator"):
        if not callable(loss_fn):
            raise TypeError(f"loss_fn: expected a callable params -> scalar, got {type(loss_fn).__name__}")
        self.many = isinstance(expr, (list, tuple, sp.MatrixBase))
        self.exprs = tuple(sp.sympify(e) for e in (expr if self.many else [expr]))
        self.expr = sp.Tuple(*self.exprs) if self.many else self.exprs[0]
        self.loss_fn = loss_fn
        self.name = name
        self.vector_inputs = tuple(sorted({a.name for a in sp.preorder_traversal(self.expr)
                                          if isinstance(a, Vec)}))
        self.scalar_inputs = tuple(sorted(
            s.name for s in self.expr.free_symbols if not isinstance(s, Vec) and s != ETA))

    def __repr__(self):
        return f"OperatorProgram({self.name}: {self.expr})"

    def __call__(self, params, eta=None, **inputs):
        import jax
        import jax.numpy as jnp
        from jax.flatten_util import ravel_pytree

        flat, unravel = ravel_pytree(params)
        missing = [n for n in self.vector_inputs + self.scalar_inputs if n not in inputs]
        if missing:
            raise ValueError(f"inputs: {self.name} needs {missing}")
        if eta is None and ETA in self.expr.free_symbols:
            raise ValueError(f"eta: {self.name} depends on the learning rate; pass eta=")
        vecs = {n: ravel_pytree(inputs[n])[0].astype(flat.dtype) for n in self.vector_inputs}
        for n, v in vecs.items():
            if v.shape != flat.shape:
                raise ValueError(f"{n}: expected {flat.shape[0]} entries like params, got {v.shape[0]}")
        scalars = {n: jnp.asarray(inputs[n], flat.dtype) for n in self.scalar_inputs}

        def loss_flat(x):
            return self.loss_fn(unravel(x))

        def grad_flat(x):   # the gradient of the pytree loss, then flattened (see numeric.problem.Problem)
            return ravel_pytree(jax.grad(self.loss_fn)(unravel(x)))[0].astype(x.dtype)
        memo: dict = {}

        def derivative(dirs):
            if not dirs:
                return grad_flat(flat)

            def nested(x, ds):
                if not ds:
                    return grad_flat(x)
                return jax.jvp(lambda y: nested(y, ds[:-1]), (x,), (ds[-1],))[1]
            return nested(flat, tuple(dirs))

        def ev(e):
            if e in memo:
                return memo[e]
            if isinstance(e, Vec):
                out = vecs[e.name]
            elif isinstance(e, DL):
                out = derivative([ev(a) for a in e.args])
            elif isinstance(e, Form):
                out = loss_flat(flat) if not e.args else jnp.vdot(
                    ev(DL(*e.args[:-1])), ev(e.args[-1]))
            elif isinstance(e, Dot):
                out = jnp.vdot(ev(e.args[0]), ev(e.args[1]))
            elif e == ETA:
                out = jnp.asarray(eta, flat.dtype)
            elif isinstance(e, sp.Symbol):
                out = scalars[e.name]
            elif isinstance(e, sp.Add):
                out = sum((ev(t) for t in e.args[1:]), ev(e.args[0]))
            elif isinstance(e, sp.Mul):
                out = ev(e.args[0])
                for f in e.args[1:]:
                    out = out * ev(f)
            elif isinstance(e, sp.Pow):
                out = ev(e.args[0]) ** ev(e.args[1])
            elif e.is_Number:
                out = jnp.asarray(float(e), flat.dtype)
            elif e == 0:
                out = jnp.zeros((), flat.dtype)
            else:
                raise ValueError(f"expr: cannot compile {type(e).__name__} ({e})")
            memo[e] = out
            return out

        results = [ev(e) for e in self.exprs]
        results = [unravel(r) if jnp.ndim(r) == 1 else r for r in results]
        return results if self.many else results[0]


def compile_operator(expr, loss_fn: Callable, name: str = "operator") -> OperatorProgram:
    """Compile an operator formula (or a list of them) for a JAX loss ``loss_fn(params) -> scalar``.

    A list of formulas becomes one program returning a list; shared contractions (e.g. the
    third-derivative vectors of a central flow's A, B and velocity) are computed once.

    Example:
        >>> import jax.numpy as jnp
        >>> from derive.ops import DL, grad
        >>> hg = compile_operator(DL(grad), lambda p: jnp.sum(p["w"] ** 4) / 4)
        >>> hg({"w": jnp.array([1.0, 2.0])})["w"]   # H g = 3 w² · w³
        Array([  3., 96.], dtype=float32)
    """
    return OperatorProgram(expr, loss_fn, name)
