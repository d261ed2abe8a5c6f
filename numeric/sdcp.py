"""The central flow's semidefinite complementarity problem (SDCP), solved on device in JAX.

Find a symmetric k×k X with

    X ⪰ 0,    Q(X) = A + B[X] ⪰ 0,    ⟨X, Q(X)⟩ = 0,

which for a self-adjoint B ⪰ 0 (Frobenius inner product ⟨X, Y⟩ = Σ_ij X_ij Y_ij) is the
optimality condition of the convex program min_{X ⪰ 0} f(X) = ½⟨X, B[X]⟩ + ⟨A, X⟩, ∇f = Q.
It is solved by accelerated projected gradient (FISTA) with adaptive restart, step 1/λ_max(B),
projection onto the PSD cone by ``eigh``, all inside one ``lax.while_loop``: no host round trip.

Conventions (those of ``derive.central_flow_multi(k)``): the packed coordinates of X are X_ij,
i ≤ j, in ``itertools.combinations_with_replacement(range(k), 2)`` order (= ``numpy.triu_indices``);
B is the p×p matrix, p = k(k+1)/2, with packed(Q) = packed(A) + B @ packed(X), so its columns for
an off-diagonal X_ij already carry the factor 2. In packed coordinates the Frobenius inner
product is xᵀ D y with D = diag(1 on the diagonal entries, 2 off it); B is self-adjoint for it
when D B is symmetric, and λ_max(B) is that of D^{½} B D^{−½}.

References: Cohen, Damian, Talwalkar, Kolter & Lee, "Understanding Optimization in Deep Learning
with Central Flows" (ICLR 2025), §3 eq. (8); Beck & Teboulle, "A fast iterative shrinkage-
thresholding algorithm" (SIAM J. Imaging Sci. 2, 2009); O'Donoghue & Candès, "Adaptive restart
for accelerated gradient schemes" (Found. Comput. Math. 15, 2015).
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["SdcpInfo", "apply_B", "pack", "sigma2_closed_form", "solve_sdcp", "unpack"]

_HIGHEST = lax.Precision.HIGHEST  # no TF32/bf16 passes on accelerators


class SdcpInfo(NamedTuple):
    """Diagnostics of ``solve_sdcp`` (residuals are relative, see ``solve_sdcp``).

    Attributes:
        iterations: FISTA iterations done (int32).
        dual: max(0, −λ_min(Q)) / scale: violation of A + B[X] ⪰ 0.
        complementarity: |⟨X, Q⟩| / (‖X‖_F · scale).
        projected_gradient: ‖X − Π(X − Q/L)‖_F · L / scale: the fixed-point residual.
        converged: all three ≤ tol.
    """

    iterations: jax.Array
    dual: jax.Array
    complementarity: jax.Array
    projected_gradient: jax.Array
    converged: jax.Array


def _k_from_p(p: int) -> int:
    k = int(round((np.sqrt(8 * p + 1) - 1) / 2))
    return k if k * (k + 1) // 2 == p else -1


def pack(X):
    """The entries X_ij, i ≤ j, of a symmetric (k, k) matrix, in row-major upper-triangle order."""
    i, j = np.triu_indices(X.shape[-1])
    return X[..., i, j]


def unpack(x, k: int):
    """The symmetric (k, k) matrix with packed entries x (inverse of ``pack``)."""
    i, j = np.triu_indices(k)
    M = jnp.zeros(x.shape[:-1] + (k, k), x.dtype).at[..., i, j].set(x)
    return M + jnp.swapaxes(M, -1, -2) - M * jnp.eye(k, dtype=x.dtype)


def apply_B(B, X):
    """B[X] = unpack(B @ pack(X)): the linear part of Q as a map on symmetric matrices (batched X ok)."""
    return unpack(jnp.einsum("pq,...q->...p", B, pack(X), precision=_HIGHEST), X.shape[-1])


def _psd_part(lam, V):
    return jnp.matmul(V * jnp.maximum(lam, 0)[..., None, :], jnp.swapaxes(V, -1, -2), precision=_HIGHEST)


def _project_psd(Y):
    lam, V = jnp.linalg.eigh(0.5 * (Y + Y.T))
    return _psd_part(lam, V)


def _lipschitz(B, pmask, k):
    """λ_max of B as an operator on symmetric matrices (Frobenius metric), active entries only."""
    i, j = np.triu_indices(k)
    d = jnp.asarray(np.where(i == j, 1.0, np.sqrt(2.0)), B.dtype)
    M = d[:, None] * B / d[None, :]
    M = jnp.where(pmask[:, None] & pmask[None, :], 0.5 * (M + M.T), 0)
    return jnp.linalg.eigvalsh(M)[-1]


def sigma2_closed_form(a, b):
    """k = 1: X = max(0, −a/b) for Q(x) = a + b x with b > 0 (σ² of the single-eigenvalue flow).

    b = 0: 0 if a ≥ 0, else +inf (no solution: the program is unbounded below).
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    safe = jnp.where(b > 0, b, 1)
    return jnp.where(b > 0, jnp.maximum(0, -a / safe), jnp.where(a >= 0, 0, jnp.inf)).astype(
        jnp.result_type(a, b))


