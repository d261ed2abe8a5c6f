"""PNG figures for ``gdflows compare``, drawn from the series in ``results.h5``.

Uses ``matplotlib.figure.Figure`` with the Agg canvas directly, so pyplot and the user's global
backend are never touched. Every figure is skipped when its data are missing or not finite.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from .metrics import DEFAULT_WINDOW, cf_onset, eos_onset, reference_key, sliding_mean

__all__ = ["LABELS", "COLORS", "make_figures", "measured_variance"]

LABELS = {"gd": "gradient descent", "rmsprop": "scalar RMSProp", "rmsprop-diag": "RMSProp (diagonal)",
          "gf": "gradient flow", "sf": "stable flow", "mf": "modified flow", "cf": "central flow",
          "midpoint": "GD midpoint"}
COLORS = {"gd": "0.45", "rmsprop": "0.45", "rmsprop-diag": "0.45", "gf": "tab:blue", "sf": "tab:blue",
          "mf": "tab:green", "cf": "tab:red", "midpoint": "tab:purple"}
_EXTRA_COLORS = ["tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]


def measured_variance(results: Mapping, window: int = DEFAULT_WINDOW) -> np.ndarray | None:
    """GD's measured oscillation variance along the central flow's tracked eigenvectors.

    Args:
        results: ``{process: {series: array}}`` as returned by ``read_results``.
        window: sliding-window length in steps.

    Returns:
        ``sliding_mean(gd_offset**2, window)`` of the ``cf`` process, shape ``(rows, K)`` (row k is
        the mean of ⟨w_GD − w_CF, u_i⟩² over the window centred on step k), or None when ``cf`` has
        no ``gd_offset`` series.
    """
    offset = results.get("cf", {}).get("gd_offset")
    if offset is None:
        return None
    offset = np.asarray(offset, dtype=np.float64)
    offset = offset.reshape(len(offset), -1)
    return sliding_mean(offset ** 2, window)


def make_figures(results: Mapping, out_dir: str | os.PathLike, *, window: int = DEFAULT_WINDOW) -> list[Path]:
    """Write ``loss.png``, ``sharpness.png``, ``distance.png``, ``variance.png`` and (adaptive
    optimizers) ``nu.png`` into ``out_dir``.

    The discrete process is ``attrs["discrete"]`` (default ``gd``). GD's sharpness is drawn with
    its edge 2/η; an adaptive optimizer's effective sharpness λ_max(P⁻¹H) with its edge 2.

    Args:
        results: a ``Results`` (``{process: {series: array}}`` with ``.attrs``: lr, problem, n_params,
            discrete).
        out_dir: an existing directory.
        window: sliding-window length (steps) for the discrete process's averaged loss and ν and
            the measured variance.

    Returns:
        The paths written, in the order above; a figure whose data are missing is left out.
    """
    out_dir = Path(out_dir)
    attrs = dict(getattr(results, "attrs", {}) or {})
    disc = str(attrs.get("discrete") or "gd")
    lr = _positive(attrs.get("lr"))
    eta = lr if disc == "gd" else 1.0      # effective units: the edge is 2
    sharp = _sharpness(results.get(disc, {}))
    onset = eos_onset(sharp, eta, from_below=disc != "gd") if eta is not None and sharp is not None else None
    written = []
    for name, draw in (("loss", _draw_loss), ("sharpness", _draw_sharpness), ("distance", _draw_distance),
                       ("variance", _draw_variance), ("nu", _draw_nu)):
        fig, ax = _new_figure()
        if draw(ax, results, eta=eta, onset=onset, window=window, disc=disc):
            ax.set_title(f"{name}: {_title(attrs)}", fontsize=10)
            ax.set_xlabel("step")
            ax.grid(True, alpha=0.3, linewidth=0.5)
            fig.legend(loc="outside right upper", fontsize=8, frameon=False)
            path = out_dir / f"{name}.png"
            fig.savefig(path, dpi=120)
            written.append(path)
    return written


# ------------------------------------------------------------------------------------ the figures
def _draw_loss(ax, results, *, eta, onset, window, disc) -> bool:
    drawn = False
    for proc, series in _processes(results):
        if "loss" in series:
            thin = dict(linewidth=0.7, alpha=0.8) if proc == disc else {}
            drawn |= _plot(ax, series["loss"], positive=True, color=_color(proc), label=_label(proc), **thin)
    cf = results.get("cf", {})
    if "predicted_loss" in cf:
        drawn |= _plot(ax, cf["predicted_loss"], positive=True, color=_color("cf"), linestyle="--",
                       label=f"central flow: predicted {_short(disc)} average")
    ref = results.get(disc, {})
    if "loss" in ref:
        drawn |= _plot(ax, sliding_mean(ref["loss"], window), positive=True, color="black", linewidth=0.8,
                       label=f"{_label(disc)}: sliding mean ({window} steps)")
    if not drawn:
        return False
    ax.set_yscale("log")
    ax.set_ylabel("training loss")
    _mark_onset(ax, onset, disc)
    return True


def _draw_nu(ax, results, *, eta, onset, window, disc) -> bool:
    """ν of every process (the mean over coordinates for the diagonal form), the optimizer's sliding
    average and the central flow's ν, which is its prediction of that average."""
    drawn = False
    for proc, series in _processes(results):
        if "nu" in series:
            thin = dict(linewidth=0.7, alpha=0.8) if proc == disc else {}
            drawn |= _plot(ax, series["nu"], positive=True, color=_color(proc), label=_label(proc) + " ν", **thin)
    if not drawn:
        return False
    if "nu" in results.get(disc, {}):
        _plot(ax, sliding_mean(results[disc]["nu"], window), positive=True, color="black", linewidth=0.8,
              label=f"{_label(disc)}: sliding mean ({window} steps)")
    ax.set_yscale("log")
    ax.set_ylabel("ν (mean over coordinates)" if disc == "rmsprop-diag" else "ν")
    _mark_onset(ax, onset, disc)
    return True


