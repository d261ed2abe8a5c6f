"""Curvature on a flat parameter vector: Hessian-vector products and the top Hessian eigenpairs.

Everything is pure JAX and jit-able: ``hvp_fn`` (forward-over-reverse), a dense ``eigh`` path for
small problems, a matrix-free warm-started block LOBPCG whose stopping rule is a *relative*
residual ‖Hv − λv‖ ≤ tol·|λ| per eigenpair (independent of the parameter count n), the cheap
Rayleigh–Ritz refresh on a stale block, sign/order alignment across steps, and a tracker that
follows every eigenvalue above a threshold with a static capacity K (one jit trace per run).

References: Knyazev, "Toward the optimal preconditioned eigensolver: LOBPCG" (SIAM J. Sci.
Comput. 23, 2001), Alg. 4.1; Stathopoulos & Wu, "A block orthogonalization procedure with constant
synchronization requirements" (SIAM J. Sci. Comput. 23, 2002) for SVQB; Cohen et al., "Understanding
Optimization in Deep Learning with Central Flows" (ICLR 2025), App. (eigenvalue tracking).
"""
from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["DENSE_LIMIT", "HVP_COLUMNS", "EigTracker", "LobpcgInfo", "align", "align_indices", "dense_top_eigs", "hvp_fn",
           "lobpcg_top_eigs", "rayleigh_ritz_refresh", "tracker_init", "tracker_refresh", "tracker_update"]

DENSE_LIMIT = 400
"""Problems with at most this many parameters use a dense ``eigh`` in the tracker."""


# ----------------------------------------------------------------------------- HVPs and dense
HVP_COLUMNS = ("vmap", "map")


def hvp_fn(loss: Callable, columns: str = "vmap") -> Callable:
    """Hessian times a block: ``hvp(w, V) = ∇²L(w) V`` for V of shape (n, k).

    Forward-over-reverse (``jax.jvp`` of ``jax.grad``) over the columns of V; costs about k
    gradients and never forms ∇²L.

    Args:
        loss: ``w -> scalar`` on a flat w of shape (n,).
        columns: ``"vmap"`` (one batched pass: matrix-vector products become matrix products, best
            for dense layers) or ``"map"`` (one column after another: best where batching the
            tangents multiplies large intermediates, e.g. a convolution's patch matrices).

    Returns:
        ``hvp(w, V) -> (n, k)``.
    """
    if not callable(loss):
        raise TypeError(f"loss: expected a callable w -> scalar, got {type(loss).__name__}")
    if columns not in HVP_COLUMNS:
        raise ValueError(f"columns: expected one of {HVP_COLUMNS}, got {columns!r}")
    grad = jax.grad(loss)

    def hvp_column(w, v):
        return jax.jvp(grad, (w,), (v,))[1]

    def hvp(w, V):
        if columns == "map":
            return jax.lax.map(lambda v: hvp_column(w, v), V.T).T
        return jax.vmap(hvp_column, in_axes=(None, 1), out_axes=1)(w, V)

    return hvp


def dense_top_eigs(hess_w, k: int):
    """Top-k eigenpairs of a dense symmetric matrix, eigenvalues descending.

    Args:
        hess_w: (n, n) symmetric matrix (the Hessian at a point).
        k: how many, 1 ≤ k ≤ n (static).

    Returns:
        ``(vals (k,), vecs (n, k))`` with ``hess_w @ vecs[:, i] = vals[i] * vecs[:, i]``.
    """
    if hess_w.ndim != 2 or hess_w.shape[0] != hess_w.shape[1]:
        raise ValueError(f"hess_w: expected a square (n, n) matrix, got shape {hess_w.shape}")
    n = hess_w.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k: expected 1 ≤ k ≤ n = {n}, got {k}")
    vals, vecs = jnp.linalg.eigh(0.5 * (hess_w + hess_w.T))
    return vals[::-1][:k], vecs[:, ::-1][:, :k]


# ----------------------------------------------------------------------------- block helpers
_HIGHEST = lax.Precision.HIGHEST  # no TF32/bf16 passes on accelerators: eigenvectors need full f32
_RESTART = 1e-2  # drop the P block when span[W, P] is this ill-conditioned
_BLOCK = 1024    # rows per partial sum of a Gram block (see _tdot)
_TRUST_ITERS = 3    # after this few iterations at a tolerance ≥ _TRUST_EPS·ε, the linearly updated
_TRUST_EPS = 1e3    # H·X is accurate enough to judge convergence without a final block product


