"""Your own model through ``numeric.compare``: a Flax (nnx) and an Equinox network on a digits subset.

Each run is checked against an oracle that shares no code with the driver: plain gradient descent
written on the library's own parameter pytree with ``jax.grad`` and ``jax.tree_util``, and the
sharpness as the top eigenvalue of the dense Hessian (``jax.hessian`` of the loss over
``ravel_pytree``'s flat vector, ``numpy.linalg.eigvalsh``).
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import numeric
from derive.errors import DeriveInputError
from numeric.data import load_dataset

STEPS = 12
DATA = load_dataset("digits", n=40, classes=10)
X, Y = jnp.asarray(DATA.X, jnp.float32), jnp.asarray(DATA.Y, jnp.float32)


def _mse(out):
    return 0.5 * jnp.mean(jnp.sum((out - Y) ** 2, axis=-1))


def _oracle(loss_fn, params, lr, steps):
    """Plain GD on the pytree: losses, and the dense-Hessian sharpness at every step."""
    flat, unravel = ravel_pytree(params)
    hess = jax.jit(jax.hessian(lambda w: loss_fn(unravel(w))))
    grad, loss = jax.jit(jax.grad(loss_fn)), jax.jit(loss_fn)
    losses, sharp = [], []
    for _ in range(steps + 1):
        losses.append(float(loss(params)))
        sharp.append(float(np.linalg.eigvalsh(np.asarray(hess(ravel_pytree(params)[0]), np.float64))[-1]))
        params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grad(params))
    return np.array(losses), np.array(sharp)


def _check_run(summary, out, loss_fn, params, lr, flows):
    from numeric.results import read_results, read_summary, to_jsonable

    assert to_jsonable(summary) == read_summary(out / "summary.json") == json.loads((out / "summary.json").read_text())
    res = read_results(out / "results.h5")
    assert set(res) == set(flows) and res.attrs["status"] == "complete"
    assert summary["config"]["source"] == "python" and summary["n_params"] == ravel_pytree(params)[0].size
    figures = {"loss.png", "sharpness.png"} | ({"distance.png"} if len(flows) > 1 else set())
    assert figures <= {p.name for p in out.iterdir()}
    losses, sharp = _oracle(loss_fn, params, lr, STEPS)
    np.testing.assert_allclose(res["gd"]["loss"], losses, rtol=2e-4)
    np.testing.assert_allclose(res["gd"]["eigs"][:, 0], sharp, rtol=2e-3)
    peak = sharp.max() * lr / 2                                # largest sharpness as a fraction of 2/η
    assert abs(peak - 1) > 0.02                                # not a borderline case
    assert summary["eos"]["edge_reached"] == (peak > 1)
    if peak < 1:
        assert f"(largest {peak:.2f}·2/η)" in summary["eos"]["edge_message"]
    assert [c["name"] for c in summary["acceptance"]]          # the checks are there, applicable or not
    for name in flows:
        assert summary[name]["status"] == "ok" and np.isfinite(summary[name]["final_loss"])


def test_a_flax_nnx_model_goes_through_compare(tmp_path, no_x64):
    nnx = pytest.importorskip("flax.nnx")

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(64, 8, rngs=rngs)
            self.out = nnx.Linear(8, 10, rngs=rngs)

        def __call__(self, x):
            return self.out(jnp.tanh(self.hidden(x)))

    graphdef, params = nnx.split(MLP(nnx.Rngs(0)), nnx.Param)

    def loss_fn(p):
        return _mse(nnx.merge(graphdef, p)(X))

    lr, lines = 0.45, []                   # its sharpness starts at 1.05·2/η
    problem = numeric.from_jax(loss_fn, params, name="flax-mlp")
    summary = numeric.compare(problem, lr=lr, steps=STEPS, flows=("gd", "cf"), k_max=1, out=tmp_path / "run",
                              progress=False, echo=lines.append)
    _check_run(summary, tmp_path / "run", loss_fn, params, lr, ("gd", "cf"))
    assert any(line.startswith("process") for line in lines)


def test_an_equinox_model_goes_through_compare(tmp_path, no_x64):
    eqx = pytest.importorskip("equinox")

    model = eqx.nn.MLP(64, 10, 8, 1, activation=jnp.tanh, key=jax.random.PRNGKey(1))
    params, static = eqx.partition(model, eqx.is_array)

    def loss_fn(p):
        return _mse(jax.vmap(eqx.combine(p, static))(X))

    lr = 0.3                               # its sharpness stays below 0.4·2/η
    summary = numeric.compare(numeric.from_jax(loss_fn, params, name="equinox-mlp"), lr=lr, steps=STEPS,
                              flows=("gd",), k_max=1, out=tmp_path / "run", progress=False, echo=lambda *a: None)
    _check_run(summary, tmp_path / "run", loss_fn, params, lr, ("gd",))


def _tiny_problem():
    w0 = {"a": jnp.ones(3), "b": jnp.zeros(())}
    return numeric.from_jax(lambda p: jnp.sum((p["a"] - p["b"]) ** 2), w0, name="tiny")


@pytest.mark.parametrize("options, word", [
    ({}, "lr"),                                          # no default learning rate for your problem
    ({"lr": 0.1, "widths": (8,)}, "widths"),            # the built-in network's options do not apply
    ({"lr": 0.1, "model": "cnn"}, "model"),
    ({"lr": 0.1, "learning_rate": 0.1}, "learning_rate"),   # not an option at all
    ({"lr": 0.1, "flows": ("gd", "xx")}, "flows"),
    ({"lr": -1.0}, "lr"),
    ({"lr": 0.1, "float64": "the other precision"}, "float64"),
])
def test_bad_options_for_your_problem_are_one_line_errors_naming_them(tmp_path, options, word):
    if "float64" in options:   # the precision that is not JAX's now
        options = {**options, "float64": not jax.config.jax_enable_x64}
    with pytest.raises(DeriveInputError) as err:
        numeric.compare(_tiny_problem(), out=tmp_path / "x", progress=False, echo=lambda *a: None, **options)
    text = str(err.value)
    assert "\n" not in text and word in text.split(":")[0] + text, text
    assert not (tmp_path / "x").exists()          # nothing created


def test_not_a_problem_is_refused(tmp_path):
    with pytest.raises(DeriveInputError, match="^problem: expected a numeric.Problem"):
        numeric.compare(lambda p: p, lr=0.1, out=tmp_path / "x")
