"""Curvature (HVPs, top eigenpairs, the tracker) and the on-device SDCP, against float64 oracles.

Oracles: ``numpy.linalg.eigh`` of explicit matrices, ``jax.hessian`` (nested AD), the secular
equation of a diagonal-plus-low-rank operator, SDCP conditions recomputed in NumPy from the
vectors N_ij (never through the packed B the solver sees), planted SDCP solutions, ``scipy``
BFGS on X = ZZᵀ, derive's own A and B formulas, and the closed form of k = 1.
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import sympy as sp

from numeric.curvature import (align, align_indices, dense_top_eigs, hvp_fn, lobpcg_top_eigs, rayleigh_ritz_refresh,
                               tracker_init, tracker_refresh, tracker_update)
from numeric.sdcp import sigma2_closed_form, solve_sdcp


# ----------------------------------------------------------------------------- fixtures / oracles
def sym_with_gap(rng, n, top, bulk=1.0):
    """Random symmetric matrix with the given top eigenvalues and the rest in [−1, bulk]."""
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    ev = np.concatenate([top, rng.uniform(-1, bulk, n - len(top))])
    return (Q * ev) @ Q.T


def mlp_loss(seed=0, sizes=(4, 6, 3), m=12):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(m, sizes[0])))
    y = jnp.asarray(rng.normal(size=(m, sizes[-1])))
    shapes = [(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    n = sum(a * b + b for a, b in shapes)

    def loss(w):
        h, off = x, 0
        for i, (a, b) in enumerate(shapes):
            W = w[off:off + a * b].reshape(a, b)
            off += a * b
            h = h @ W + w[off:off + b]
            off += b
            if i < len(shapes) - 1:
                h = jnp.tanh(h)
        return 0.5 * jnp.mean(jnp.sum((h - y) ** 2, axis=1))

    return loss, n, rng.normal(size=n)


def overlap_error(U, V):
    """1 − |⟨u_i, v_i⟩| per column (0 iff equal up to sign)."""
    return 1 - np.abs(np.sum(np.asarray(U) * np.asarray(V), axis=0))


# ----------------------------------------------------------------------------- HVP and dense
def test_hvp_matches_nested_autodiff_hessian(x64):
    loss, n, w = mlp_loss()
    w = jnp.asarray(w)
    V = jnp.asarray(np.random.default_rng(1).normal(size=(n, 3)))
    H = np.asarray(jax.jit(jax.hessian(loss))(w))
    np.testing.assert_allclose(np.asarray(jax.jit(hvp_fn(loss))(w, V)), H @ np.asarray(V), rtol=1e-12, atol=1e-12)


def test_hvp_one_column_after_another_matches_nested_autodiff_hessian(x64):
    loss, n, w = mlp_loss(seed=2)
    w = jnp.asarray(w)
    V = jnp.asarray(np.random.default_rng(2).normal(size=(n, 4)))
    H = np.asarray(jax.jit(jax.hessian(loss))(w))
    np.testing.assert_allclose(np.asarray(jax.jit(hvp_fn(loss, "map"))(w, V)), H @ np.asarray(V),
                               rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="^columns: expected one of"):
        hvp_fn(loss, "pmap")


@pytest.mark.parametrize("i, j", [(1, 1), (3, 3), (9, 3), (32, 5), (33, 4)])
def test_tall_block_products_match_numpy(i, j):
    """LOBPCG's (n, i) @ (i, j) products (rank-one sums up to i = 32, a matmul beyond) in float32
    against NumPy in float64."""
    from numeric.curvature import _mm
    rng = np.random.default_rng(i * 100 + j)
    a, c = rng.normal(size=(5000, i)), rng.normal(size=(i, j))
    got = np.asarray(jax.jit(_mm)(jnp.asarray(a, jnp.float32), jnp.asarray(c, jnp.float32)), np.float64)
    ref = np.asarray(a, np.float32).astype(np.float64) @ np.asarray(c, np.float32).astype(np.float64)
    assert got.shape == (5000, j)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.sqrt(i) * np.abs(ref).max())


def _counting(H):
    """``V -> H V`` that counts, on the host at run time, the columns it is applied to."""
    count = [0]

    def bump(V):
        count[0] += V.shape[1]

    def hvp_w(V):
        jax.debug.callback(bump, V)
        return H @ V
    return hvp_w, count


@pytest.mark.parametrize("tol, dtype", [(1e-10, np.float64), (1e-3, np.float32)])
def test_lobpcg_reports_the_hessian_vector_products_it_did(x64, tol, dtype):
    rng = np.random.default_rng(11)
    n, k = 300, 3
    H = jnp.asarray(sym_with_gap(rng, n, [10.0, 9.0, 8.0], bulk=6.0), dtype)
    hvp_w, count = _counting(H)
    vals, vecs, info = jax.jit(lambda V: lobpcg_top_eigs(hvp_w, V, tol=tol, max_iters=200))(
        jnp.asarray(rng.normal(size=(n, k)), dtype))
    jax.effects_barrier()
    assert int(info.iterations) > 0 and bool(jnp.all(info.converged))
    assert int(info.matvecs) == count[0], (int(info.matvecs), count[0])
    # the reported residuals (from the linearly updated H·X where no final product was made)
    # agree with residuals recomputed here in float64
    Hn, U, lam = np.asarray(H, np.float64), np.asarray(vecs, np.float64), np.asarray(vals, np.float64)
    R = np.linalg.norm(Hn @ U - U * lam, axis=0) / np.abs(lam)
    assert np.all(R <= tol * 1.01), (R, tol)
    np.testing.assert_allclose(np.asarray(info.residuals, np.float64), R, rtol=0, atol=max(tol * 1e-2, 1e-12))


def test_lobpcg_does_not_stop_on_drifted_residuals(no_x64):
    """float32, λ₁ three thousand times the others: the linearly updated H·X drifts (≲ 10ε·λ₁/λ_i per
    iteration) and the loop can stop on residuals the explicit check then refutes (before: 6 of these
    30 solves ended "not converged" after 7–9 iterations of 100). The solver goes on from the
    recomputed H·X, and what it reports as converged is, recomputed here in float64."""
    tol, k, n = 3e-4, 3, 300
    solve = jax.jit(lambda H, V: lobpcg_top_eigs(lambda X: H @ X, V, tol=tol, max_iters=100))   # one compilation
    for seed in range(30):
        rng = np.random.default_rng(seed)
        Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
        lam = np.concatenate([[3e3, 1.0, 0.5], rng.uniform(0, 0.3, n - k)])
        H = (Q * lam) @ Q.T
        vals, vecs, info = solve(jnp.asarray(H, jnp.float32), jnp.asarray(rng.normal(size=(n, k)), jnp.float32))
        assert bool(jnp.all(info.converged)) and int(info.iterations) < 100, (seed, info)
        U, v = np.asarray(vecs, np.float64), np.asarray(vals, np.float64)
        floor = np.sqrt(np.finfo(np.float32).eps) * np.abs(v).max()   # the residuals' definition (LobpcgInfo)
        R = np.linalg.norm(H @ U - U * v, axis=0) / np.maximum(np.abs(v), floor)
        assert np.all(R <= 1.5 * tol), (seed, R)
        np.testing.assert_allclose(np.sort(v), np.sort(lam)[::-1][:k][::-1], rtol=1e-3)


def test_dense_top_eigs_matches_numpy(x64):
    rng = np.random.default_rng(0)
    H = sym_with_gap(rng, 30, [5.0, 4.0, 3.0])
    vals, vecs = dense_top_eigs(jnp.asarray(H), 3)
    ev, evec = np.linalg.eigh(H)
    np.testing.assert_allclose(np.asarray(vals), ev[::-1][:3], rtol=1e-12)
    assert overlap_error(vecs, evec[:, ::-1][:, :3]).max() < 1e-12
    with pytest.raises(ValueError, match="k"):
        dense_top_eigs(jnp.asarray(H), 31)


# ----------------------------------------------------------------------------- LOBPCG
@pytest.mark.parametrize("n", [50, 500])
def test_lobpcg_matches_numpy_eigh(x64, n):
    rng = np.random.default_rng(n)
    k = 4
    H = sym_with_gap(rng, n, [10.0, 8.0, 6.0, 5.0])
    Hj = jnp.asarray(H)
    vals, vecs, info = lobpcg_top_eigs(lambda V: Hj @ V, jnp.asarray(rng.normal(size=(n, k))), tol=1e-10,
                                       max_iters=200)
    ev, evec = np.linalg.eigh(H)
    assert bool(jnp.all(info.converged))
    np.testing.assert_allclose(np.asarray(vals), ev[::-1][:k], rtol=1e-12)
    assert overlap_error(vecs, evec[:, ::-1][:, :k]).max() < 1e-12
    np.testing.assert_allclose(np.asarray(vecs).T @ np.asarray(vecs), np.eye(k), atol=1e-12)
    # the residuals, recomputed here in NumPy, meet the tolerance as reported
    R = H @ np.asarray(vecs) - np.asarray(vecs) * np.asarray(vals)
    assert np.all(np.linalg.norm(R, axis=0) / np.abs(ev[::-1][:k]) <= 1e-10)
    assert np.all(np.asarray(info.residuals) <= 1e-10)


def test_lobpcg_on_an_mlp_hessian_against_dense(x64):
    loss, n, w = mlp_loss(seed=3)
    w = jnp.asarray(w)
    hvp = hvp_fn(loss)
    k = 3
    V0 = jnp.asarray(np.random.default_rng(0).normal(size=(n, k)))
    vals, vecs, info = jax.jit(lambda V: lobpcg_top_eigs(lambda U: hvp(w, U), V, tol=1e-10, max_iters=300))(V0)
    ev, evec = np.linalg.eigh(np.asarray(jax.jit(jax.hessian(loss))(w)))
    assert bool(jnp.all(info.converged)), info
    np.testing.assert_allclose(np.asarray(vals), ev[::-1][:k], rtol=1e-9)
    assert overlap_error(vecs, evec[:, ::-1][:, :k]).max() < 1e-8


def test_lobpcg_warm_start_needs_far_fewer_iterations(x64):
    """Next step's Hessian (a small perturbation): warm start from the last vectors vs cold."""
    rng = np.random.default_rng(7)
    n, k = 400, 3
    H0 = sym_with_gap(rng, n, [10.0, 9.0, 8.0], bulk=6.0)
    E = rng.normal(size=(n, n))
    H1 = jnp.asarray(H0 + 1e-6 * (E + E.T))
    solve = jax.jit(lambda H, V: lobpcg_top_eigs(lambda U: H @ U, V, tol=1e-8, max_iters=200))
    _, vecs0, _ = solve(jnp.asarray(H0), jnp.asarray(rng.normal(size=(n, k))))
    _, _, cold = solve(H1, jnp.asarray(rng.normal(size=(n, k))))
    vals, _, warm = solve(H1, vecs0)
    assert bool(jnp.all(warm.converged)) and bool(jnp.all(cold.converged))
    np.testing.assert_allclose(np.asarray(vals), np.linalg.eigvalsh(np.asarray(H1))[::-1][:k], rtol=1e-12)
    assert 0 < int(warm.iterations) <= int(cold.iterations) / 3, (int(warm.iterations), int(cold.iterations))


