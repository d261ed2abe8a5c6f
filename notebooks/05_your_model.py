# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 — Your own model: does the central flow describe *your* network?
#
# `numeric.compare` is the main job (`gdflows compare`) as a Python call: give it a loss over any
# parameter pytree — here a Flax (nnx) network — and it runs gradient descent, gradient flow and
# the central flow from the same start, computes the edge-of-stability metrics and acceptance
# checks, writes `results.h5`, `summary.json` and the figures, and returns the summary.
#
# ```python
# problem = numeric.from_jax(loss_fn, params)           # loss_fn: params pytree -> scalar
# summary = numeric.compare(problem, lr=0.3, steps=400, flows=("gd", "gf", "cf"), out="runs/mine")
# ```
#
# Any other option of `gdflows compare` is a keyword (`optimizer="rmsprop"`, `k_max=`, `cf_substeps=`, …).
# With Equinox: `params, static = eqx.partition(model, eqx.is_array)` and
# `loss_fn = lambda p: loss(eqx.combine(p, static))`.
#
# Modes: `GDFLOWS_NOTEBOOK_QUICK=1` (set by the test suite) trains 40 digits for 10 steps by GD and the
# central flow (it checks that everything runs; such a short run stays below the edge and says so);
# otherwise 1000 digits for 400 steps at η = 0.3, with gradient flow too (about a minute on 2 cores).
# Figure: `05a_sharpness.png`.

# %%
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

import numeric  # noqa: E402
from numeric.data import load_dataset  # noqa: E402
from numeric.results import read_results  # noqa: E402

QUICK = os.environ.get("GDFLOWS_NOTEBOOK_QUICK", "") not in ("", "0")
N, STEPS, LR = (40, 10, 0.3) if QUICK else (1000, 400, 0.3)
FLOWS = ("gd", "cf") if QUICK else ("gd", "gf", "cf")
START = time.perf_counter()

# %% [markdown]
# ## 1. The model and the loss, written the Flax way
# A 64-32-32-10 tanh network on scikit-learn's bundled digits (no download), squared error on one-hot
# targets. `nnx.split` separates the parameters (a pytree) from the structure; the loss merges them.

# %%
data = load_dataset("digits", n=N, classes=10)
X, Y = jnp.asarray(data.X, jnp.float32), jnp.asarray(data.Y, jnp.float32)


class MLP(nnx.Module):
    def __init__(self, rngs):
        self.layers = nnx.List([nnx.Linear(64, 32, rngs=rngs), nnx.Linear(32, 32, rngs=rngs),
                                nnx.Linear(32, 10, rngs=rngs)])

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jnp.tanh(layer(x))
        return self.layers[-1](x)


graphdef, params = nnx.split(MLP(nnx.Rngs(0)), nnx.Param)


def loss_fn(p):
    return 0.5 * jnp.mean(jnp.sum((nnx.merge(graphdef, p)(X) - Y) ** 2, axis=-1))


problem = numeric.from_jax(loss_fn, params, name="flax-mlp-64-32-32-10")
print(f"{problem.n} parameters, initial loss {float(loss_fn(params)):.4f}")

# %% [markdown]
# ## 2. The main job on it

# %%
out = Path("05_run")
summary = numeric.compare(problem, lr=LR, steps=STEPS, flows=FLOWS, out=out, overwrite=True, progress=False)

# %% [markdown]
# ## 3. Sharpness against 2/η, from the results file

# %%
res = read_results(out / "results.h5")
fig, ax = plt.subplots(figsize=(7, 4))
for name in FLOWS:
    ax.plot(res[name]["eigs"][:, 0], label=name, lw=1.2 if name != "gd" else 0.8)
ax.axhline(2 / LR, color="k", ls="--", lw=0.8, label="2/η")
ax.set_xlabel("step (τ = k)")
ax.set_ylabel("sharpness λ_max(H)")
ax.set_title(f"{problem.name}, η = {LR}")
ax.legend()
fig.tight_layout()
fig.savefig("05a_sharpness.png", dpi=110)
print("wrote 05a_sharpness.png")

# %%
eos = summary["eos"]
print("edge reached:", eos["edge_reached"], "" if eos["edge_reached"] else f"— {eos['edge_message']}")
print(f"final ‖w_GD − w_CF‖ = {summary['cf']['final_distance_to_gd']:.4g}"
      + (f", ‖w_GD − w_GF‖ = {summary['gf']['final_distance_to_gd']:.4g}" if "gf" in summary else ""))
gd_top = res["gd"]["eigs"][:, 0]
assert np.isfinite(gd_top).all() and eos["edge_reached"] == bool(np.max(gd_top) >= 2 / LR)
assert Path("05a_sharpness.png").is_file()
print(f"notebook 05 done in {time.perf_counter() - START:.1f} s ({'quick' if QUICK else 'full'} mode)")
