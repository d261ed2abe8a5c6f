"""A loss to simulate, on a flat parameter vector: from a SymPy expression or a JAX function.

Everything in ``numeric`` works on flat vectors w ∈ R^n (``jax.flatten_util.ravel_pytree``
turns a pytree into one and back), so eigensolvers, flows and logs share one representation.
A symbolic problem gets its kernels from ``derive.build_function`` (generated code); an autodiff
problem gets them from ``jax.grad``/HVPs. Either way the derived operator formulas of
``derive`` (modified fields, central-flow quantities) run on ``Problem.loss``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["Problem", "from_sympy", "from_jax", "ravel_columns"]


@dataclass(frozen=True)
class Problem:
    """A loss on R^n with an initial point.

    Attributes:
        name: label used in tables and files.
        loss: ``w -> scalar`` for a flat w of shape (n,); jit-able and differentiable.
        init: initial point, shape (n,), float64 NumPy array.
        grad: ``w -> (n,)``: generated code for symbolic problems, ``jax.grad(loss)`` otherwise.
        hess: ``w -> (n, n)`` for problems small enough for dense curvature, else None.
        param_names: names of the coordinates (symbolic problems), else None.
        unravel: flat vector -> the user's pytree (identity for flat problems).
        sympy: ``(loss_expr, params, consts)`` for symbolic problems (used by ``derive``), else None.
        known: known answers for tests and reports (e.g. the exact 2-cycle).
        description: one line.
        hvp_columns: how Hessian-vector products treat a block of vectors, ``"vmap"`` (batched) or
            ``"map"`` (one after another; see :func:`numeric.curvature.hvp_fn`).
        loss_and_grad: ``w -> (L, ∇L)`` in one pass, or None (then ``loss`` and ``grad``).
    """

    name: str
    loss: Callable
    init: np.ndarray
    grad: Callable
    hess: Callable | None = None
    param_names: tuple[str, ...] | None = None
    unravel: Callable = field(default=lambda w: w)
    sympy: tuple | None = None
    known: dict = field(default_factory=dict)
    description: str = ""
    hvp_columns: str = "vmap"
    loss_and_grad: Callable | None = None

    @property
    def n(self) -> int:
        return int(self.init.shape[0])

    def value_and_grad(self, w):
        """``(L(w), ∇L(w))`` from one pass where the problem has one (autodiff problems)."""
        if self.loss_and_grad is not None:
            return self.loss_and_grad(w)
        return self.loss(w), self.grad(w)

    def named(self, w) -> dict[str, float]:
        """``{name: value}`` for symbolic problems (``{"w[i]": value}`` otherwise)."""
        w = np.asarray(w, dtype=float)
        names = self.param_names or tuple(f"w[{i}]" for i in range(len(w)))
        return {k: float(v) for k, v in zip(names, w)}


def from_sympy(loss, params, init, consts: dict | None = None, name: str = "sympy",
               description: str = "", known: dict | None = None, dense_limit: int = 400) -> Problem:
    """A problem whose loss, gradient and Hessian are generated from a SymPy expression.

    Args:
        loss: scalar SymPy expression.
        params: parameter symbols (the order of w's coordinates).
        init: initial point: a sequence of floats, or ``{name: value}`` covering every parameter.
        consts: values for the other symbols of ``loss``.
        name, description, known: labels and known answers.
        dense_limit: generate the Hessian only up to this many parameters.
    """
    import jax.numpy as jnp
    import sympy as sp

    from derive import build_function, derivatives
    from derive import _validate

    loss = _validate.as_expr(loss, name="loss")
    params = _validate.as_params(params, name="params")
    consts = dict(consts or {})
    const_syms = tuple(sorted((s for s in _validate.free_symbols(loss) if s not in params), key=lambda s: s.name))
    missing = [s.name for s in const_syms if s.name not in {str(k) for k in consts}]
    if missing:
        raise _validate.DeriveInputError(f"consts: no value for {missing}")
    values = {str(k): float(v) for k, v in consts.items()}
    w0 = _as_init(init, params)
    bound = sp.sympify(loss).xreplace({s: sp.Float(values[s.name]) for s in const_syms})
    # One kernel per quantity: jitting the loss never traces the Hessian.
    tag = _ident(name)
    g_and_H = derivatives(bound, params, order=2 if len(params) <= dense_limit else 1)
    loss_fn = build_function(bound, params, name=f"{tag}_loss")
    grad_fn = build_function(g_and_H[0], params, name=f"{tag}_grad")
    hess = None
    if len(g_and_H) == 2:
        n = len(params)
        hess_fn = build_function(g_and_H[1], params, name=f"{tag}_hess")
        hess = lambda w: jnp.reshape(hess_fn(w), (n, n))  # noqa: E731  (a 1×1 Matrix prints as a column)
    return Problem(name=name, loss=loss_fn, init=w0, grad=lambda w: jnp.reshape(grad_fn(w), (-1,)),
                   hess=hess, param_names=tuple(p.name for p in params), sympy=(bound, params, ()),
                   known=dict(known or {}), description=description)


def from_jax(loss_fn: Callable, init_params: Any, name: str = "jax", description: str = "",
             dense_limit: int = 400, known: dict | None = None, hvp_columns: str = "vmap") -> Problem:
    """A problem from a JAX loss over a parameter pytree; kernels by autodiff.

    ``hvp_columns``: ``"vmap"`` (batched HVPs, best for dense layers) or ``"map"`` (one vector
    after another, best for convolutions); see :func:`numeric.curvature.hvp_fn`.
    """
    import jax

    from .curvature import HVP_COLUMNS

    if not callable(loss_fn):
        raise TypeError(f"loss_fn: expected a callable params -> scalar, got {type(loss_fn).__name__}")
    if hvp_columns not in HVP_COLUMNS:
        from derive.errors import DeriveInputError
        raise DeriveInputError(f"hvp_columns: expected one of {list(HVP_COLUMNS)}, got {hvp_columns!r}")
    flat, unravel = ravel_columns(init_params)
    loss = lambda w: loss_fn(unravel(w))  # noqa: E731
    n = flat.shape[0]
    return Problem(name=name, loss=loss, init=np.asarray(flat, dtype=np.float64), grad=jax.grad(loss),
                   loss_and_grad=jax.value_and_grad(loss),
                   hess=jax.hessian(loss) if n <= dense_limit else None, unravel=unravel,
                   known=dict(known or {}), description=description, hvp_columns=hvp_columns)


def ravel_columns(tree) -> tuple[np.ndarray, Callable]:
    """Flatten a pytree of arrays into one vector, matrices in column-major order; and the inverse.

    Like ``jax.flatten_util.ravel_pytree`` (leaves in tree order), except that 2-D leaves are
    stored transposed. XLA's CPU backend computes a dense layer's weight gradient Xᵀδ in
    column-major layout; writing it into a row-major slice of the flat gradient turns the matrix
    product into a slow fused loop (853k-parameter MLP: 189 ms per GD step instead of 23 ms).

    Returns:
        ``(flat, unravel)``: a float64 NumPy vector and ``w -> tree`` (jit-able).
    """
    import jax

    leaves, treedef = jax.tree_util.tree_flatten(tree)
    leaves = [np.asarray(leaf) for leaf in leaves]
    shapes = [leaf.shape for leaf in leaves]
    dtypes = [leaf.dtype for leaf in leaves]
    bounds = np.cumsum([0] + [leaf.size for leaf in leaves]).tolist()
    flat = np.concatenate([(leaf.T if leaf.ndim == 2 else leaf).reshape(-1).astype(np.float64) for leaf in leaves]
                          ) if leaves else np.zeros(0)

    def unravel(w):
        out = []
        for shape, dtype, a, b in zip(shapes, dtypes, bounds[:-1], bounds[1:]):
            piece = w[a:b].astype(dtype)
            out.append(piece.reshape(shape[::-1]).T if len(shape) == 2 else piece.reshape(shape))
        return jax.tree_util.tree_unflatten(treedef, out)
    return flat, unravel


def _as_init(init, params) -> np.ndarray:
    """``{name: value}`` or a sequence, checked against the parameters: one-line errors naming ``init``."""
    import math

    from derive.errors import DeriveInputError

    names = [p.name for p in params]
    shown = names if len(names) <= 12 else names[:12] + ["..."]
    if isinstance(init, dict):
        missing = [n for n in names if n not in init]
        extra = [k for k in init if k not in names]
        if missing:
            raise DeriveInputError(f"init: no value for {missing[:12]} (parameters: {shown})")
        if extra:
            raise DeriveInputError(f"init: {extra[:12]} are not parameters (parameters: {shown})")
        values = []
        for k in names:
            try:
                values.append(float(init[k]))
            except (TypeError, ValueError):
                raise DeriveInputError(f"init: value of {k!r} is not a number: {str(init[k])[:40]}") from None
            if not math.isfinite(values[-1]):
                raise DeriveInputError(f"init: value of {k!r} must be finite, got {values[-1]}")
    else:
        try:
            values = [float(v) for v in np.ravel(np.asarray(init, dtype=float))]
        except (TypeError, ValueError):
            raise DeriveInputError(f"init: expected a dict or {len(names)} numbers, got {str(init)[:40]}") from None
        if len(values) != len(names):
            raise DeriveInputError(f"init: expected {len(names)} values for {shown}, got {len(values)}")
        if not all(math.isfinite(v) for v in values):
            raise DeriveInputError("init: values must be finite")
    return np.asarray(values, dtype=np.float64)


def _ident(name: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in name)
    return out if out and not out[0].isdigit() else f"p_{out}"