def _secular_top(d, U, s, count):
    """Top eigenvalues of diag(d) + U diag(s) Uᵀ (U orthonormal) above max(d): roots of
    det(I − diag(s)^½ Uᵀ(λ − D)⁻¹ U diag(s)^½), bracketed on a grid, refined by brentq."""
    def f(lam):
        M = (U * (1 / (lam - d))[:, None]).T @ U
        return np.linalg.det(np.eye(len(s)) - np.sqrt(s)[:, None] * M * np.sqrt(s)[None, :])
    grid = np.linspace(d.max() + 1e-3, d.max() + 2 * s.max() + 2, 4000)
    vals = np.array([f(x) for x in grid])
    roots = [scipy.optimize.brentq(f, a, b, xtol=1e-14)
             for a, b, fa, fb in zip(grid[:-1], grid[1:], vals[:-1], vals[1:]) if fa * fb < 0]
    return np.sort(roots)[::-1][:count]


@pytest.mark.parametrize("n", [50, 20000])
def test_lobpcg_relative_tolerance_does_not_scale_with_n(x64, n):
    """Diagonal plus low rank, matrix-free: the same tol gives relative residual ≤ tol at any n."""
    rng = np.random.default_rng(n)
    k, tol = 3, 1e-6
    d = rng.uniform(-1, 1, n)
    U, _ = np.linalg.qr(rng.normal(size=(n, k)))
    s = np.array([10.0, 8.0, 6.0])
    dj, Uj, sj = jnp.asarray(d), jnp.asarray(U), jnp.asarray(s)
    op = lambda V: dj[:, None] * V + Uj @ (sj[:, None] * (Uj.T @ V))  # noqa: E731
    vals, vecs, info = lobpcg_top_eigs(op, jnp.asarray(rng.normal(size=(n, k))), tol=tol)
    assert bool(jnp.all(info.converged))
    V = np.asarray(vecs)
    R = d[:, None] * V + U @ (s[:, None] * (U.T @ V)) - V * np.asarray(vals)
    rel = np.linalg.norm(R, axis=0) / np.abs(np.asarray(vals))
    assert rel.max() <= tol                                     # not tol·n
    np.testing.assert_allclose(V.T @ V, np.eye(k), atol=1e-12)
    exact = _secular_top(d, U, s, k)
    assert np.all(np.abs(np.asarray(vals) - exact) <= 2 * tol * exact)  # |λ − θ| ≤ ‖r‖


