"""Run several processes side by side on one problem and collect aligned series.

Each process runs as a jitted ``lax.scan`` over chunks of steps (one trace per process per run;
no host round trip inside a step). Between chunks the host reads the chunk's logs, checks for
divergence (a non-finite value, or loss above a bound) and stops only that process, keeping
everything up to the divergence; unreached steps stay NaN.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from .problem import Problem
from .processes import PROCESS_NAMES, Settings, make_process

__all__ = ["RunResult", "run", "summarize"]


@dataclass
class RunResult:
    """Series per process, index k = after k steps (index 0 = the initial point).

    Attributes:
        series: ``{process: {name: array of shape (steps + 1, ...)}}`` (NaN where not reached).
        status: ``{process: "ok" | "diverged at step k: reason"}``.
        notes: ``{process: [warnings]}`` (eigensolver or ODE solver trouble).
        wall_seconds: ``{process: seconds}`` including compilation.
    """

    problem: Problem
    settings: Settings
    steps: int
    series: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    wall_seconds: dict = field(default_factory=dict)


def run(problem: Problem, eta: float, steps: int, flows=PROCESS_NAMES, *, settings: Settings | None = None,
        chunk: int = 50, loss_bound: float | None = None, progress=None) -> RunResult:
    """Run ``flows`` for ``steps`` steps of τ from ``problem.init``.

    Args:
        problem: the loss and initial point.
        eta: learning rate (> 0).
        steps: number of GD steps (> 0); every process advances the same τ.
        flows: names among ``gd, gf, mf, cf, midpoint``.
        settings: numerical settings (defaults from :class:`Settings`).
        chunk: steps per jitted scan between host checks.
        loss_bound: a process whose loss exceeds this is stopped as diverged
            (default: 1e6 × (|L(w₀)| + 1)).
        progress: optional callable ``(process, steps_done, steps)``.
    """
    from derive.errors import DeriveInputError

    if not (isinstance(eta, (int, float)) and eta > 0 and np.isfinite(eta)):
        raise DeriveInputError(f"lr: must be a positive number, got {eta!r}")
    if not (isinstance(steps, (int, np.integer)) and steps > 0):
        raise DeriveInputError(f"steps: must be a positive integer, got {steps!r}")
    flows = list(dict.fromkeys(flows))
    unknown = [f for f in flows if f not in PROCESS_NAMES]
    if unknown or not flows:
        raise DeriveInputError(f"flows: unknown {unknown}; expected some of {list(PROCESS_NAMES)}")
    s = settings or Settings(eta=float(eta))
    w0 = jnp.asarray(problem.init, dtype=jnp.result_type(float))
    bound = loss_bound if loss_bound is not None else 1e6 * (abs(float(problem.loss(w0))) + 1.0)
    result = RunResult(problem, s, int(steps))
    order = ["gd"] + [f for f in flows if f != "gd"] if "gd" in flows else flows
    for name in order:
        t0 = time.perf_counter()
        series, status, notes = _run_one(make_process(name, problem, s), w0, int(steps), chunk, bound, progress)
        result.series[name], result.status[name], result.notes[name] = series, status, notes
        result.wall_seconds[name] = time.perf_counter() - t0
    if "gd" in result.series:
        gd_w = result.series["gd"]["w"]
        for ser in result.series.values():
            ser["distance_to_gd"] = np.linalg.norm(ser["w"] - gd_w, axis=1)
    if "gd" not in flows:
        result.series.pop("gd", None)
    return result


def _run_one(proc, w0, steps, chunk, bound, progress):
    state = proc.init(w0)
    observe = jax.jit(proc.observe)
    first = jax.tree_util.tree_map(np.asarray, observe(state))

    def body(st, _):
        st = proc.step(st)
        return st, proc.observe(st)

    scan = jax.jit(lambda st, n: jax.lax.scan(body, st, None, length=n), static_argnums=1)
    series = {k: np.full((steps + 1,) + np.shape(v), np.nan) for k, v in first.items()}
    for k, v in first.items():
        series[k][0] = v
    status, notes, done = "ok", [], 0
    if not _finite(first):
        return series, "diverged at step 0: the initial point gives a non-finite value", notes
    while done < steps:
        n = min(chunk, steps - done)
        state, logs = scan(state, n)
        logs = jax.tree_util.tree_map(np.asarray, logs)
        bad = _first_bad(logs, bound)
        keep = n if bad is None else bad[0]
        for k, v in logs.items():
            series[k][done + 1:done + 1 + keep] = v[:keep]
        if bad is not None:
            status = f"diverged at step {done + keep + 1}: {bad[1]}"
            break
        done += n
        if progress:
            progress(proc.name, done, steps)
    for flag, text in (("eig_converged", "eigensolver did not converge at {} step(s)"),
                       ("solver_ok", "ODE solver failed (max_steps or step-size) at {} step(s)")):
        if flag in series:
            failures = int(np.sum(series[flag][1:] == 0))
            if failures:
                notes.append(text.format(failures))
                warnings.warn(f"{proc.name}: " + text.format(failures), RuntimeWarning, stacklevel=3)
    return series, status, notes


def _finite(log) -> bool:
    return bool(np.all(np.isfinite(log["w"])) and np.isfinite(log["loss"]))


def _first_bad(logs, bound):
    """(index, reason) of the first step with a non-finite state or a loss above ``bound``."""
    w, loss = logs["w"], logs["loss"]
    nonfinite = ~np.all(np.isfinite(w.reshape(len(w), -1)), axis=1) | ~np.isfinite(loss)
    above = np.isfinite(loss) & (loss > bound)
    idx = np.flatnonzero(nonfinite | above)
    if idx.size == 0:
        return None
    i = int(idx[0])
    return i, ("non-finite parameters or loss" if nonfinite[i] else f"loss {loss[i]:.3g} above bound {bound:.3g}")


def summarize(result: RunResult) -> dict:
    """The ``summary.json`` content: per process final/tail metrics (see the CLI docs)."""
    out = {"problem": result.problem.name, "lr": result.settings.eta, "steps": result.steps,
           "n_params": result.problem.n, "processes": list(result.series)}
    tail = max(1, result.steps // 10)
    for name, ser in result.series.items():
        loss = ser["loss"]
        reached = np.flatnonzero(np.isfinite(loss))
        last = int(reached[-1]) if reached.size else 0
        entry = {"status": result.status[name], "notes": result.notes[name],
                 "steps_reached": last, "wall_seconds": result.wall_seconds[name],
                 "final_loss": float(loss[last]),
                 "mean_loss_tail": float(np.nanmean(loss[-tail:])) if np.isfinite(loss[-tail:]).any() else None,
                 "final_sharpness": float(ser["eigs"][last][0]),
                 "final_params": result.problem.named(ser["w"][last])}
        if "distance_to_gd" in ser:
            entry["final_distance_to_gd"] = float(ser["distance_to_gd"][last])
        if name == "cf":
            entry["final_predicted_loss"] = float(ser["predicted_loss"][last])
            entry["final_sigma_trace"] = float(ser["sigma_trace"][last])
        out[name] = entry
    return out
