"""Operator programs for JAX losses over pytrees, against slow dense float64 oracles."""
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import derive
from derive import central_flow, compile_operator, modified_loss, modified_vector_field

x, y = sp.symbols("x y", real=True)


def mlp_loss(params, X, Y):
    h = jnp.tanh(X @ params["W1"] + params["b1"])
    return 0.5 * jnp.mean(jnp.sum((h @ params["W2"] - Y) ** 2, axis=1))


def small_mlp(dtype=jnp.float64, n_in=3, width=4, n_out=2, n=7, seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 5)
    params = {"W1": jax.random.normal(k[0], (n_in, width), dtype) / 2,
              "b1": jax.random.normal(k[1], (width,), dtype) / 5,
              "W2": jax.random.normal(k[2], (width, n_out), dtype) / 2}
    X = jax.random.normal(k[3], (n, n_in), dtype)
    Y = jax.random.normal(k[4], (n, n_out), dtype)
    return params, (lambda p: mlp_loss(p, X, Y))


def dense_oracle(loss, params):
    """Flat g, H and T = D³L via nested jacfwd: obviously correct, O(n³)."""
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    f = lambda w: loss(unravel(w))
    g, H, T = jax.jit(lambda w: (jax.grad(f)(w), jax.hessian(f)(w), jax.jacfwd(jax.hessian(f))(w)))(flat)
    return flat, unravel, g, H, T


def test_modified_field_order2_matches_dense_oracle(x64):
    params, loss = small_mlp()
    eta = 0.3
    flat, unravel, g, H, T = dense_oracle(loss, params)
    Tgg = jnp.einsum("ijk,j,k->i", T, g, g)
    expected = -g - eta / 2 * H @ g - eta**2 * (H @ H @ g / 3 + Tgg / 12)
    got = modified_vector_field(2).compile(loss)(params, eta=eta)
    got_flat = jax.flatten_util.ravel_pytree(got)[0]
    np.testing.assert_allclose(got_flat, expected, rtol=1e-10, atol=1e-12)
    assert set(got) == set(params)


def test_sigma2_and_modified_loss_match_dense_oracle(x64):
    params, loss = small_mlp(seed=1)
    flat, unravel, g, H, T = dense_oracle(loss, params)
    evals, evecs = jnp.linalg.eigh(H)
    u = evecs[:, -1]
    gradS = jnp.einsum("ijk,j,k->i", T, u, u)
    cf = central_flow()
    got = cf.sigma2.compile(loss)(params, u=unravel(u))
    np.testing.assert_allclose(got, 2 * (-g @ gradS) / (gradS @ gradS), rtol=1e-10)
    vel = jax.flatten_util.ravel_pytree(cf.compile(loss)(params, eta=0.1, u=unravel(u)))[0]
    P = jnp.eye(len(g)) - jnp.outer(gradS, gradS) / (gradS @ gradS)
    np.testing.assert_allclose(vel, -0.1 * P @ g, rtol=1e-9, atol=1e-12)
    Leta = modified_loss(1).compile(loss)(params, eta=0.1)
    np.testing.assert_allclose(Leta, loss(params) + 0.1 / 4 * g @ g, rtol=1e-12)


def test_compiled_equals_generated_sympy_instantiation(x64):
    """The same formula through both back ends: autodiff program vs SymPy expressions."""
    L = sp.exp(x * y) / 3 + (x**2 - 1) ** 2 / 4 + sp.sin(y) * x
    field = modified_vector_field(3)
    sym = sp.lambdify((x, y), field.on(L, (x, y), eta=sp.Rational(1, 10)), "numpy")
    jl = lambda p: jnp.exp(p[0] * p[1]) / 3 + (p[0] ** 2 - 1) ** 2 / 4 + jnp.sin(p[1]) * p[0]
    prog = jax.jit(lambda w: field.compile(jl)(w, eta=0.1))
    for w in ([0.3, -0.7], [1.2, 0.4]):
        np.testing.assert_allclose(prog(jnp.array(w)), np.ravel(sym(*w)), rtol=1e-11)