def _check(A, B, mask, x0):
    if not hasattr(A, "ndim") or A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A: expected a square (k, k) matrix, got shape {getattr(A, 'shape', None)}")
    k = A.shape[0]
    p = k * (k + 1) // 2
    if not hasattr(B, "ndim") or B.shape != (p, p):
        raise ValueError(f"B: expected shape ({p}, {p}) (packed coordinates for k = {k}), got "
                         f"{getattr(B, 'shape', None)}")
    for name, v in (("A", A), ("B", B)):
        if not jnp.issubdtype(v.dtype, jnp.floating):
            raise TypeError(f"{name}: expected a floating dtype, got {v.dtype}")
    if mask is not None and (mask.shape != (k,) or mask.dtype != jnp.bool_):
        raise ValueError(f"mask: expected a bool array of shape ({k},), got {mask.dtype} {mask.shape}")
    if x0 is not None and x0.shape != (k, k):
        raise ValueError(f"x0: expected shape ({k}, {k}), got {x0.shape}")


def solve_sdcp(A, B, mask=None, *, max_iters: int = 5000, tol: float = 1e-8, x0=None):
    """Solve X ⪰ 0, Q = A + B[X] ⪰ 0, ⟨X, Q⟩ = 0 by restarted FISTA on the convex program.

    Iterates Y → X⁺ = Π(Y − Q(Y)/L), L = λ_max(B), Π the projection onto the PSD cone (eigh,
    negative eigenvalues clipped) with Nesterov momentum, reset whenever ⟨Y − X⁺, X⁺ − X⟩ > 0.
    Stops when the three relative residuals are ≤ tol (floored at 256 ε: 3e-5 in float32)
    or after ``max_iters``. With scale = ‖A‖_F + ‖B[X]‖_F (active block):
    dual = max(0, −λ_min(Q))/scale, complementarity = |⟨X, Q⟩|/(‖X‖_F·scale),
    projected_gradient = L‖X − Π(X − Q/L)‖_F/scale. X ⪰ 0 holds exactly (it is a projection).

    A singular B is fine (the iterates stay bounded when a solution exists; from X = 0 a
    direction that B does not see keeps X = 0 there when A is zero on it); A ⪰ 0 gives X = 0
    exactly (the start, recognized with 0 iterations). If no solution exists (B[X] cannot offset
    a negative part of A: the program is unbounded below) the residuals stay large, ``converged``
    is False after ``max_iters``, and the iterates stay finite.

    Args:
        A: (k, k) symmetric.
        B: (p, p), p = k(k+1)/2, on packed coordinates (see the module docstring); self-adjoint
            and ⪰ 0 w.r.t. the Frobenius inner product.
        mask: optional bool (k,): active directions; rows and columns of inactive ones are exactly 0
            in X and ignored in the residuals (one compiled solver of capacity K serves any k ≤ K).
        max_iters: iteration cap.
        tol: relative residual tolerance.
        x0: optional (k, k) warm start (projected onto the feasible set first).

    Returns:
        ``(X (k, k), SdcpInfo)`` in the dtype of A and B.
    """
    A, B = jnp.asarray(A), jnp.asarray(B)
    mask = None if mask is None else jnp.asarray(mask)
    x0 = None if x0 is None else jnp.asarray(x0)
    _check(A, B, mask, x0)
    dtype = jnp.result_type(A, B)
    m = jnp.ones(A.shape[0], bool) if mask is None else mask
    return _solve(A.astype(dtype), B.astype(dtype), m, None if x0 is None else x0.astype(dtype),
                  jnp.asarray(tol, dtype), max_iters=int(max_iters))


