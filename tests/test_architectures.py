"""The paper's architectures (ResNet, ViT, sorting Transformer) and the generated sorting data.

The central flow differentiates the loss three times (∇S = D³L[u, u]) and tracks eigenvalues with
Hessian-vector products; through LayerNorm, attention and softmax both are checked in float64 on tiny
instances against nested forward mode (``jax.jacfwd`` of ``jax.jvp`` of ``jax.jvp`` for D³L[u, u],
``jacfwd(jacfwd)`` for the dense Hessian), which shares nothing with the operator programs the flows
run (reverse mode).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import derive
from derive.errors import DeriveInputError
from numeric.architectures import resnet, transformer, vit
from numeric.data import load_dataset, sort_task
from numeric.models import make_loss, make_model
from numeric.problem import from_jax

TINY = {
    "vit": lambda: (vit((2, 2, 1), patch=1, dim=2, depth=1, heads=2, hidden=2, out_dim=2), (5, 4), (5, 2)),
    "transformer": lambda: (transformer(length=3, vocab=3, dim=2, depth=1, heads=2, hidden=2), None, None),
    "resnet": lambda: (resnet((4, 4, 1), channels=(1, 1), out_dim=3), (4, 16), (4, 3)),
}


def _tiny_problem(name, loss):
    model, xshape, yshape = TINY[name]()
    rng = np.random.default_rng(7)
    if name == "transformer":
        ds = sort_task(n=4, classes=3, length=3, seed=3)
        X, Y = jnp.asarray(ds.X, jnp.float64), jnp.asarray(ds.Y, jnp.float64)
    else:
        X = jnp.asarray(rng.normal(size=xshape))
        Y = jnp.asarray(np.eye(yshape[1])[rng.integers(0, yshape[1], yshape[0])])
    params = model.init(jax.random.PRNGKey(1), jnp.float64)
    # move off the symmetric start (zero biases, unit LayerNorm scales) so every term is exercised
    params = jax.tree_util.tree_map(lambda p: p + 0.3 * jnp.asarray(rng.normal(size=p.shape)), params)
    return from_jax(make_loss(model, X, Y, loss), params, dense_limit=0)


@pytest.mark.parametrize("name, loss", [("vit", "ce"), ("transformer", "ce"), pytest.param("resnet", "mse",
                                                                                         marks=pytest.mark.long)])
def test_third_derivatives_and_hvps_match_nested_jacfwd(x64, name, loss):
    """ViT and Transformer with cross-entropy: LayerNorm, attention's softmax and the loss's softmax
    (the ResNet has none of them; its convolutions are the CNN's, checked in test_models)."""
    problem = _tiny_problem(name, loss)
    w = jnp.asarray(problem.init)
    n = w.shape[0]
    assert 40 <= n <= 150, n
    rng = np.random.default_rng(11)
    u, v = (jnp.asarray(rng.normal(size=n)) for _ in range(2))
    hess = jax.jit(jax.jacfwd(jax.jacfwd(problem.loss)))
    # ∇⟨u, H u⟩ = D³L[u, u]: forward mode only (jacfwd of a jvp of a jvp), no reverse pass anywhere
    d2 = lambda x: jax.jvp(lambda y: jax.jvp(problem.loss, (y,), (u,))[1], (x,), (u,))[1]  # noqa: E731
    third = jax.jit(jax.jacfwd(d2))(w)
    prog = derive.compile_operator(derive.DL(derive.Vec("u"), derive.Vec("u")), problem.loss, name="D3L[u,u]")
    got = jax.jit(lambda w, u: prog(w, eta=0.0, u=u))(w, u)
    scale = 1.0 + float(jnp.max(jnp.abs(third)))
    np.testing.assert_allclose(np.asarray(got), np.asarray(third), rtol=1e-9, atol=1e-10 * scale)
    from numeric.curvature import hvp_fn
    hv = jax.jit(hvp_fn(problem.loss, "vmap"))(w, jnp.stack([u, v], axis=1))
    np.testing.assert_allclose(np.asarray(hv), np.asarray(hess(w) @ jnp.stack([u, v], axis=1)), rtol=1e-9, atol=1e-10)


def test_sorting_data_is_the_sorted_sequence_one_hot_and_reproducible():
    ds = sort_task(n=50, classes=5, length=4, seed=2)
    assert ds.X.shape == (50, 4) and ds.Y.shape == (50, 20)
    for x, y in zip(ds.X, ds.Y):
        want = sorted(int(t) for t in x)
        assert [int(np.argmax(row)) for row in y.reshape(4, 5)] == want
        assert y.sum() == 4
    again = sort_task(n=50, classes=5, length=4, seed=2)
    assert np.array_equal(again.X, ds.X) and not np.array_equal(sort_task(n=50, classes=5, length=4, seed=3).X, ds.X)


def test_the_transformer_loss_averages_over_positions():
    """MSE of the sorting Transformer = mean over examples and positions of ½‖f − y‖² per position."""
    ds = load_dataset("sort", n=7, classes=4)
    model = make_model("transformer", ds.dim, ds.Y.shape[1])
    params = model.init(jax.random.PRNGKey(0))
    logits = np.asarray(model.apply(params, jnp.asarray(ds.X)), np.float64).reshape(7, 6, 4)
    want = 0.5 * np.mean(np.sum((logits - ds.Y.reshape(7, 6, 4)) ** 2, axis=-1))
    got = float(make_loss(model, jnp.asarray(ds.X), jnp.asarray(ds.Y), "mse")(params))
    assert got == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("build, word", [
    (lambda: vit((8, 8, 1), dim=6, heads=4), "heads"),
    (lambda: vit((8, 8, 1), patch=3), "patch"),
    (lambda: transformer(dim=5, heads=2), "heads"),
    (lambda: resnet((2, 2, 1), channels=(4, 4, 4)), "in_shape"),
    (lambda: make_model("transformer", 64, 10), "--data"),
])
def test_bad_architecture_arguments_are_one_line_errors_naming_them(build, word):
    with pytest.raises(DeriveInputError) as err:
        build()
    assert str(err.value).startswith(word) and "\n" not in str(err.value)


@pytest.mark.parametrize("model", ["resnet", "vit", "transformer"])
def test_compare_builds_each_architecture_with_its_defaults(model):
    """``gdflows compare --model X``: the model's defaults give a problem whose loss is finite at the start
    (the Transformer on generated sorting data, with cross-entropy)."""
    from numeric.compare import build_problem, config_from

    cfg = config_from({"model": model}, {"model"})
    problem = build_problem(cfg)
    assert np.isfinite(float(problem.loss(jnp.asarray(problem.init, jnp.float32))))
    assert model in problem.description and (cfg.data == "sort") == (model == "transformer")
    given = config_from({"model": model, "lr": 0.01, "steps": 7}, {"model", "lr", "steps"})
    assert (given.lr, given.steps) == (0.01, 7)        # what is given wins over the model's defaults