def test_jit_vmap_and_pytrees(x64):
    params, loss = small_mlp(seed=2)
    prog = modified_vector_field(2).compile(loss)
    batched = {k: jnp.stack([v, 2 * v]) for k, v in params.items()}
    out = jax.jit(jax.vmap(lambda p: prog(p, eta=0.2)))(batched)
    one = prog({k: 2 * v for k, v in params.items()}, eta=0.2)
    for k in params:
        np.testing.assert_allclose(out[k][1], one[k], rtol=1e-12)


def test_million_parameter_network_runs_and_agrees_with_finite_differences(x64):
    """T[g, g] on a 10⁶-parameter MLP vs a central difference of Hessian-vector products."""
    params, loss = small_mlp(n_in=1000, width=1000, n_out=10, n=16, seed=3)
    n_params = sum(v.size for v in jax.tree_util.tree_leaves(params))
    assert n_params > 10**6
    tgg = derive.DL(derive.grad, derive.grad)
    prog = jax.jit(lambda p: compile_operator(tgg, loss)(p))
    got = jax.flatten_util.ravel_pytree(prog(params))[0]
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    f = lambda w: loss(unravel(w))
    g = jax.grad(f)(flat)
    hvp = lambda w: jax.jvp(jax.grad(f), (w,), (g,))[1]
    eps = 1e-4 / float(jnp.linalg.norm(g))
    fd = (hvp(flat + eps * g) - hvp(flat - eps * g)) / (2 * eps)
    assert float(jnp.linalg.norm(got - fd) / jnp.linalg.norm(fd)) < 1e-6


def test_float32_programs_stay_float32():
    params, loss = small_mlp(dtype=jnp.float32)
    out = modified_vector_field(1).compile(loss)(params, eta=0.1)
    assert all(v.dtype == jnp.float32 for v in jax.tree_util.tree_leaves(out))


def test_program_errors_name_the_argument():
    params, loss = small_mlp(dtype=jnp.float32)
    with pytest.raises(ValueError, match="eta"):
        modified_vector_field(1).compile(loss)(params)
    with pytest.raises(ValueError, match=r"needs \['u'\]"):
        central_flow().sigma2.compile(loss)(params)
    with pytest.raises(TypeError, match="loss_fn"):
        compile_operator(derive.grad, "not a function")
    with pytest.raises(ValueError, match="u: expected"):
        central_flow().sigma2.compile(loss)(params, u=jnp.ones(3))


def test_multi_output_program_for_the_k_eigenvalue_flow(x64):
    """A, B and the velocity basis of central_flow_multi(2) against the dense oracle."""
    params, loss = small_mlp(seed=4)
    flat, unravel, g, H, T = dense_oracle(loss, params)
    U = jnp.linalg.eigh(H)[1][:, -2:]
    m = derive.central_flow_multi(2)
    v0, basis = m.velocity_basis
    prog = compile_operator(list(m.A) + list(m.B) + [v0, *basis], loss)
    out = prog(params, eta=0.1, u1=unravel(U[:, 0]), u2=unravel(U[:, 1]))
    A = jnp.array(out[:4]).reshape(2, 2)
    B = jnp.array(out[4:13]).reshape(3, 3)
    N = {(i, j): jnp.einsum("ijk,j,k->i", T, U[:, a], U[:, b]) for a, i in enumerate((0, 1))
         for b, j in enumerate((0, 1))}
    np.testing.assert_allclose(A, 0.1 * jnp.array([[N[0, 0] @ g, N[0, 1] @ g], [N[1, 0] @ g, N[1, 1] @ g]]),
                               rtol=1e-10)
    packed = [(0, 0), (0, 1), (1, 1)]
    mult = [1, 2, 1]
    Bd = jnp.array([[0.05 * mult[c] * (N[packed[r]] @ N[packed[c]]) for c in range(3)] for r in range(3)])
    np.testing.assert_allclose(B, Bd, rtol=1e-10)
    X = jnp.array([[0.3, 0.1], [0.1, 0.2]])
    vel = jax.flatten_util.ravel_pytree(out[13])[0] + sum(
        X[i, j] * jax.flatten_util.ravel_pytree(v)[0] for (i, j), v in zip(packed, out[14:]))
    expected = -0.1 * (g + 0.5 * sum(X[i, j] * N[i, j] for i in range(2) for j in range(2)))
    np.testing.assert_allclose(vel, expected, rtol=1e-10)
