"""Theory-against-simulation metrics computed from the series of a run (host side, NumPy).

Conventions: series are indexed by step (row k = after k GD steps, NaN where not reached);
``sharpness`` is the top Hessian eigenvalue; the edge of stability (EoS) is S ≥ 2/η.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["sliding_mean", "eos_onset", "cf_onset", "predicted_loss_rel_err", "sharpness_max_rel_dev",
           "Criterion", "acceptance", "edge_message", "verdict", "DEFAULT_WINDOW"]

DEFAULT_WINDOW = 21   # steps; GD's EoS oscillation has period 2 plus slower catapults of ~10 steps


def sliding_mean(x, window: int = DEFAULT_WINDOW) -> np.ndarray:
    """Centred moving average along axis 0 over the finite entries in each window.

    The window is truncated at the ends (so the result has the input's length); rows whose window
    holds no finite value are NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    if window < 1:
        raise ValueError(f"window: expected a positive integer, got {window!r}")
    finite = np.isfinite(x)
    vals = np.where(finite, x, 0.0)
    c = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(vals, axis=0)])
    cn = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(finite, axis=0)])
    n = len(x)
    half = window // 2
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + (window - half), 0, n)
    total, count = c[hi] - c[lo], cn[hi] - cn[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def reference_key(discrete: str) -> str:
    """The series suffix of distances to the discrete process: ``gd`` for GD runs, else ``discrete``
    (``distance_to_gd`` / ``distance_to_discrete``)."""
    return "gd" if discrete == "gd" else "discrete"


def eos_onset(sharpness, eta: float, level: float = 1.0, from_below: bool = False) -> int | None:
    """First step at which ``sharpness ≥ level·2/η`` (None if never); with ``from_below``, the first
    such step after the sharpness has been below that level (skips a start above the edge)."""
    s = np.asarray(sharpness, dtype=np.float64)
    above = np.isfinite(s) & (s >= level * 2.0 / eta)
    if from_below:
        below = np.flatnonzero(np.isfinite(s) & ~above)
        if not below.size:
            return None
        above[:below[0]] = False
    idx = np.flatnonzero(above)
    return int(idx[0]) if idx.size else None


def cf_onset(sigma_trace) -> int | None:
    """First step at which the central flow is at the edge: its SDCP is active (tr Σ > 0).

    Critical directions (S ≥ critical·2/η) only enter the SDCP; Σ stays 0, and the flow is gradient
    flow, until S reaches 2/η, where Σ turns on and pins it.
    """
    tr = np.asarray(sigma_trace, dtype=np.float64)
    idx = np.flatnonzero(np.isfinite(tr) & (tr > 0))
    return int(idx[0]) if idx.size else None


def predicted_loss_rel_err(predicted, gd_loss, start: int | None, window: int = DEFAULT_WINDOW) -> float | None:
    """Mean over steps ≥ ``start`` of |predicted − ⟨GD loss⟩| / ⟨GD loss⟩, ⟨·⟩ the sliding mean."""
    if start is None:
        return None
    avg = sliding_mean(gd_loss, window)
    pred = np.asarray(predicted, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):   # a loss that reaches 0: those steps are left out
        rel = np.abs(pred - avg) / np.abs(avg)
    rel = rel[start:]
    rel = rel[np.isfinite(rel)]
    return float(rel.mean()) if rel.size else None


def sharpness_max_rel_dev(sharpness, eta: float, start: int | None) -> float | None:
    """max |S/(2/η) − 1| over steps ≥ ``start`` (None if ``start`` is None or nothing is finite)."""
    if start is None:
        return None
    s = np.asarray(sharpness, dtype=np.float64)[start:]
    s = s[np.isfinite(s)]
    return float(np.max(np.abs(s * eta / 2.0 - 1.0))) if s.size else None


class Criterion(NamedTuple):
    """One acceptance check: ``value`` compared with ``limit`` (``value ≤ limit`` passes);
    ``passed`` is None where the check does not apply (the run never reached the edge)."""

    name: str
    value: float | None
    limit: float
    passed: bool | None

    def line(self) -> str:
        if self.passed is None:
            return f"n/a   {self.name}: not applicable (the edge was not reached)"
        value = "n/a" if self.value is None else f"{self.value:.4g}"
        return f"{verdict(self.passed)}  {self.name}: {value} (limit {self.limit:g})"


def verdict(passed: bool | None) -> str:
    """``PASS``, ``FAIL`` or ``n/a`` (not applicable) for a check's ``passed``."""
    return "n/a" if passed is None else ("PASS" if passed else "FAIL")


def edge_message(discrete: str, peak: float | None, edge: float, stayed_above: bool = False) -> str:
    """The one line said when the discrete process never reached its edge: its largest sharpness
    as a fraction of the edge, and what to change."""
    what = "GD's sharpness" if discrete == "gd" else f"{discrete}'s effective sharpness"
    at = "2/η" if discrete == "gd" else "2"
    if stayed_above:
        return (f"{what} never came below {at} after the start (ν never caught up with the curvature); "
                f"try a smaller learning rate (--lr) or more steps (--steps)")
    frac = "n/a" if peak is None or not np.isfinite(peak) else f"{peak / edge:.2f}"
    return (f"{what} never reached {at} (largest {frac}·{at}); "
            f"try a larger learning rate (--lr) or more steps (--steps)")


def _check(name, value, limit) -> Criterion:
    return Criterion(name, value, limit, value is not None and np.isfinite(value) and value <= limit)


def acceptance(summary: dict) -> list[Criterion]:
    """The edge-of-stability acceptance criteria, evaluated on a ``gdflows compare`` summary.

    Needs the ``eos`` block that :func:`numeric.compare.eos_summary` adds and the process entries:
    the discrete process (``summary["discrete"]``: gd, rmsprop or rmsprop-diag), its stable flow
    (``gf`` for GD, ``sf`` otherwise), ``cf``, and for GD ``mf``. GD's edge is 2/η; an adaptive
    optimizer's is an effective sharpness of 2.
    """
    eos = summary.get("eos", {})
    disc = summary.get("discrete", "gd")
    gd = disc == "gd"
    name, edge = ("GD", "2/η") if gd else (disc, "2 (effective)")
    stable = "gf" if gd else "sf"
    out = []
    dev = eos.get("discrete_sharpness_max_rel_dev", eos.get("gd_sharpness_max_rel_dev"))
    out.append(_check(f"{name} sharpness within ±15% of {edge} after reaching it (max |S/edge − 1|)", dev, 0.15))
    if "cf" in summary:
        out.append(_check(f"central-flow sharpness within 1% of {edge} at the edge (max |S/edge − 1|)",
                          summary["cf"].get("sharpness_max_rel_dev"), 0.01))
        out.append(_check(f"central flow predicted loss vs {name} sliding average (mean rel. error)",
                          summary["cf"].get("predicted_loss_rel_err"), 0.1))
        if not gd:
            out.append(_check(f"central flow ν vs {name} sliding-average ν (mean rel. error)",
                              summary["cf"].get("predicted_nu_rel_err"), 0.1))
    if "cf" in summary and stable in summary:
        sf = summary[stable].get("final_distance_to_discrete", summary[stable].get("final_distance_to_gd"))
        cf = summary["cf"].get("final_distance_to_discrete", summary["cf"].get("final_distance_to_gd"))
        ratio = cf / sf if sf and cf is not None else None
        out.append(_check(f"final ‖w_{name} − w_CF‖ / ‖w_{name} − w_{stable.upper()}‖", ratio, 0.25))
    if gd and "mf" in summary and "gf" in summary and eos.get("mf_vs_gf_before_eos") is not None:
        out.append(_check("before the edge: max ‖w_GD − w_MF‖ / max ‖w_GD − w_GF‖",
                          eos["mf_vs_gf_before_eos"], 1.0 - 1e-12))
    if eos.get("edge_reached") is False:   # below the edge the flows' EoS claims say nothing
        out = [c if c.name.startswith("before the edge") else c._replace(passed=None) for c in out]
    return out