def test_lobpcg_tiny_n_and_past_the_floor(x64):
    """n = 2k still works (dependent directions are dropped); iterating past the rounding floor
    (tol = 0) does not blow up."""
    rng = np.random.default_rng(3)
    for n, k in [(2, 1), (6, 3)]:
        H = rng.normal(size=(n, n))
        H = H + H.T
        Hj = jnp.asarray(H)
        vals, _, _ = lobpcg_top_eigs(lambda V, Hj=Hj: Hj @ V, jnp.asarray(rng.normal(size=(n, k))), tol=1e-10)
        np.testing.assert_allclose(np.asarray(vals), np.linalg.eigvalsh(H)[::-1][:k], rtol=1e-10)
    H = sym_with_gap(rng, 300, [10.0, 8.0])
    vals, _, info = lobpcg_top_eigs(lambda V: jnp.asarray(H) @ V, jnp.asarray(rng.normal(size=(300, 2))),
                                    tol=0.0, max_iters=80)
    assert int(info.iterations) == 80 and float(info.residuals.max()) < 1e-10   # at the floor (~1e-12), not blown up
    np.testing.assert_allclose(np.asarray(vals), [10.0, 8.0], rtol=1e-13)


def test_lobpcg_float32_reaches_its_floor_at_large_n():
    """float32, n = 200000: residuals reach ~1e-6 (sums over n are blocked, so no n·ε floor)."""
    rng = np.random.default_rng(0)
    n, k = 200_000, 2
    d = jnp.asarray(rng.uniform(-1, 1, n), jnp.float32)
    U = jnp.asarray(np.linalg.qr(rng.normal(size=(n, k)))[0], jnp.float32)
    s = jnp.asarray([10.0, 7.0], jnp.float32)
    op = lambda V: d[:, None] * V + U @ (s[:, None] * (U.T @ V))  # noqa: E731
    vals, vecs, info = lobpcg_top_eigs(op, jnp.asarray(rng.normal(size=(n, k)), jnp.float32), tol=2e-5)
    assert vals.dtype == jnp.float32 and bool(jnp.all(info.converged))
    V = np.asarray(vecs, np.float64)
    R = np.asarray(d, np.float64)[:, None] * V + np.asarray(U, np.float64) @ (
        np.array([10.0, 7.0])[:, None] * (np.asarray(U, np.float64).T @ V)) - V * np.asarray(vals, np.float64)
    assert (np.linalg.norm(R, axis=0) / np.asarray(vals)).max() < 1e-4