def _eps(dtype):
    return jnp.finfo(dtype).eps


def _tdot(a, b):
    """aᵀb for tall (n, i) and (n, j) blocks, summed in blocks of 1024 rows.

    A plain ``a.T @ b`` accumulates the n products nearly sequentially on CPU: in float32 at
    n = 10⁶ that costs ~1e-4 relative error, which caps every residual (the float32 test at
    n = 200000 in ``tests/test_curvature_sdcp.py`` fails with it). Block partial sums followed by a
    sum over blocks keep it near 1e-6. Blocks of 1024 rows run 2.5× faster than blocks of 64
    at n = 853k (fewer, larger batched products) at the same accuracy.
    """
    n = a.shape[0]
    if n <= 4 * _BLOCK:
        return jnp.matmul(a.T, b, precision=_HIGHEST)
    nb = n // _BLOCK
    head = jnp.einsum("bmi,bmj->bij", a[:nb * _BLOCK].reshape(nb, _BLOCK, -1),
                      b[:nb * _BLOCK].reshape(nb, _BLOCK, -1), precision=_HIGHEST).sum(0)
    return head + jnp.matmul(a[nb * _BLOCK:].T, b[nb * _BLOCK:], precision=_HIGHEST)


_UNROLL = 32  # contractions this short are written as a sum of rank-one updates


def _mm(a, c):
    """(n, i) @ (i, j) at full precision, for a tall block a and a small c.

    For i ≤ 32 it is the sum of the i column-times-row products, which XLA fuses into one pass
    over a: on CPU a dot of shape (n, 3) @ (3, 3) runs ~25× slower than that (853k rows: 10 ms
    against 0.4 ms), and LOBPCG makes a dozen of them per iteration.
    """
    if c.shape[0] > _UNROLL:
        return jnp.matmul(a, c, precision=_HIGHEST)
    out = a[:, :1] * c[:1, :]
    for i in range(1, c.shape[0]):
        out = out + a[:, i:i + 1] * c[i:i + 1, :]
    return out


def _orthogonalize(S, AS, X, AX):
    """S − X XᵀS (twice, "twice is enough"), with A·S updated by the same linear map."""
    for _ in range(2):
        C = _tdot(X, S)
        S = S - _mm(X, C)
        AS = AS - _mm(AX, C)
    return S, AS


def _svqb(S, AS):
    """Orthonormalize the columns of S by eigh of its scaled Gram matrix; drop dependent ones.

    Returns ``(Z, AZ, keep, lam_min)``: Z has orthonormal columns where ``keep`` and zero columns
    elsewhere, AZ = A·Z by linearity (no new HVP), and ``lam_min`` is the smallest kept eigenvalue
    of the scaled Gram matrix (1 for an orthonormal S; errors in AS are amplified by lam_min^−½).
    """
    dtype = S.dtype
    G = _tdot(S, S)
    G = 0.5 * (G + G.T)
    d = jnp.diag(G)
    dinv = jnp.where(d > jnp.finfo(dtype).tiny, lax.rsqrt(jnp.where(d > 0, d, 1)), 0)
    lam, V = jnp.linalg.eigh(G * dinv[:, None] * dinv[None, :])
    keep = lam > _eps(dtype) ** (2 / 3) * jnp.maximum(lam[-1], jnp.finfo(dtype).tiny)
    scale = jnp.where(keep, lax.rsqrt(jnp.where(keep, lam, 1)), 0)
    C = dinv[:, None] * V * scale[None, :]
    lam_min = jnp.min(jnp.where(keep, lam, 1))
    return _mm(S, C), _mm(AS, C), keep, lam_min


def _relative_residuals(R, theta):
    """‖r_i‖ / max(|θ_i|, √ε·max|θ|): relative to the eigenvalue, floored for negligible ones."""
    dtype = R.dtype
    floor = jnp.sqrt(_eps(dtype)) * jnp.max(jnp.abs(theta))
    denom = jnp.maximum(jnp.maximum(jnp.abs(theta), floor), jnp.finfo(dtype).tiny)
    return jnp.linalg.norm(R, axis=0) / denom