def _draw_sharpness(ax, results, *, eta, onset, window, disc) -> bool:
    drawn = False
    for proc, series in _processes(results):
        s = _sharpness(series)
        if s is not None:
            drawn |= _plot(ax, s, color=_color(proc), label=_label(proc), linewidth=1.0 if proc == disc else 1.4)
    if not drawn:
        return False
    for proc in (disc, "cf"):
        eigs = results.get(proc, {}).get("eigs")
        if eigs is None or np.ndim(eigs) != 2:
            continue
        for j in range(1, min(3, np.shape(eigs)[1])):
            label = f"{_label(proc)}: λ2, λ3" if j == 1 else "_nolegend_"
            _plot(ax, np.asarray(eigs)[:, j], color=_color(proc), linewidth=0.7, alpha=0.35, label=label)
    if eta is not None:
        edge = f"2/η = {2.0 / eta:.4g}" if disc == "gd" else "2 (edge of stability)"
        ax.axhline(2.0 / eta, color="black", linestyle="--", linewidth=0.9, zorder=1, label=edge)
    ax.set_ylabel("top Hessian eigenvalue (sharpness)" if disc == "gd" else "effective sharpness λ_max(P⁻¹H)")
    _mark_onset(ax, onset, disc)
    return True


def _draw_distance(ax, results, *, eta, onset, window, disc) -> bool:
    key = f"distance_to_{reference_key(disc)}"
    drawn = False
    for proc, series in _processes(results):
        if proc != disc and key in series:
            drawn |= _plot(ax, series[key], positive=True, color=_color(proc), label=_label(proc))
    if not drawn:
        return False
    ax.set_yscale("log")
    ax.set_ylabel(f"‖w − w_{_short(disc)}‖")
    _mark_onset(ax, onset, disc)
    return True