@partial(jax.jit, static_argnames=("max_iters",))
def _solve(A, B, m, x0, tol, max_iters):
    dtype = A.dtype
    k = A.shape[0]
    eps, tiny = jnp.finfo(dtype).eps, jnp.finfo(dtype).tiny
    tol = jnp.maximum(tol, 256 * eps)  # float32 cannot certify much below ~1e-5
    mm = (m[:, None] & m[None, :]).astype(dtype)
    iu, ju = np.triu_indices(k)
    A = 0.5 * (A + A.T) * mm
    L = _lipschitz(B, m[iu] & m[ju], k)
    normA = jnp.linalg.norm(A)
    L = jnp.maximum(L, jnp.maximum(eps * normA, tiny))  # B = 0: a finite step, X stays finite

    def Q(X):
        return A + apply_B(B, X) * mm

    def proj(Y):
        return _project_psd(Y * mm) * mm

    def residuals(X, QX):
        scale = normA + jnp.linalg.norm(QX - A) + tiny
        stacked = jnp.stack([QX, X - QX / L])
        lam, V = jnp.linalg.eigh(stacked)
        # eigenvalues of the inactive block are 0: they do not hide a negative one
        dual = jnp.maximum(0, -lam[0, 0]) / scale
        P = _psd_part(lam[1], V[1]) * mm
        pg = L * jnp.linalg.norm(X - P) / scale
        comp = jnp.abs(jnp.sum(X * QX)) / (jnp.linalg.norm(X) * scale + tiny)
        return dual, comp, pg

    def done(r):
        return (r[0] <= tol) & (r[1] <= tol) & (r[2] <= tol)

    X = jnp.zeros((k, k), dtype) if x0 is None else proj(x0)
    QX = Q(X)

    def cond(c):
        it, _, _, _, _, _, r = c
        return (it < max_iters) & ~done(r)

    def body(c):
        it, t, X, QX, Xp, QXp, _ = c
        t_next = 0.5 * (1 + jnp.sqrt(1 + 4 * t * t))
        beta = (t - 1) / t_next
        Y, QY = X + beta * (X - Xp), QX + beta * (QX - QXp)
        Xn = proj(Y - QY / L)
        QXn = Q(Xn)
        restart = jnp.sum((Y - Xn) * (Xn - X)) > 0
        t_next = jnp.where(restart, jnp.asarray(1, dtype), t_next)
        return it + 1, t_next, Xn, QXn, X, QX, residuals(Xn, QXn)

    carry = (jnp.int32(0), jnp.asarray(1, dtype), X, QX, X, QX, residuals(X, QX))
    it, _, X, QX, _, _, r = lax.while_loop(cond, body, carry)
    return X, SdcpInfo(iterations=it, dual=r[0], complementarity=r[1], projected_gradient=r[2],
                       converged=done(r))
