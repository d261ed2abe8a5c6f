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
# # 04 — RMSProp at the edge of stability: the central flow of an adaptive optimizer
#
# Cohen et al. (ICLR 2025), §5: RMSProp is preconditioned GD, w ← w − P⁻¹∇L with P = diag(√ν̂ + ε)/η
# built from an EMA ν of squared gradients. Its stability is set by the **effective sharpness**
# S_eff = λ_max(P⁻¹H), and the edge is S_eff = 2. The paper's reading: ν adapts so that S_eff stays
# at 2 — an *implicit step-size schedule* — and the central flow, a smooth ODE for (w, ν) with the
# oscillation's covariance Σ from an SDCP in the P-metric, predicts ν, the loss and the oscillation.
#
# This notebook redraws the seeds' RMSProp figures from a results file of the main job
# (`gdflows compare --optimizer rmsprop`), which runs **rmsprop** (the optimizer), **sf** (its stable
# flow: dw/dτ = −P⁻¹∇L, dν/dτ = ((1−β₂)/β₂)(∇L² − ν)) and **cf** (its central flow), all from
# `derive.preconditioned`'s formulas.
#
# Modes: `GDFLOWS_NOTEBOOK_QUICK=1` (set by the test suite) runs 100 digits for 60 steps at a learning
# rate that reaches the edge within ~20 steps; its numbers are printed, not held to the acceptance
# limits. `GDFLOWS_RESULTS` reads an existing `results.h5` (file or directory). Otherwise the default
# scalar RMSProp run is computed (about a minute on 2 cores). Figures: `04a_sharpness.png`,
# `04b_nu.png`, `04c_loss.png`, `04d_distance.png`.

# %%
import dataclasses
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from numeric import metrics  # noqa: E402
from numeric.compare import DEFAULT, compare  # noqa: E402
from numeric.config import for_optimizer  # noqa: E402
from numeric.results import read_results, read_summary  # noqa: E402

QUICK = os.environ.get("GDFLOWS_NOTEBOOK_QUICK", "") not in ("", "0")
GIVEN = os.environ.get("GDFLOWS_RESULTS", "").strip()
WINDOW = metrics.DEFAULT_WINDOW
FULL = for_optimizer(dataclasses.replace(DEFAULT, optimizer="rmsprop"))
QUICK_CONFIG = dataclasses.replace(FULL, n=100, lr=0.1, steps=60, chunk=60)
print("mode:", "quick" if QUICK else "full", "| results:", GIVEN or "computed here")


def plot_finite(ax, y, *, positive=False, **kwargs):
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(y) & (y > 0) if positive else np.isfinite(y)
    if keep.any():
        ax.plot(np.flatnonzero(keep), y[keep], **kwargs)


def finish(ax, fig, name, title, ylabel, log=False):
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step (τ)")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3, lw=0.5)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(name, dpi=110)
    plt.close(fig)
    assert Path(name).stat().st_size > 0, name
    print("wrote", name)

# %% [markdown]
# ## 1. The run

# %%
if GIVEN:
    results_path = Path(GIVEN)
    results_path = results_path / "results.h5" if results_path.is_dir() else results_path
    out_dir = results_path.parent
else:
    out_dir = Path("04_adaptive_run")
    compare(QUICK_CONFIG if QUICK else FULL, out_dir, overwrite=True, progress=False, figures=True)
    results_path = out_dir / "results.h5"
    assert (out_dir / "nu.png").is_file()

res = read_results(results_path)
summary = read_summary(out_dir)
disc = summary["discrete"]
assert disc in ("rmsprop", "rmsprop-diag") and {disc, "sf", "cf"} <= set(res), sorted(res)
opt = summary["optimizer"]
print(f"{res.attrs['problem']}: {res.attrs['n_params']} parameters, {disc}, η = {summary['lr']}, "
      f"β₂ = {opt['beta2']}, ε = {opt['eps']}, bias correction {opt['bias_correction']}, {summary['steps']} steps")
d, sf, cf = res[disc], res["sf"], res["cf"]
onset = summary["eos"].get("discrete_onset")
cf_start = summary["eos"].get("cf_onset")
print(f"{disc} reaches S_eff = 2 at step {onset}; the central flow's SDCP is active from step {cf_start}")

# %% [markdown]
# ## 2. (a) The effective sharpness is held at 2
# The optimizer's effective sharpness rises (ν falls as the gradient shrinks), overshoots 2 while
# the oscillation grows from round-off, then hovers around 2: ν has adapted. The central flow holds
# it at exactly 2 from the moment it gets there; the stable flow, which has no oscillation to
# raise ν, keeps sharpening far past 2. The entry overshoot and the ringing after it are the
# optimizer's and are not in the central flow, which assumes the oscillation already formed.