def _draw_variance(ax, results, *, eta, onset, window, disc) -> bool:
    if disc != "gd":   # offsets of adaptive runs are in the effective (y = P^{1/2}w) eigenbasis: not drawn
        return False
    cf = results.get("cf", {})
    measured = measured_variance(results, window)
    predicted = cf.get("sigma_diag")
    if measured is None or predicted is None:
        return False
    predicted = np.asarray(predicted, dtype=np.float64)
    predicted = predicted.reshape(len(predicted), -1)
    n = min(len(predicted), len(measured))
    predicted, measured = predicted[:n], measured[:n]
    start = (cf_onset(cf["sigma_trace"]) if "sigma_trace" in cf else None) or 0
    # rows before the central flow reaches the edge are not meaningful: blank them
    before = np.arange(n) < start
    predicted, measured = np.where(before[:, None], np.nan, predicted), np.where(before[:, None], np.nan, measured)
    drawn = False
    for i in range(min(measured.shape[1], predicted.shape[1])):
        color = f"C{i % 10}"
        if _plot(ax, predicted[:, i], positive=True, color=color, linewidth=1.6, linestyle="--",
                 label=f"u{i + 1}: predicted (central flow Σ)"):
            drawn = True
            _plot(ax, measured[:, i], positive=True, color=color, linewidth=0.9,
                  label=f"u{i + 1}: measured (GD, {window}-step mean)")
    if not drawn:
        return False
    ax.set_yscale("log")
    ax.set_ylabel("variance of ⟨w_GD − w_CF, u_i⟩")
    if start:
        ax.axvline(start, color="black", linestyle=":", linewidth=0.9, zorder=1,
                   label=f"central flow at the edge (step {start})")
    return True


# ---------------------------------------------------------------------------------------- helpers
def _new_figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _plot(ax, y, *, positive: bool = False, **kwargs) -> bool:
    """Plot the finite (and, if ``positive``, > 0) points of ``y`` against the step; True if any."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        return False
    keep = np.isfinite(y) & (y > 0) if positive else np.isfinite(y)
    if not keep.any():
        return False
    x = np.flatnonzero(keep)
    ax.plot(x, y[keep], marker="." if x.size == 1 else None, **kwargs)
    return True


def _processes(results: Mapping):
    """``(process, series)`` pairs, the known processes first (gd drawn first, underneath)."""
    order = {p: i for i, p in enumerate(LABELS)}
    return sorted(results.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))


def _sharpness(series: Mapping) -> np.ndarray | None:
    if "eigs" in series:
        eigs = np.asarray(series["eigs"], dtype=np.float64)
        return eigs.reshape(len(eigs), -1)[:, 0] if eigs.size else None
    return np.asarray(series["sharpness"], dtype=np.float64) if "sharpness" in series else None


def _mark_onset(ax, onset: int | None, disc: str = "gd") -> None:
    if onset is not None:
        what = "GD reaches 2/η" if disc == "gd" else f"{disc} reaches S_eff = 2"
        ax.axvline(onset, color="black", linestyle=":", linewidth=0.9, zorder=1, label=f"{what} (step {onset})")


def _short(disc: str) -> str:
    return "GD" if disc == "gd" else disc


def _positive(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def _title(attrs: Mapping) -> str:
    parts = [str(attrs.get("problem", "run"))]
    if _positive(attrs.get("lr")) is not None:
        parts.append(f"η = {float(attrs['lr']):g}")
    if attrs.get("n_params") is not None:
        parts.append(f"{attrs['n_params']} parameters")
    return ", ".join(parts)


def _label(proc: str) -> str:
    return LABELS.get(proc, proc)


def _color(proc: str) -> str:
    if proc in COLORS:
        return COLORS[proc]
    return _EXTRA_COLORS[sum(map(ord, proc)) % len(_EXTRA_COLORS)]