def _ritz(X, AX):
    """Rayleigh–Ritz on an orthonormal block: descending Ritz values, rotated X and AX."""
    M = _tdot(X, AX)
    theta, C = jnp.linalg.eigh(0.5 * (M + M.T))
    theta, C = theta[::-1], C[:, ::-1]
    return theta, _mm(X, C), _mm(AX, C)


class LobpcgInfo(NamedTuple):
    """Diagnostics of one ``lobpcg_top_eigs`` solve.

    Attributes:
        iterations: LOBPCG iterations done (int32; each costs one block HVP).
        converged: bool (k,): relative residual ≤ tol, from an explicit final HVP.
        residuals: (k,) relative residuals ‖Hv_i − λ_i v_i‖ / max(|λ_i|, √ε·max_j|λ_j|).
        matvecs: int32, Hessian-vector products done (k per block product).
    """

    iterations: jax.Array
    converged: jax.Array
    residuals: jax.Array
    matvecs: jax.Array = jnp.int32(0)


def _required(theta, n_check, threshold):
    """Which pairs must converge: the top one, and those among the first n_check above threshold."""
    idx = jnp.arange(theta.shape[0])
    need = idx < n_check
    if threshold is not None:
        need = need & ((idx == 0) | (theta > threshold))
    return need


def _lobpcg(hvp_w, V0, tol, max_iters, n_check, threshold=None):
    """Block LOBPCG for the top eigenpairs; stops when the ``_required`` columns converge."""
    n, k = V0.shape
    X, _ = jnp.linalg.qr(V0)
    theta, X, AX = _ritz(X, hvp_w(X))
    zeros = jnp.zeros_like(X)

    def residuals(theta, X, AX):
        return _relative_residuals(AX - X * theta[None, :], theta)

    def cond(carry):
        it, theta, _, _, _, _, res = carry
        return (it < max_iters) & ~jnp.all((res <= tol) | ~_required(theta, n_check, threshold))

    def search_basis(X, AX, W, AW, P, AP):
        """Orthonormal basis of span[W, P] ⟂ X, with A times it; drops P when that is ill-conditioned.

        AP is only known by linearity; a near-dependence between W and P amplifies its error by
        lam_min^−½ at every iteration, so then P is dropped (a steepest-ascent step) and the next
        P is built from the explicitly multiplied W alone.
        """
        P, AP = _orthogonalize(P, AP, X, AX)
        Z, AZ, keep, lam_min = _svqb(jnp.concatenate([W, P], axis=1), jnp.concatenate([AW, AP], axis=1))
        # (a cond, not a select: a select over (n, 2k) blocks costs a full pass at every iteration)
        S, AS = lax.cond(lam_min < _RESTART,
                         lambda: (jnp.concatenate([W, jnp.zeros_like(P)], axis=1),
                                  jnp.concatenate([AW, jnp.zeros_like(AP)], axis=1)),
                         lambda: (Z, AZ))
        S, AS = _orthogonalize(S, AS, X, AX)
        Z, AZ, keep, _ = _svqb(S, AS)  # (second pass: restores orthonormality lost to cancellation)
        return Z, AZ, keep

    def body(carry):
        it, theta, X, AX, P, AP, res = carry
        active = (res > tol).astype(X.dtype)[None, :]  # soft locking: converged pairs stop searching
        W = (AX - X * theta[None, :]) * active
        W, AW = _orthogonalize(W, hvp_w(W), X, AX)
        Z, AZ, keep = search_basis(X, AX, W, AW, P * active, AP * active)
        B, AB = jnp.concatenate([X, Z], axis=1), jnp.concatenate([AX, AZ], axis=1)
        valid = jnp.concatenate([jnp.ones(k, bool), keep])
        M = _tdot(B, AB)
        M = 0.5 * (M + M.T)
        penalty = -(2 * jnp.linalg.norm(M) + 1)
        M = jnp.where(valid[:, None] & valid[None, :], M, 0) + jnp.diag(jnp.where(valid, 0, penalty))
        lam, C = jnp.linalg.eigh(M)
        theta, C = lam[::-1][:k], C[:, ::-1][:, :k]
        Cx, Cz = C[:k], C[k:]
        P, AP = _mm(Z, Cz), _mm(AZ, Cz)
        X, AX = _mm(X, Cx) + P, _mm(AX, Cx) + AP
        return it + 1, theta, X, AX, P, AP, residuals(theta, X, AX)

    def iterate(it, theta, X, AX):
        """The loop from an orthonormal X with H·X, then an honest check: AX was updated by
        linearity inside the loop (its rounding error grows by ≲ 10ε·λ₁/λ_i per iteration), so it is
        recomputed on a re-orthonormalized X, unless the tolerance is loose enough (≥ 1000ε) and
        the iterations few enough (≤ 3) for that error not to matter."""
        start = it
        it, theta, X, AX, _, _, _ = lax.while_loop(cond, body, (it, theta, X, AX, zeros, zeros,
                                                                residuals(theta, X, AX)))
        recheck = (it > start) & ((it - start > _TRUST_ITERS) | (tol < _TRUST_EPS * _eps(X.dtype)))

        def explicit():
            Q, _ = jnp.linalg.qr(X)
            return _ritz(Q, hvp_w(Q))
        theta, X, AX = lax.cond(recheck, explicit, lambda: (theta, X, AX))
        return it, theta, X, AX, recheck.astype(jnp.int32)

    it, theta, X, AX, checks = iterate(jnp.int32(0), theta, X, AX)
    # the loop stopped on drifted residuals that the check does not confirm: one more pass from the
    # recomputed H·X (the old search direction dropped), within the same iteration cap
    res = residuals(theta, X, AX)
    again = (checks > 0) & (it < max_iters) & ~jnp.all((res <= tol) | ~_required(theta, n_check, threshold))
    it, theta, X, AX, more = lax.cond(again, lambda: iterate(it, theta, X, AX),
                                      lambda: (it, theta, X, AX, jnp.int32(0)))
    res = residuals(theta, X, AX)
    matvecs = (1 + it + checks + more) * k
    return theta, X, LobpcgInfo(iterations=it, converged=res <= tol, residuals=res, matvecs=matvecs)


