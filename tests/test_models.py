"""numeric.models: parameter counts, deterministic init, forward passes and losses against NumPy oracles."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from derive.errors import DeriveInputError
from numeric.models import (Model, cnn, count_params, cross_entropy_loss, make_loss, make_model, mlp,
                            mse_loss)
from numeric.problem import from_jax

from conftest import TOL_F32, TOL_F64

KEY = jax.random.PRNGKey(0)


def shapes(model, dtype=jnp.float32):
    """The parameter pytree as ShapeDtypeStructs (no random numbers drawn, nothing compiled)."""
    return jax.eval_shape(lambda k: model.init(k, dtype), KEY)


# ---------- NumPy oracles (float64, written independently of the JAX code) ----------

def np_gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def np_gelu_erf(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def np_mlp(params, X, act):
    h = np.asarray(X, dtype=np.float64)
    for i, layer in enumerate(params):
        W, b = np.asarray(layer["w"]), np.asarray(layer["b"])
        h = np.array([[sum(h[n, a] * W[a, o] for a in range(W.shape[0])) + b[o] for o in range(W.shape[1])]
                      for n in range(h.shape[0])])
        if i < len(params) - 1:
            h = act(h)
    return h


def np_cnn(params, X, shape, act):
    H, W, C = shape
    z = np.asarray(X, dtype=np.float64).reshape(len(X), C, H, W).transpose(0, 2, 3, 1)
    for layer in params[:-1]:
        K, b = np.asarray(layer["w"]), np.asarray(layer["b"])
        n, h, w, cin = z.shape
        pad = np.zeros((n, h + 2, w + 2, cin))
        pad[:, 1:-1, 1:-1, :] = z
        out = np.zeros((n, h, w, K.shape[3]))
        for m in range(n):
            for i in range(h):
                for j in range(w):
                    for o in range(K.shape[3]):
                        s = b[o]
                        for di in range(3):
                            for dj in range(3):
                                for c in range(cin):
                                    s += pad[m, i + di, j + dj, c] * K[di, dj, c, o]
                        out[m, i, j, o] = s
        out = act(out)
        pooled = np.zeros((n, h // 2, w // 2, out.shape[3]))
        for i in range(h // 2):
            for j in range(w // 2):
                pooled[:, i, j, :] = out[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2, :].mean(axis=(1, 2))
        z = pooled
    flat = z.reshape(len(z), -1)
    return flat @ np.asarray(params[-1]["w"]) + np.asarray(params[-1]["b"])


# ---------- parameter counts ----------

def test_reference_mlp_parameter_count():
    m = mlp(3072, (256, 256), 4, "gelu")
    assert count_params(shapes(m)) == 3072 * 256 + 256 + 256 * 256 + 256 + 256 * 4 + 4 == 853_508
    assert isinstance(m, Model) and m.name == "mlp" and "3072-256-256-4" in m.description


def test_cnn_parameter_counts_by_hand():
    # 6x6x2, one stage of 3 channels: conv 3*3*2*3 + 3 = 57; pool to 3x3x3 = 27; dense 27*4 + 4 = 112.
    assert count_params(shapes(cnn((6, 6, 2), (3,), 4))) == 57 + 112
    # CIFAR default: conv 3*3*3*16+16 = 448, conv 3*3*16*32+32 = 4640, dense (8*8*32)*4+4 = 8196.
    assert count_params(shapes(cnn())) == 448 + 4640 + 8196


# ---------- init ----------

def test_init_deterministic_and_seeded():
    m = mlp(5, (4,), 3)
    a, b, c = m.init(jax.random.PRNGKey(1)), m.init(jax.random.PRNGKey(1)), m.init(jax.random.PRNGKey(2))
    fa, fb, fc = (np.asarray(ravel_pytree(p)[0]) for p in (a, b, c))
    np.testing.assert_array_equal(fa, fb)
    assert not np.allclose(fa, fc)
    assert all(np.all(np.asarray(layer["b"]) == 0) for layer in a)


def test_init_fan_in_scaling():
    p = mlp(2000, (500,), 2).init(KEY)
    std = float(np.std(np.asarray(p[0]["w"])))
    assert abs(std * math.sqrt(2000) - 1.0) < 0.02
    k = cnn((8, 8, 16), (400,), 2).init(KEY)[0]["w"]
    assert abs(float(np.std(np.asarray(k))) * math.sqrt(9 * 16) - 1.0) < 0.02


def test_dtype_default_float32_and_float64_option(x64):
    for m in (mlp(6, (3,), 2), cnn((4, 4, 1), (2,), 2)):
        assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(shapes(m))} == {jnp.dtype("float32")}
        p64 = m.init(KEY, jnp.float64)
        assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(p64)} == {jnp.dtype("float64")}
        assert m.apply(p64, jnp.ones((2, 6 if m.name == "mlp" else 16), jnp.float64)).dtype == jnp.float64


# ---------- forward passes ----------

@pytest.mark.parametrize("activation, oracle", [("tanh", np.tanh), ("gelu", np_gelu_tanh),
                                                ("relu", lambda x: np.maximum(x, 0.0))])
def test_mlp_forward_matches_numpy(x64, activation, oracle):
    m = mlp(5, (4, 3), 2, activation)
    p = m.init(jax.random.PRNGKey(3), jnp.float64)
    X = np.random.default_rng(0).normal(size=(7, 5)) * 2
    out = np.asarray(m.apply(p, jnp.asarray(X)))
    np.testing.assert_allclose(out, np_mlp(p, X, oracle), rtol=0, atol=TOL_F64)


def test_gelu_is_the_tanh_approximation(x64):
    # The erf form differs by ~1e-4 on these points, so the match above pins the variant.
    x = np.linspace(-4, 4, 41)
    m = mlp(1, (), 1, "gelu")
    np.testing.assert_allclose(np.asarray(jax.nn.gelu(jnp.asarray(x))), np_gelu_tanh(x), atol=TOL_F64)
    assert np.max(np.abs(np_gelu_tanh(x) - np_gelu_erf(x))) > 1e-5
    assert m.description.endswith("gelu")


@pytest.mark.parametrize("activation, oracle", [("gelu", np_gelu_tanh), ("tanh", np.tanh)])
def test_cnn_forward_matches_loop_convolution(x64, activation, oracle):
    shape = (6, 6, 2)
    m = cnn(shape, (3, 2), 4, activation)  # 6x6 -> 3x3 -> 1x1 (floor pooling on the odd size)
    p = m.init(jax.random.PRNGKey(4), jnp.float64)
    X = np.random.default_rng(1).normal(size=(2, 72))
    np.testing.assert_allclose(np.asarray(m.apply(p, jnp.asarray(X))), np_cnn(p, X, shape, oracle),
                               rtol=0, atol=TOL_F64)


def test_cnn_gradient_and_hessian_match_a_lax_convolution_network(x64):
    """The CNN's convolution is one matrix product over patches; XLA's own convolution (written
    here independently) must give the same loss, gradient and Hessian-vector products."""
    shape, chans = (6, 6, 2), (3, 2)
    m = cnn(shape, chans, 3, "tanh")
    p = m.init(jax.random.PRNGKey(5), jnp.float64)
    rng = np.random.default_rng(3)
    X, Y = jnp.asarray(rng.normal(size=(4, 72))), jnp.asarray(rng.normal(size=(4, 3)))

    def lax_apply(params, X):
        z = jnp.transpose(jnp.reshape(X, (X.shape[0], 2, 6, 6)), (0, 2, 3, 1))
        for layer in params[:-1]:
            z = jax.lax.conv_general_dilated(z, layer["w"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            z = jnp.tanh(z + layer["b"])
            n, h, w, c = z.shape
            z = z[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
        return z.reshape(z.shape[0], -1) @ params[-1]["w"] + params[-1]["b"]

    ours, theirs = (from_jax(make_loss(Model("cnn", m.init, f), X, Y), p, dense_limit=0)
                    for f in (m.apply, lax_apply))
    w = jnp.asarray(ours.init)
    v = jnp.asarray(rng.normal(size=ours.n))
    assert float(ours.loss(w)) == pytest.approx(float(theirs.loss(w)), rel=1e-13)
    np.testing.assert_allclose(np.asarray(ours.grad(w)), np.asarray(theirs.grad(w)), rtol=0, atol=TOL_F64)
    hv = [np.asarray(jax.jvp(pr.grad, (w,), (v,))[1]) for pr in (ours, theirs)]
    np.testing.assert_allclose(hv[0], hv[1], rtol=0, atol=TOL_F64)
    assert m.hvp_columns == "map" and mlp(4, (3,), 2).hvp_columns == "vmap"


def test_cnn_reads_channel_planes():
    # One bright pixel in the G plane at (row 1, col 2) of a 4x4x3 image lands at NHWC [1, 2, 1].
    X = np.zeros((1, 48), np.float32)
    X[0, 1 * 16 + 1 * 4 + 2] = 1.0
    z = jnp.transpose(jnp.reshape(X, (1, 3, 4, 4)), (0, 2, 3, 1))
    assert float(z[0, 1, 2, 1]) == 1.0
    m = cnn((4, 4, 3), (2,), 2, "relu")
    p = m.init(KEY)
    np.testing.assert_allclose(np.asarray(m.apply(p, X)), np_cnn(p, X, (4, 4, 3), lambda x: np.maximum(x, 0)),
                               atol=TOL_F32)


def test_float32_forward_close_to_float64(x64):
    m = mlp(20, (16,), 3)
    p64 = m.init(KEY, jnp.float64)
    p32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), p64)
    X = np.random.default_rng(2).normal(size=(5, 20))
    np.testing.assert_allclose(np.asarray(m.apply(p32, jnp.asarray(X, jnp.float32))),
                               np.asarray(m.apply(p64, jnp.asarray(X))), atol=TOL_F32)


# ---------- losses ----------

def test_losses_match_numpy(x64):
    rng = np.random.default_rng(3)
    f = rng.normal(size=(6, 4)) * 3
    labels = rng.integers(0, 4, size=6)
    Y = np.eye(4)[labels]
    mse = np.mean([0.5 * np.sum((f[i] - Y[i]) ** 2) for i in range(6)])
    ce = np.mean([-math.log(math.exp(f[i, labels[i]]) / sum(math.exp(v) for v in f[i])) for i in range(6)])
    for target in (Y, labels):
        assert abs(float(mse_loss(jnp.asarray(f), jnp.asarray(target))) - mse) < TOL_F64
        assert abs(float(cross_entropy_loss(jnp.asarray(f), jnp.asarray(target))) - ce) < TOL_F64


def test_cross_entropy_finite_for_huge_logits():
    f = jnp.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]], jnp.float32)
    Y = jnp.eye(3)[jnp.array([1, 2])]
    val = float(cross_entropy_loss(f, Y))
    # Row 1: lse = 1e4, target 0 -> 1e4; row 2: lse = 1e4 + log 2, target 1e4 -> log 2.
    assert math.isfinite(val) and abs(val - (1e4 + math.log(2)) / 2) < 1e-2
    assert np.all(np.isfinite(np.asarray(jax.grad(lambda z: cross_entropy_loss(z, Y))(f))))


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_make_loss_gradient_matches_finite_differences(x64, loss):
    m = mlp(3, (4,), 2, "tanh")
    p = m.init(jax.random.PRNGKey(5), jnp.float64)
    rng = np.random.default_rng(4)
    X, labels = rng.normal(size=(5, 3)), rng.integers(0, 2, size=5)
    L = make_loss(m, X, np.eye(2)[labels], loss)
    w, unravel = ravel_pytree(p)
    flat = jax.jit(lambda v: L(unravel(v)))
    g = np.asarray(jax.grad(flat)(w))
    h = 1e-5
    fd = np.array([(float(flat(w + h * e)) - float(flat(w - h * e))) / (2 * h)
                   for e in np.eye(w.size)])
    assert np.ndim(L(p)) == 0
    np.testing.assert_allclose(g, fd, rtol=0, atol=1e-8)


def test_make_loss_builds_a_problem(x64):
    m = make_model("mlp", 3, 2, widths=(4,))
    X = np.random.default_rng(5).normal(size=(4, 3))
    prob = from_jax(make_loss(m, X, np.array([0, 1, 1, 0])), m.init(KEY, jnp.float64), name="tiny")
    assert prob.n == 3 * 4 + 4 + 4 * 2 + 2
    assert np.isfinite(float(prob.loss(jnp.asarray(prob.init))))


# ---------- make_model and errors ----------

def test_make_model_infers_cifar_shape():
    m = make_model("cnn", 3072, 4)
    assert m.name == "cnn" and "32x32x3" in m.description
    assert make_model("cnn", 36, 2, channels=(2,)).description.startswith("cnn 6x6x1")
    out = jax.eval_shape(m.apply, shapes(m), jax.ShapeDtypeStruct((2, 3072), jnp.float32))
    assert out.shape == (2, 4) and out.dtype == jnp.float32


def test_errors_name_the_argument():
    with pytest.raises(DeriveInputError,
                       match=r"^model: unknown value 'x'; expected one of \['cnn', 'mlp', 'resnet', 'transformer', 'vit'\]$"):
        make_model("x", 10, 2)
    with pytest.raises(DeriveInputError, match=r"^--loss-fn: unknown value 'l1'"):
        make_loss(mlp(2, (2,), 2), np.zeros((1, 2)), np.zeros(1, int), "l1")
    with pytest.raises(DeriveInputError, match="^activation: "):
        mlp(2, activation="sigmoid")
    with pytest.raises(DeriveInputError, match="^in_dim: "):
        mlp(0)
    with pytest.raises(DeriveInputError, match="^in_shape: "):
        make_model("cnn", 10, 2)
    with pytest.raises(DeriveInputError, match="^in_shape: "):
        make_model("cnn", 48, 2, in_shape=(4, 4, 2))
    with pytest.raises(DeriveInputError, match="^in_shape: "):
        cnn((2, 2, 1), (4, 4))
    with pytest.raises(DeriveInputError, match="^X: "):
        make_loss(mlp(2, (2,), 2), np.zeros(2), np.zeros(2, int))
    with pytest.raises(DeriveInputError, match="^Y: "):
        make_loss(mlp(2, (2,), 2), np.zeros((3, 2)), np.zeros(2, int))


def test_ravel_columns_round_trips_and_gives_the_pytree_gradient():
    """from_jax's flattening: matrices column-major, an isometry, and ∇ of the flat loss = flattened ∇ of the tree."""
    from numeric.problem import from_jax, ravel_columns

    model = mlp(5, (4, 3), 2, activation="tanh")
    params = model.init(KEY)
    X = jax.random.normal(jax.random.PRNGKey(1), (7, 5))
    Y = jax.random.randint(jax.random.PRNGKey(2), (7,), 0, 2)
    loss = make_loss(model, X, Y, "mse")
    flat, unravel = ravel_columns(params)
    assert flat.shape == (count_params(params),)
    assert np.allclose(flat[4:24], np.asarray(params[0]["w"]).T.reshape(-1))   # leaves b, w: w by columns
    back = unravel(jnp.asarray(flat, jnp.float32))
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(params)):
        assert a.shape == b.shape and np.array_equal(np.asarray(a), np.asarray(b))
    assert np.isclose(np.linalg.norm(flat), np.linalg.norm(np.asarray(ravel_pytree(params)[0])), rtol=1e-6)
    p = from_jax(loss, params, dense_limit=0)
    w = jnp.asarray(p.init, jnp.float32)
    want = ravel_columns(jax.grad(loss)(params))[0]
    assert np.allclose(np.asarray(p.grad(w)), want, rtol=1e-5, atol=1e-7)
    assert np.isclose(float(p.loss(w)), float(loss(params)), rtol=1e-6)