def test_lobpcg_input_errors():
    with pytest.raises(ValueError, match="V0"):
        lobpcg_top_eigs(lambda V: V, jnp.ones(5))
    with pytest.raises(TypeError, match="hvp_w"):
        lobpcg_top_eigs(None, jnp.ones((5, 1)))


# ----------------------------------------------------------------------------- align, refresh
def test_align_fixes_permutations_and_signs(x64):
    rng = np.random.default_rng(0)
    n, k = 40, 5
    old, _ = np.linalg.qr(rng.normal(size=(n, k)))
    perm = np.array([3, 0, 4, 1, 2])
    signs = np.array([1, -1, -1, 1, -1])
    new = old[:, perm] * signs + 1e-3 * rng.normal(size=(n, k))
    out = np.asarray(align(jnp.asarray(new), jnp.asarray(old)))
    np.testing.assert_allclose(out, old, atol=1e-2)
    p, sg = align_indices(jnp.asarray(new), jnp.asarray(old))
    # old column i went to new column inverse(perm)[i]
    np.testing.assert_array_equal(np.asarray(p), np.argsort(perm))
    np.testing.assert_array_equal(np.asarray(sg), signs[np.argsort(perm)])


def test_rayleigh_ritz_refresh_is_exact_on_invariant_subspaces_and_second_order(x64):
    rng = np.random.default_rng(2)
    n, k = 60, 3
    H = sym_with_gap(rng, n, [9.0, 7.0, 5.0])
    ev, evec = np.linalg.eigh(H)
    top, Vtop = ev[::-1][:k], evec[:, ::-1][:, :k]
    R, _ = np.linalg.qr(rng.normal(size=(k, k)))
    op = lambda V: jnp.asarray(H) @ V  # noqa: E731
    vals, vecs = rayleigh_ritz_refresh(op, jnp.asarray(Vtop @ R))
    np.testing.assert_allclose(np.asarray(vals), top, rtol=1e-13)
    assert overlap_error(vecs, Vtop).max() < 1e-13
    E = rng.normal(size=(n, k))
    errs = [np.abs(np.asarray(rayleigh_ritz_refresh(op, jnp.asarray(Vtop + h * E))[0]) - top).max()
            for h in (1e-2, 1e-3)]
    slope = np.log10(errs[0] / errs[1])
    assert 1.8 < slope < 2.2, errs  # stale vectors off by h → Ritz values off by h²