_lobpcg_jit = jax.jit(_lobpcg, static_argnames=("hvp_w", "max_iters", "n_check", "threshold"))


def lobpcg_top_eigs(hvp_w: Callable, V0, *, tol: float = 1e-6, max_iters: int = 100):
    """Top-k eigenpairs of a symmetric operator by warm-started block LOBPCG (matrix-free).

    Each iteration applies H to one (n, k) block (the residuals) and does Rayleigh–Ritz on the
    orthonormalized span of [X, R, P] (3k columns; dependent directions are dropped, so it is safe
    for any n ≥ k, but use ``dense_top_eigs`` for tiny n). Convergence of an eigenpair (λ, v) is
    judged by the *relative* residual ‖Hv − λv‖ / max(|λ|, √ε·max_j|λ_j|) ≤ tol, which does not
    grow with n (unlike ``jax.experimental.sparse.linalg.lobpcg_standard``, whose test is
    scaled by 10·n). The reported residuals come from one explicit final HVP.

    Args:
        hvp_w: ``V -> H V`` for V of shape (n, k): the Hessian at a fixed point applied to a block.
        V0: (n, k) warm start (need not be orthonormal; full column rank is best).
        tol: relative residual tolerance per eigenpair.
        max_iters: iteration cap.

    Returns:
        ``(vals (k,), vecs (n, k), info)``: eigenvalues descending, orthonormal eigenvectors, and a
        ``LobpcgInfo``.
    """
    if not callable(hvp_w):
        raise TypeError(f"hvp_w: expected a callable V -> H V, got {type(hvp_w).__name__}")
    if V0.ndim != 2:
        raise ValueError(f"V0: expected an (n, k) block, got shape {V0.shape}")
    n, k = V0.shape
    if not 1 <= k <= n:
        raise ValueError(f"V0: expected 1 ≤ k ≤ n columns, got shape {V0.shape}")
    if not jnp.issubdtype(V0.dtype, jnp.floating):
        raise TypeError(f"V0: expected a floating dtype, got {V0.dtype}")
    return _lobpcg_jit(hvp_w, V0, jnp.asarray(tol, V0.dtype), int(max_iters), k)