# %%
fig, ax = plt.subplots(figsize=(9, 4.5))
plot_finite(ax, d["eigs"][:, 0], color="0.45", lw=0.8, label=disc)
plot_finite(ax, sf["eigs"][:, 0], color="tab:blue", lw=1.4, label="stable flow")
plot_finite(ax, cf["eigs"][:, 0], color="tab:red", lw=1.6, label="central flow")
ax.axhline(2.0, color="black", ls="--", lw=0.9, label="2 (edge of stability)")
ax.set_ylim(0, max(4.0, float(np.nanmax(d["eigs"][:, 0])) * 1.05))
finish(ax, fig, "04a_sharpness.png", "effective sharpness λ_max(P⁻¹H)", "S_eff")

# %% [markdown]
# ## 3. (b) ν against its prediction
# The central flow's ν is its prediction of the optimizer's *time-averaged* ν (its dν/dτ averages
# ∇L² over the oscillation: ∇L² + Σ_ij X_ij (Hu_i)⊙(Hu_j)). Drawn against the optimizer's ν and its
# sliding mean; the stable flow's ν, without the oscillation's share, keeps falling.

# %%
fig, ax = plt.subplots(figsize=(9, 4.5))
plot_finite(ax, d["nu"], positive=True, color="0.45", lw=0.7, label=f"{disc} ν")
plot_finite(ax, metrics.sliding_mean(d["nu"], WINDOW), positive=True, color="black", lw=1.1,
            label=f"{disc} ν, sliding mean ({WINDOW} steps)")
plot_finite(ax, sf["nu"], positive=True, color="tab:blue", lw=1.4, label="stable flow ν")
plot_finite(ax, cf["nu"], positive=True, color="tab:red", lw=1.6, ls="--", label="central flow ν (prediction)")
finish(ax, fig, "04b_nu.png", "ν: the optimizer's implicit step size η/√ν", "ν", log=True)
nu_err = metrics.predicted_loss_rel_err(cf["nu"], d["nu"], onset, WINDOW)
print(f"ν: mean relative error of the central flow against the sliding mean over the edge phase: {nu_err}")

# %% [markdown]
# ## 4. (c) The loss against the prediction
# E[L] = L(w_CF) + ½⟨Σ, H⟩ = L + tr X in the P-metric (dashed), against the optimizer's loss and its
# sliding mean.

# %%
fig, ax = plt.subplots(figsize=(9, 4.5))
plot_finite(ax, d["loss"], positive=True, color="0.45", lw=0.7, label=disc)
plot_finite(ax, metrics.sliding_mean(d["loss"], WINDOW), positive=True, color="black", lw=1.1,
            label=f"{disc}, sliding mean")
plot_finite(ax, sf["loss"], positive=True, color="tab:blue", lw=1.4, label="stable flow")
plot_finite(ax, cf["predicted_loss"], positive=True, color="tab:red", lw=1.6, ls="--",
            label="central flow: predicted average")
finish(ax, fig, "04c_loss.png", "training loss", "loss", log=True)
loss_err = metrics.predicted_loss_rel_err(cf["predicted_loss"], d["loss"], onset, WINDOW)
print(f"loss: mean relative error of the prediction over the edge phase: {loss_err}")

# %% [markdown]
# ## 5. (d) Which flow stays with the optimizer

# %%
fig, ax = plt.subplots(figsize=(9, 4.5))
plot_finite(ax, sf["distance_to_discrete"], positive=True, color="tab:blue", lw=1.4, label="stable flow")
plot_finite(ax, cf["distance_to_discrete"], positive=True, color="tab:red", lw=1.6, label="central flow")
finish(ax, fig, "04d_distance.png", f"distance to {disc}", f"‖w − w_{disc}‖", log=True)
ratio = cf["distance_to_discrete"][-1] / sf["distance_to_discrete"][-1]
print(f"final ‖w_opt − w_CF‖ / ‖w_opt − w_SF‖ = {ratio:.4f}")

# %% [markdown]
# ## 6. The acceptance checks, recomputed from the file

# %%
for c in summary["acceptance"]:
    print(f"{metrics.verdict(c['passed'])} {c['name']}: {c['value']}")
assert summary["cf"]["predicted_nu_rel_err"] == nu_err or np.isclose(summary["cf"]["predicted_nu_rel_err"], nu_err)
if not QUICK:
    assert onset is not None and cf_start is not None
    assert abs(summary["eos"]["cf_sharpness_max_rel_dev"]) <= 0.01
    assert loss_err <= 0.1 and nu_err <= 0.1 and ratio <= 0.25
