"""The figures of a sweep (:mod:`numeric.sweep`), drawn from its table rows and series.

* ``sweep_sharpness.png`` — the discrete process's sharpness against steps, one colour per η, its
  edge 2/η dashed in the same colour (adaptive optimizers: effective sharpness, edge 2); seeds
  share their η's colour with different line styles;
* ``sweep_ratio.png`` — final ‖w_GD − w_CF‖ / ‖w_GD − w_GF‖ against η (the acceptance limit 0.25 dotted);
* ``sweep_loss.png`` — the central flow's predicted loss against GD's time-averaged loss over the
  edge phase, one point per run that reached the edge, with the diagonal.

Figures are built on ``matplotlib.figure.Figure`` (pyplot's global state is never touched).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .figures import _new_figure

__all__ = ["sweep_figures"]

_STYLES = ("-", "--", ":", "-.")


def sweep_figures(rows, series, out) -> list[Path]:
    out = Path(out)
    lrs = sorted({r["lr"] for r in rows})
    cmap = _colors(len(lrs))
    colour = {lr: cmap[i] for i, lr in enumerate(lrs)}
    seeds = sorted({r.get("seed") for r in rows}, key=lambda s: (s is None, s))
    style = {s: _STYLES[i % len(_STYLES)] for i, s in enumerate(seeds)}
    written = []
    for name, draw in (("sweep_sharpness.png", _sharpness), ("sweep_ratio.png", _ratio), ("sweep_loss.png", _loss)):
        fig, ax = _new_figure()
        if draw(ax, rows, series, colour, style):
            fig.savefig(out / name, dpi=110)
            written.append(out / name)
    return written


def _colors(n):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.0, 0.9, max(n, 1))]


def _sharpness(ax, rows, series, colour, style) -> bool:
    drawn = False
    adaptive = any(r["discrete"] != "gd" for r in rows)
    for r in rows:
        eigs = series[r["id"]].get(r["discrete"], {}).get("eigs")
        if eigs is None:
            continue
        top = np.asarray(eigs, dtype=np.float64).reshape(len(eigs), -1)[:, 0]
        keep = np.isfinite(top)
        label = f"η = {r['lr']:g}" + (f", seed {r['seed']}" if len(style) > 1 else "")
        ax.plot(np.flatnonzero(keep), top[keep], color=colour[r["lr"]], ls=style.get(r.get("seed"), "-"), lw=1.0,
                label=label)
        drawn = True
    for lr, c in colour.items():
        ax.axhline(2.0 if adaptive else 2.0 / lr, color=c, ls="--", lw=0.8, alpha=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("effective sharpness (edge 2)" if adaptive else "sharpness λ_max(H) (dashed: 2/η)")
    ax.set_title("sharpness against steps for every learning rate")
    ax.legend(fontsize=7, ncol=2)
    return drawn


def _ratio(ax, rows, series, colour, style) -> bool:
    pts = [(r["lr"], r["cf_over_stable"], r) for r in rows if r.get("cf_over_stable") is not None]
    if not pts:
        return False
    for lr, value, r in pts:
        ax.scatter([lr], [value], color=colour[lr], marker="o" if r.get("edge_reached") else "x", zorder=3)
    means = {}
    for lr, value, _ in pts:
        means.setdefault(lr, []).append(value)
    xs = sorted(means)
    ax.plot(xs, [np.mean(means[x]) for x in xs], color="gray", lw=0.8, label="mean over seeds")
    ax.axhline(0.25, color="black", ls=":", lw=0.9, label="acceptance limit 0.25")
    stable = "GF" if rows[0]["discrete"] == "gd" else "SF"
    ax.set_xlabel("learning rate η")
    ax.set_ylabel(f"final ‖w_GD − w_CF‖ / ‖w_GD − w_{stable}‖")
    ax.set_title("central flow against the stable flow (o: reached the edge, x: did not)")
    ax.legend(fontsize=8)
    return True


def _loss(ax, rows, series, colour, style) -> bool:
    pts = [r for r in rows if r.get("measured_loss") is not None and r.get("predicted_loss") is not None]
    if not pts:
        return False
    for r in pts:
        ax.scatter([r["measured_loss"]], [r["predicted_loss"]], color=colour[r["lr"]], zorder=3,
                   label=f"η = {r['lr']:g}")
    lo = min(min(r["measured_loss"], r["predicted_loss"]) for r in pts)
    hi = max(max(r["measured_loss"], r["predicted_loss"]) for r in pts)
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--", label="predicted = measured")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.set_xlabel("GD's time-averaged loss over the edge phase")
    ax.set_ylabel("central flow's predicted loss (same steps)")
    ax.set_title("predicted against measured time-averaged loss")
    return True