def rayleigh_ritz_refresh(hvp_w: Callable, V):
    """Cheap refresh between full solves: Rayleigh–Ritz on a stale block.

    One block HVP and a k×k ``eigh``: the eigenpairs of QᵀHQ, Q = orth(V), lifted back
    ("stale-vector Rayleigh quotients"). Exact when span(V) is an invariant subspace.

    Args:
        hvp_w: ``V -> H V``.
        V: (n, k) block, typically the last solve's eigenvectors.

    Returns:
        ``(vals (k,), vecs (n, k))``, Ritz values descending.
    """
    if V.ndim != 2:
        raise ValueError(f"V: expected an (n, k) block, got shape {V.shape}")
    Q, _ = jnp.linalg.qr(V)
    theta, X, _ = _ritz(Q, hvp_w(Q))
    return theta, X


# ----------------------------------------------------------------------------- alignment
def align_indices(vecs_new, vecs_old):
    """Greedy matching of old to new vectors by |overlap|: ``(perm, signs)``.

    ``perm[i]`` is the new column matched to old column i (the largest remaining |⟨old_i, new_j⟩|
    is matched first), ``signs[i] = ±1`` makes that overlap non-negative. Reorder eigenvalues with
    ``vals[perm]``.
    """
    if vecs_new.shape != vecs_old.shape or vecs_new.ndim != 2:
        raise ValueError(f"vecs_new, vecs_old: expected equal (n, k) shapes, got {vecs_new.shape} "
                         f"and {vecs_old.shape}")
    k = vecs_new.shape[1]
    overlap = _tdot(vecs_old, vecs_new)
    absO = jnp.abs(overlap)

    def body(_, carry):
        perm, rows, cols = carry
        masked = jnp.where(rows[:, None] & cols[None, :], absO, -1)
        flat = jnp.argmax(masked)
        i, j = (flat // k).astype(jnp.int32), (flat % k).astype(jnp.int32)
        return perm.at[i].set(j), rows.at[i].set(False), cols.at[j].set(False)

    init = (jnp.zeros(k, jnp.int32), jnp.ones(k, bool), jnp.ones(k, bool))
    perm, _, _ = lax.fori_loop(0, k, body, init)
    signs = jnp.where(overlap[jnp.arange(k), perm] < 0, -1, 1).astype(vecs_new.dtype)
    return perm, signs


def align(vecs_new, vecs_old):
    """New eigenvectors reordered and sign-flipped to follow the old ones.

    Column i of the result is the new vector with the largest |overlap| with old column i (greedy
    on the k×k overlap matrix), with its sign chosen so that the overlap is positive.
    """
    perm, signs = align_indices(vecs_new, vecs_old)
    return vecs_new[:, perm] * signs[None, :]


# ----------------------------------------------------------------------------- tracker
class EigTracker(NamedTuple):
    """Top Hessian eigenpairs followed along a run, with static capacity K.

    Attributes:
        vals: (K,) eigenvalues, descending; NaN beyond ``k`` ("not tracked"). Sharpness = vals[0].
        vecs: (n, K) orthonormal. Columns < k are the tracked eigenvectors; columns ≥ k are the
            solver's working (guard) vectors, not converged, kept as warm starts for growth. Use
            ``vals``' NaNs or ``arange(K) < k`` as the mask.
        k: int32, how many eigenpairs are tracked (1 ≤ k ≤ K; never decreases).
        iterations: int32, LOBPCG iterations of the last full solve (0 for dense solves and refreshes).
        converged: bool, the last full solve met the tolerance on the pairs it must resolve: the top
            one and every tracked one above the threshold (all tracked ones when threshold is None).
            The last tracked pair when it is below the threshold (the sentinel that triggers growth)
            is reported as the solver left it; its Ritz value is a lower bound of λ_k.
        matvecs: int32, Hessian-vector products of the last full solve (0 for dense solves and
            refreshes; a refresh costs K).
    """

    vals: jax.Array
    vecs: jax.Array
    k: jax.Array
    iterations: jax.Array
    converged: jax.Array
    matvecs: jax.Array = jnp.int32(0)


def _use_dense(n, dense, dense_hess):
    if dense_hess is not None:
        return True
    if dense is None:
        return n <= DENSE_LIMIT
    return bool(dense)


def _masked(vals, k):
    return jnp.where(jnp.arange(vals.shape[0]) < k, vals, jnp.nan)


def _fix_signs(vecs, old):
    s = jnp.sum(vecs * old, axis=0)
    return vecs * jnp.where(s < 0, -1, 1).astype(vecs.dtype)[None, :]


def _grown(vals, k, K, threshold):
    """Smallest k' ≥ k with vals[k'−1] ≤ threshold (or k' = K): the reference's growth rule."""
    if threshold is None:
        return k
    above = jnp.sum(vals > threshold).astype(jnp.int32)
    return jnp.maximum(k, jnp.minimum(K, above + 1)).astype(jnp.int32)


def _check_w(w, name="w"):
    if not hasattr(w, "ndim") or w.ndim != 1:
        raise ValueError(f"{name}: expected a flat parameter vector of shape (n,), got "
                         f"{getattr(w, 'shape', type(w).__name__)}")
    if not jnp.issubdtype(w.dtype, jnp.floating):
        raise TypeError(f"{name}: expected a floating dtype, got {w.dtype}")


def tracker_init(loss: Callable, w, *, k0: int = 1, k_max: int = 8, threshold=None, dense=None,
                 key=None, columns: str = "vmap") -> EigTracker:
    """Start tracking: random orthonormal block (deterministic ``key``), then one full solve.

    Keep k_max modest (the reference tracks ≲ 4): every LOBPCG iteration multiplies H by K vectors.

    Args:
        loss: ``w -> scalar``.
        w: (n,) parameters.
        k0: eigenpairs tracked at the start.
        k_max: capacity K (clipped to n): the static number of columns kept.
        threshold: grow k while the smallest tracked eigenvalue is above it (e.g. 1.5/η); None: no growth.
        dense: None (dense ``eigh`` when n ≤ ``DENSE_LIMIT``), True/False to force, or a callable
            ``w -> (n, n)`` Hessian.
        key: PRNG key for the warm start (default ``PRNGKey(0)``).
        columns: how HVPs treat a block's columns (see :func:`hvp_fn`).

    Returns:
        The ``EigTracker`` after the first full solve.
    """
    w = jnp.asarray(w)
    _check_w(w)
    n = w.shape[0]
    K = min(int(k_max), n)
    if K < 1:
        raise ValueError(f"k_max: expected ≥ 1, got {k_max}")
    if not 1 <= int(k0) <= K:
        raise ValueError(f"k0: expected 1 ≤ k0 ≤ min(k_max, n) = {K}, got {k0}")
    key = jax.random.PRNGKey(0) if key is None else key
    V0, _ = jnp.linalg.qr(jax.random.normal(key, (n, K), dtype=w.dtype))
    state = EigTracker(vals=jnp.full((K,), jnp.nan, w.dtype), vecs=V0, k=jnp.int32(k0),
                       iterations=jnp.int32(0), converged=jnp.bool_(False), matvecs=jnp.int32(0))
    hess = dense if callable(dense) else None
    return tracker_update(state, loss, w, threshold=threshold, dense_hess=hess,
                          dense=None if callable(dense) else dense, columns=columns)


def tracker_update(state: EigTracker, loss: Callable, w, *, threshold, tol: float = 1e-6,
                   max_iters: int = 100, dense_hess=None, dense=None, columns: str = "vmap") -> EigTracker:
    """A full warm-started solve, then growth: k increases while vals[k−1] > threshold (up to K).

    The LOBPCG path solves with block size K (one compiled solver for any k; each iteration costs
    one HVP block of K columns) and stops when the top pair and the tracked pairs above the
    threshold converge (relative residual ≤ tol); after a growth it solves again (warm) so that
    the newly tracked pair is converged too. Ritz values are lower bounds of the eigenvalues, so a
    growth is never spurious. The new direction's warm start is the solver's current (k+1)-th
    Ritz vector, itself started at ``tracker_init`` from a random vector orthogonalized against
    the others. The dense path (n ≤ ``DENSE_LIMIT`` or a dense Hessian given) applies the same
    growth rule to ``eigh``. Signs are aligned with the previous vectors; jit-compiled per ``loss``.

    Args:
        state: the previous ``EigTracker``.
        loss: ``w -> scalar``.
        w: (n,) parameters.
        threshold: growth threshold (e.g. 1.5/η), or None for no growth.
        tol, max_iters: LOBPCG relative-residual tolerance and iteration cap (per solve).
        dense_hess: the (n, n) Hessian at w, or a callable ``w -> (n, n)``: use the dense path.
        dense: force (True) or forbid (False) the dense path; None: dense iff n ≤ ``DENSE_LIMIT``.
        columns: how HVPs treat a block's columns (see :func:`hvp_fn`).

    Returns:
        The new ``EigTracker``; ``converged`` is False when the solve hit ``max_iters``.
    """
    w = jnp.asarray(w)
    _check_w(w)
    n, K = state.vecs.shape
    if w.shape[0] != n:
        raise ValueError(f"w: expected shape ({n},) to match the tracker, got {w.shape}")
    if not callable(loss):
        raise TypeError(f"loss: expected a callable w -> scalar, got {type(loss).__name__}")
    thr = None if threshold is None else jnp.asarray(threshold, w.dtype)
    if _use_dense(n, dense, dense_hess):
        hess_fn = dense_hess if callable(dense_hess) else None
        H = None if dense_hess is None or hess_fn is not None else jnp.asarray(dense_hess, w.dtype)
        shape = jax.eval_shape(hess_fn, w).shape if hess_fn is not None else None if H is None else H.shape
        if shape is not None and shape != (n, n):
            raise ValueError(f"dense_hess: expected shape ({n}, {n}), got {shape}")
        return _update_dense(state, w, thr, H, loss=loss, hess_fn=hess_fn)
    return _update_lobpcg(state, w, thr, jnp.asarray(tol, w.dtype), loss=loss, max_iters=int(max_iters),
                          columns=columns)


@partial(jax.jit, static_argnames=("loss", "hess_fn"))
def _update_dense(state, w, threshold, H, loss, hess_fn):
    if H is None:
        H = (jax.hessian(loss) if hess_fn is None else hess_fn)(w)
    K = state.vecs.shape[1]
    vals, vecs = dense_top_eigs(jnp.asarray(H, w.dtype), K)
    k = _grown(vals, state.k, K, threshold)
    return EigTracker(vals=_masked(vals, k), vecs=_fix_signs(vecs, state.vecs), k=k,
                      iterations=jnp.int32(0), converged=jnp.bool_(True), matvecs=jnp.int32(0))


@partial(jax.jit, static_argnames=("loss", "max_iters", "columns"))
def _update_lobpcg(state, w, threshold, tol, loss, max_iters, columns):
    K = state.vecs.shape[1]
    hvp = hvp_fn(loss, columns)
    hvp_w = lambda V: hvp(w, V)  # noqa: E731

    def solve(carry):
        V, _, k, iters, matvecs, _, _ = carry
        vals, vecs, info = _lobpcg(hvp_w, V, tol, max_iters, k, threshold)
        ok = jnp.all(info.converged | ~_required(vals, k, threshold))
        k_next = _grown(vals, k, K, threshold)
        k_next = jnp.minimum(k_next, k + 1)  # one at a time: each new pair is converged before the next
        return vecs, vals, k_next, iters + info.iterations, matvecs + info.matvecs, ok, k_next > k

    init = (state.vecs, jnp.zeros(K, w.dtype), state.k, jnp.int32(0), jnp.int32(0), jnp.bool_(False),
            jnp.bool_(True))
    vecs, vals, k, iters, matvecs, ok, _ = lax.while_loop(lambda c: c[-1], solve, init)
    return EigTracker(vals=_masked(vals, k), vecs=_fix_signs(vecs, state.vecs), k=k, iterations=iters,
                      converged=ok, matvecs=matvecs)


def tracker_refresh(state: EigTracker, loss: Callable, w, columns: str = "vmap") -> EigTracker:
    """Rayleigh–Ritz on the stale block (one block HVP); k and ``converged`` are kept, iterations = 0.

    ``columns``: how HVPs treat the block's columns (see :func:`hvp_fn`)."""
    w = jnp.asarray(w)
    _check_w(w)
    if w.shape[0] != state.vecs.shape[0]:
        raise ValueError(f"w: expected shape ({state.vecs.shape[0]},) to match the tracker, got {w.shape}")
    return _refresh(state, w, loss=loss, columns=columns)


@partial(jax.jit, static_argnames=("loss", "columns"))
def _refresh(state, w, loss, columns):
    hvp = hvp_fn(loss, columns)
    vals, vecs = rayleigh_ritz_refresh(lambda V: hvp(w, V), state.vecs)
    return state._replace(vals=_masked(vals, state.k), vecs=_fix_signs(vecs, state.vecs),
                          iterations=jnp.int32(0), matvecs=jnp.int32(0))