# ----------------------------------------------------------------------------- tracker
def controlled_quadratic(n, seed=0):
    """L_c(w) = ½ wᵀ H(c) w, H(c) = Q diag(c + 3, c + 2, c + 1, c, c − 1, bulk) Qᵀ, bulk in [−1, 0.5]."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    bulk = rng.uniform(-1, 0.5, n - 5)
    Qj = jnp.asarray(Q)

    def spectrum(c):
        return np.concatenate([[c + 3, c + 2, c + 1, c, c - 1], bulk])

    def loss(c):   # c may be traced
        ev = jnp.concatenate([c + jnp.arange(3.0, -2.0, -1.0), jnp.asarray(bulk)])
        return lambda w: 0.5 * jnp.sum(ev * (Qj.T @ w) ** 2)

    return loss, spectrum, jnp.asarray(rng.normal(size=n))


@pytest.mark.parametrize("dense", [False, True])
def test_tracker_grows_k_with_the_eigenvalues_above_threshold(x64, dense):
    n, K, thr = 450, 5, 4.0
    loss, spectrum, w = controlled_quadratic(n)
    update = jax.jit(lambda st, c: tracker_update(st, loss(c), w, threshold=thr, dense=dense, tol=1e-8,
                                                  max_iters=200))
    st = tracker_init(loss(0.5), w, k0=1, k_max=K, threshold=thr, dense=dense)
    ks = [int(st.k)]
    for c in (1.5, 2.5, 3.5, 5.5, 9.0, 2.0):   # above 4: 1, 2, 3, 4, 5, then back down to 1
        st = update(st, c)
        ev = np.sort(spectrum(c))[::-1]
        k = int(st.k)
        ks.append(k)
        assert bool(st.converged)
        np.testing.assert_allclose(np.asarray(st.vals[:k]), ev[:k], rtol=1e-7)
        assert np.all(np.isnan(np.asarray(st.vals[k:])))
        np.testing.assert_allclose(np.asarray(st.vecs).T @ np.asarray(st.vecs), np.eye(K), atol=1e-10)
    # every eigenvalue above the threshold tracked, plus one below it (the sentinel), capped at K,
    # and k never decreases (the last step goes back below the threshold)
    assert ks == [1, 2, 3, 4, 5, 5, 5], ks
    assert ks[0] == 1 and spectrum(0.5)[0] < thr


def test_tracker_dense_path_equals_lobpcg_path(x64):
    loss, spectrum, w = controlled_quadratic(300, seed=4)
    a = tracker_init(loss(2.5), w, k_max=5, threshold=3.0, dense=True)
    b = tracker_init(loss(2.5), w, k_max=5, threshold=3.0, dense=False)
    assert int(a.k) == int(b.k) == 4 and int(a.iterations) == 0 and int(b.iterations) > 0
    np.testing.assert_allclose(np.asarray(a.vals[:3]), np.asarray(b.vals[:3]), rtol=1e-9)
    assert overlap_error(a.vecs[:, :3], b.vecs[:, :3]).max() < 1e-10
    # the dense Hessian as a callable (Problem.hess) gives the same
    c = tracker_init(loss(2.5), w, k_max=5, threshold=3.0, dense=jax.hessian(loss(2.5)))
    np.testing.assert_allclose(np.asarray(c.vals[:3]), np.asarray(a.vals[:3]), rtol=1e-12)


def test_tracker_refresh_and_small_n(x64):
    loss, spectrum, w = controlled_quadratic(300, seed=5)
    st = tracker_init(loss(3.0), w, k_max=4, threshold=4.5, dense=False)
    assert int(st.k) == 3
    # refresh at a nearby Hessian: same k, Ritz values close to the new eigenvalues, NaN beyond k
    r = tracker_refresh(st, loss(3.001), w)
    assert int(r.k) == 3 and int(r.iterations) == 0 and np.all(np.isnan(np.asarray(r.vals[3:])))
    np.testing.assert_allclose(np.asarray(r.vals[:3]), [6.001, 5.001, 4.001], rtol=1e-9)
    # n = 2 (dense, capacity clipped to n)
    small = tracker_init(lambda v: v[0] ** 2 + 3 * v[1] ** 2 + v[0] * v[1], jnp.zeros(2), k_max=8)
    top = np.linalg.eigvalsh([[2.0, 1.0], [1.0, 6.0]])[-1]
    np.testing.assert_allclose(np.asarray(small.vals), [top, np.nan], rtol=1e-14)  # K = min(k_max, n)
    with pytest.raises(ValueError, match="w"):
        tracker_init(loss(1.0), jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="k0"):
        tracker_init(loss(1.0), w, k0=9, k_max=4)


def test_tracker_reports_non_convergence(x64):
    loss, _, w = controlled_quadratic(450, seed=6)
    st = tracker_init(loss(1.0), w, k_max=3, dense=False)
    st = tracker_update(st, loss(1.2), w, threshold=None, tol=1e-14, max_iters=2, dense=False)
    assert not bool(st.converged) and int(st.iterations) == 2


# ----------------------------------------------------------------------------- SDCP helpers
def sdcp_instance(rng, k, eta=0.1, m=None, zero_dirs=(), with_g=False):
    """Random N_ij = N_ji ∈ R^m and g: A_ij = η⟨N_ij, g⟩, B in packed coordinates as in derive."""
    pairs = list(itertools.combinations_with_replacement(range(k), 2))
    m = m or len(pairs) + 3
    N = np.zeros((k, k, m))
    for i, j in pairs:
        N[i, j] = N[j, i] = rng.normal(size=m)
    for i in zero_dirs:
        N[i, :] = N[:, i] = 0
    g = rng.normal(size=m)
    A = eta * np.einsum("ijm,m->ij", N, g)
    B = np.array([[eta / 2 * N[i, j] @ N[a, b] * (1 if a == b else 2) for a, b in pairs] for i, j in pairs])
    return (A, B, N, eta, g) if with_g else (A, B, N, eta)


def q_full(A, N, eta, X):
    """A + B[X] from the vectors themselves: (η/2) Σ_kl X_kl ⟨N_ij, N_kl⟩ over all (k, l)."""
    return A + eta / 2 * np.einsum("ijm,klm,kl->ij", N, N, X)


def sdcp_violations(A, N, eta, X):
    """Relative violations of X ⪰ 0, Q ⪰ 0, ⟨X, Q⟩ = 0, recomputed in NumPy."""
    X = np.asarray(X, np.float64)
    Q = q_full(A, N, eta, X)
    scale = np.linalg.norm(A) + np.linalg.norm(Q - A) + 1e-300
    return (max(0, -np.linalg.eigvalsh(X)[0]) / max(np.linalg.norm(X), 1e-300),
            max(0, -np.linalg.eigvalsh(Q)[0]) / scale,
            abs(np.sum(X * Q)) / (np.linalg.norm(X) * scale + 1e-300))


def bm_oracle(A, N, eta, seed=0):
    """min over Z of f(ZZᵀ) = ½⟨X, B[X]⟩ + ⟨A, X⟩ by BFGS (Burer–Monteiro, Z square)."""
    k = A.shape[0]

    def f(z):
        Z = z.reshape(k, k)
        X = Z @ Z.T
        Q = q_full(A, N, eta, X)
        return 0.5 * np.sum(X * (Q - A)) + np.sum(A * X), (2 * Q @ Z).ravel()

    best = None
    for s in range(3):
        z0 = np.random.default_rng(seed + s).normal(size=k * k)
        res = scipy.optimize.minimize(f, z0, jac=True, method="BFGS", options={"gtol": 1e-12, "maxiter": 5000})
        if best is None or res.fun < best.fun:
            best = res
    Z = best.x.reshape(k, k)
    return Z @ Z.T, best.fun


def objective(A, N, eta, X):
    return 0.5 * np.sum(X * (q_full(A, N, eta, X) - A)) + np.sum(A * X)


_solve = jax.jit(solve_sdcp)


# ----------------------------------------------------------------------------- SDCP tests
def test_sdcp_packed_B_matches_derive_central_flow_multi(x64):
    """A and B built here equal derive's formulas evaluated on the same vectors (k = 2, 3)."""
    import derive
    from derive.ops import Dot

    rng = np.random.default_rng(0)
    for k in (2, 3):
        A, B, N, eta, g = sdcp_instance(rng, k, with_g=True)
        m = derive.central_flow_multi(k)
        vecs = {str(derive.ops.DL()): g}
        for i, j in itertools.product(range(k), repeat=2):
            vecs[str(m.Nij[i, j])] = N[i, j]

        def num(expr, vecs=vecs, eta=eta):
            subs = {d: sp.Float(float(vecs[str(d.args[0])] @ vecs[str(d.args[1])]), 30) for d in expr.atoms(Dot)}
            return float(expr.xreplace(subs).xreplace({derive.eta: sp.Float(eta, 30)}))

        np.testing.assert_allclose(np.vectorize(num, otypes=[float])(np.array(m.B.tolist(), dtype=object)), B,
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.vectorize(num, otypes=[float])(np.array(m.A.tolist(), dtype=object)), A,
                                   rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_sdcp_random_instances_satisfy_the_conditions_and_match_bfgs(x64, k):
    rng = np.random.default_rng(10 + k)
    worst = 0.0
    for trial in range(6):
        A, B, N, eta = sdcp_instance(rng, k)
        X, info = _solve(jnp.asarray(A), jnp.asarray(B))
        assert bool(info.converged), info
        X = np.asarray(X)
        worst = max(worst, *sdcp_violations(A, N, eta, X))
        np.testing.assert_allclose(X, X.T, atol=1e-14)
        if trial < 3:   # B ≻ 0 (m ≥ p generic vectors): unique solution
            Xo, fo = bm_oracle(A, N, eta, seed=trial)
            assert objective(A, N, eta, X) <= fo + 1e-10 * (1 + abs(fo))
            np.testing.assert_allclose(X, Xo, atol=1e-5 * (1 + np.abs(Xo).max()))
    assert worst <= 1e-6, worst


@pytest.mark.parametrize("k,rank", [(2, 1), (3, 0), (3, 1), (3, 2), (4, 2), (4, 4)])
def test_sdcp_recovers_planted_solutions(x64, k, rank):
    """X* = V Y Vᵀ of the given rank and S* ⪰ 0 with S* X* = 0; A = S* − B[X*]: the unique solution is X*."""
    rng = np.random.default_rng(100 * k + rank)
    _, B, N, eta = sdcp_instance(rng, k)
    Qm, _ = np.linalg.qr(rng.normal(size=(k, k)))
    V, Vp = Qm[:, :rank], Qm[:, rank:]
    Y = rng.normal(size=(rank, rank))
    Xs = V @ (Y @ Y.T + 0.5 * np.eye(rank)) @ V.T
    T = rng.normal(size=(k - rank, k - rank))
    Ss = Vp @ (T @ T.T + 0.5 * np.eye(k - rank)) @ Vp.T
    A = Ss - (q_full(np.zeros((k, k)), N, eta, Xs))
    X, info = _solve(jnp.asarray(A), jnp.asarray(B), tol=1e-12)
    assert bool(info.converged)
    # error in X ≲ residual × cond(B) (cond ~ 10³ here)
    np.testing.assert_allclose(np.asarray(X), Xs, atol=1e-8 * (1 + np.abs(Xs).max()))


def test_sdcp_k1_closed_form_and_sigma2(x64):
    rng = np.random.default_rng(1)
    for _ in range(5):
        n_vec, g, eta = rng.normal(size=7), rng.normal(size=7), 0.05
        a, b = eta * n_vec @ g, eta / 2 * n_vec @ n_vec
        sigma2 = max(0.0, 2 * (-g @ n_vec) / (n_vec @ n_vec))   # σ² = 2⟨−∇L, ∇S⟩/‖∇S‖², clipped
        assert float(sigma2_closed_form(a, b)) == pytest.approx(sigma2, rel=1e-13, abs=1e-300)
        X, info = _solve(jnp.array([[a]]), jnp.array([[b]]))
        assert float(X[0, 0]) == pytest.approx(sigma2, rel=1e-13, abs=1e-300) and int(info.iterations) <= 2
    assert float(sigma2_closed_form(1.0, 0.0)) == 0.0 and float(sigma2_closed_form(-1.0, 0.0)) == np.inf


def test_sdcp_mask_keeps_inactive_directions_exactly_zero(x64):
    rng = np.random.default_rng(5)
    K = 4
    A, B, N, eta = sdcp_instance(rng, K)
    A = A - 3 * np.eye(K)                    # every direction wants X > 0 when active
    mask = np.array([True, False, True, False])
    X, info = _solve(jnp.asarray(A), jnp.asarray(B), jnp.asarray(mask))
    X = np.asarray(X)
    assert bool(info.converged)
    assert np.all(X[~mask, :] == 0) and np.all(X[:, ~mask] == 0)
    assert np.abs(X[np.ix_(mask, mask)]).max() > 0.1
    # the active block solves the reduced problem built from the active vectors only
    act = np.flatnonzero(mask)
    Ar, Nr = A[np.ix_(act, act)], N[np.ix_(act, act)]
    assert max(sdcp_violations(Ar, Nr, eta, X[np.ix_(act, act)])) <= 1e-7
    pairs = list(itertools.combinations_with_replacement(range(K), 2))
    keep = [p for p, (i, j) in enumerate(pairs) if mask[i] and mask[j]]
    Xr, _ = _solve(jnp.asarray(Ar), jnp.asarray(B[np.ix_(keep, keep)]))
    np.testing.assert_allclose(X[np.ix_(act, act)], np.asarray(Xr), atol=1e-10)


def test_sdcp_psd_A_gives_zero_and_singular_B_is_fine(x64):
    rng = np.random.default_rng(6)
    _, B, N, eta = sdcp_instance(rng, 3)
    M = rng.normal(size=(3, 3))
    X, info = _solve(jnp.asarray(M @ M.T), jnp.asarray(B))
    assert np.all(np.asarray(X) == 0) and bool(info.converged) and int(info.iterations) == 0  # X = 0 start is optimal
    # a direction with N_0j = 0 (B singular, A's row 0 zero as well): X stays 0 there
    A, B, N, eta = sdcp_instance(rng, 3, zero_dirs=(0,))
    assert np.linalg.matrix_rank(B) < B.shape[0]
    X, info = _solve(jnp.asarray(A - np.diag([0, 2.0, 2.0])), jnp.asarray(B))
    assert bool(info.converged) and np.all(np.asarray(X)[0] == 0)
    assert max(sdcp_violations(A - np.diag([0, 2.0, 2.0]), N, eta, np.asarray(X))) <= 1e-6
    # fewer vectors than unknowns (rank-deficient Gram matrix, non-unique X): conditions still hold
    A, B, N, eta = sdcp_instance(rng, 3, m=3)
    X, info = _solve(jnp.asarray(A - np.eye(3)), jnp.asarray(B))
    assert bool(info.converged) and max(sdcp_violations(A - np.eye(3), N, eta, np.asarray(X))) <= 1e-6
    # B = 0: A ⪰ 0 → X = 0; A not ⪰ 0 → no solution, reported, finite
    X, info = _solve(jnp.eye(2), jnp.zeros((3, 3)))
    assert np.all(np.asarray(X) == 0) and bool(info.converged)
    X, info = solve_sdcp(-jnp.eye(2), jnp.zeros((3, 3)), max_iters=50)
    assert not bool(info.converged) and bool(jnp.all(jnp.isfinite(X)))


def test_sdcp_jit_vmap_batch_and_float32(x64):
    rng = np.random.default_rng(8)
    probs = [sdcp_instance(rng, 3) for _ in range(6)]
    As = jnp.asarray(np.stack([p[0] for p in probs]))
    Bs = jnp.asarray(np.stack([p[1] for p in probs]))
    Xb, info = jax.jit(jax.vmap(solve_sdcp))(As, Bs)
    assert bool(jnp.all(info.converged))
    for i, (A, B, _, _) in enumerate(probs):
        np.testing.assert_allclose(np.asarray(Xb[i]), np.asarray(_solve(jnp.asarray(A), jnp.asarray(B))[0]),
                                   atol=1e-8)
    A, B, N, eta = probs[0]
    X32, info32 = solve_sdcp(jnp.asarray(A, jnp.float32), jnp.asarray(B, jnp.float32))
    assert X32.dtype == jnp.float32 and info32.dual.dtype == jnp.float32
    X64 = np.asarray(_solve(jnp.asarray(A), jnp.asarray(B))[0])
    np.testing.assert_allclose(np.asarray(X32, np.float64), X64, atol=1e-4 * (1 + np.abs(X64).max()))
    assert max(sdcp_violations(A, N, eta, np.asarray(X32, np.float64))) <= 1e-4


def test_sdcp_input_errors():
    with pytest.raises(ValueError, match="B"):
        solve_sdcp(jnp.eye(2), jnp.eye(2))
    with pytest.raises(ValueError, match="A"):
        solve_sdcp(jnp.ones((2, 3)), jnp.eye(3))
    with pytest.raises(ValueError, match="mask"):
        solve_sdcp(jnp.eye(2), jnp.eye(3), jnp.ones(3, bool))
    with pytest.raises(TypeError, match="A"):
        solve_sdcp(jnp.eye(2, dtype=jnp.int32), jnp.eye(3))

