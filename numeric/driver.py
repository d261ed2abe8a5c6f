"""Run several processes side by side on one problem and collect aligned series.

Each process runs as a jitted ``lax.scan`` over chunks of steps (one trace per process per run;
no host round trip inside a step). Between chunks the host reads the chunk's logs, checks for
divergence (a non-finite value, or loss above a bound) and stops only that process, keeping
everything up to the divergence; unreached steps stay NaN.
"""
from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .metrics import reference_key
from .problem import Problem
from .processes import Settings, discrete_name, make_process, process_names

__all__ = ["RunResult", "check_flows", "run", "summarize"]


@dataclass
class RunResult:
    """Series per process, index k = after k steps (index 0 = the initial point).

    Attributes:
        series: ``{process: {name: array of shape (steps + 1, ...)}}`` (NaN where not reached).
            ``w`` is kept only when ``keep_w`` (small problems); with GD in the run every process
            also has ``distance_to_gd`` = ‖w − w_GD‖ and ``gd_offset`` = Uᵀ(w_GD − w) on its tracked
            eigenvectors U, computed on the device step by step. With another optimizer its
            discrete process plays GD's part: ``distance_to_discrete`` and ``discrete_offset``.
        discrete: the discrete process's name (``gd``, ``rmsprop``, ``rmsprop-diag``).
        optimizer: None (GD) or the :class:`numeric.adaptive.RMSProp` settings.
        status: ``{process: "ok" | "diverged at step k: reason" | "failed at step k: reason" |
            "interrupted at step k" | "skipped: reason" | "not started (interrupted)"}``.
        notes: ``{process: [warnings]}`` (eigensolver or ODE solver trouble).
        wall_seconds: ``{process: seconds}`` including compilation.
        compile_seconds: ``{process: seconds}`` spent compiling its scans and building its initial
            state and first log (mostly compilation too).
        compiles: ``{process: number of compiled scans}`` (one per distinct chunk length: ≤ 2).
        interrupted: ``should_stop`` stopped the run before every process finished.
    """

    problem: Problem
    settings: Settings
    steps: int
    series: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    wall_seconds: dict = field(default_factory=dict)
    compile_seconds: dict = field(default_factory=dict)
    compiles: dict = field(default_factory=dict)
    interrupted: bool = False
    optimizer: object = None

    @property
    def discrete(self) -> str:
        return discrete_name(self.optimizer)


KEEP_W_LIMIT = 20_000   # keep every process's full trajectory w in the result up to this many parameters


def keeps_w(problem: Problem, keep_w: bool | None = None) -> bool:
    """Whether a run keeps every process's trajectory ``w``: ``keep_w``, or by default n ≤ ``KEEP_W_LIMIT``."""
    return problem.n <= KEEP_W_LIMIT if keep_w is None else bool(keep_w)


def run(problem: Problem, eta: float, steps: int, flows=None, *, settings: Settings | None = None,
        chunk: int = 50, loss_bound: float | None = None, progress=None, sink=None, keep_w: bool | None = None,
        stop_if_gd_diverges: bool = False, should_stop=None, optimizer=None) -> RunResult:
    """Run ``flows`` for ``steps`` steps of τ from ``problem.init``.

    GD runs first; its trajectory is kept (where the sink says, else in memory, or in a temporary
    file for large problems) and streamed to the later processes' scans, which compute their distance to
    GD on the device, so memory does not grow with steps × parameters per process.

    Args:
        problem: the loss and initial point.
        eta: learning rate (> 0).
        steps: number of GD steps (> 0); every process advances the same τ.
        flows: names among ``gd, gf, mf, cf, midpoint`` (GD), or the optimizer's (``rmsprop, sf, cf, midpoint``);
            default: all of them.
        settings: numerical settings (defaults from :class:`Settings`); their ``eta`` is left unset
            (or equal to ``eta``): the learning rate is this function's argument, passed once.
        chunk: steps per jitted scan between host checks.
        loss_bound: a process whose loss exceeds this is stopped as diverged
            (default: 1e6 × (|L(w₀)| + 1)).
        progress: optional callable ``(process, steps_done, steps)``.
        sink: optional recorder (e.g. :class:`numeric.recorder.Recorder`) with ``start(shapes)``
            (called once with ``{process: {series: shape}}`` before any step) and
            ``write(process, series, start_row)`` (after every chunk); if it also has
            ``trajectory(rows, n, dtype)``, ``restored(process)`` and ``checkpoint(process, entry, state)``,
            GD's iterates live where it says, each process checkpoints its state after every chunk,
            and a process the sink restores continues from its checkpoint (resume).
        keep_w: keep ``w`` series in the result (default: n ≤ ``KEEP_W_LIMIT``).
        stop_if_gd_diverges: skip the other processes when the discrete process (GD or the optimizer) diverges.
        should_stop: optional callable polled after every chunk; when it returns true the run stops
            there (the process in progress is "interrupted at step k", later ones "not started")
            and ``result.interrupted`` is set.
        optimizer: None for GD, or a :class:`numeric.adaptive.RMSProp`, whose discrete process
            then plays GD's part (its distances are ``distance_to_discrete``).
    """
    from derive.errors import DeriveInputError

    if not (isinstance(eta, (int, float)) and eta > 0 and np.isfinite(eta)):
        raise DeriveInputError(f"lr: must be a positive number, got {eta!r}")
    if not (isinstance(steps, (int, np.integer)) and steps > 0):
        raise DeriveInputError(f"steps: must be a positive integer, got {steps!r}")
    flows = check_flows(process_names(optimizer) if flows is None else flows, optimizer)
    # η is the argument: settings carry only the numerics; a different η inside them is an error, not ignored
    if settings is not None and settings.eta is not None and settings.eta != eta:
        raise DeriveInputError(f"settings: eta = {settings.eta} differs from the learning rate {eta!r} passed to "
                               "run; pass it once, as run's argument")
    s = dataclasses.replace(settings or Settings(), eta=float(eta))
    disc = discrete_name(optimizer)
    steps = int(steps)
    w0 = jnp.asarray(problem.init, dtype=jnp.result_type(float))
    bound = loss_bound if loss_bound is not None else 1e6 * (abs(float(problem.loss(w0))) + 1.0)
    keep_w = keeps_w(problem, keep_w)
    result = RunResult(problem, s, steps, optimizer=optimizer)
    order = [disc] + [f for f in flows if f != disc] if disc in flows else flows

    def built(name, eta):
        """Process ``name`` and its logger at learning rate ``eta``: a float here, a traced argument
        inside the compiled chunks (one program for every η)."""
        p = make_process(name, problem, dataclasses.replace(s, eta=eta), optimizer)
        return p, _logger(p, disc, with_ref=(disc in flows and name != disc), keep_w=keep_w or name == disc)
    procs = {name: built(name, s.eta) for name in order}
    if sink is not None:
        shapes = {name: {k: v.shape for k, v in jax.eval_shape(lambda w, p=p, f=f: f(p.init(w), w), w0).items()
                         if k not in ("finite",) and (k != "w" or keep_w)}
                  for name, (p, f) in procs.items()}
        sink.start(shapes)
    reference = _trajectory(sink, steps + 1, w0) if disc in flows and len(flows) > 1 else None
    stop = should_stop or (lambda: False)
    try:
        for name, (proc, _) in procs.items():
            restored = sink.restored(name) if hasattr(sink, "restored") else None
            if result.interrupted or (restored is None and stop()):
                result.interrupted = True
                _not_run(result, name, "not started (interrupted)")
            elif stop_if_gd_diverges and result.status.get(disc, "ok") != "ok":
                _not_run(result, name, f"skipped: {disc} diverged")
            else:
                one = _Runner(proc, functools.partial(built, name), s.eta, steps, chunk, bound, progress, sink,
                              keep_w, record=reference if name == disc else None,
                              reference=reference if name != disc else None, should_stop=stop)
                result.series[name], result.status[name], result.notes[name] = one.run(w0, restored)
                result.wall_seconds[name] = one.wall_seconds
                result.compile_seconds[name], result.compiles[name] = one.compile_seconds, one.compiles
                result.interrupted = result.interrupted or result.status[name].startswith("interrupted")
    finally:
        if reference is not None:
            reference.close()
    return result


def check_flows(flows, optimizer=None) -> list[str]:
    """The process names, deduplicated in order; a one-line error naming ``flows`` if any is unknown."""
    from derive.errors import DeriveInputError

    names = process_names(optimizer)
    flows = list(dict.fromkeys(flows))
    unknown = [f for f in flows if f not in names]
    if unknown or not flows:
        with_opt = "" if optimizer is None else f" with --optimizer {optimizer.name}"
        raise DeriveInputError(f"flows: unknown {unknown}{with_opt}; expected some of {list(names)}")
    return flows


def _logger(proc, disc: str, with_ref: bool, keep_w: bool):
    """``(state, w_ref) -> log``: the process's observation plus distances to the discrete process
    (GD or the optimizer) and a finiteness flag."""
    key = reference_key(disc)

    def log(state, w_ref):
        out = dict(proc.observe(state))
        w = out["w"]
        out["finite"] = jnp.all(jnp.isfinite(w))
        eig = state.eig
        if with_ref:
            d = w_ref - w
            out[f"distance_to_{key}"] = jnp.linalg.norm(d)
            out[f"{key}_offset"] = jnp.where(jnp.isnan(eig.vals), jnp.nan, eig.vecs.T @ d)
        elif proc.name == disc:
            out[f"distance_to_{key}"] = jnp.zeros((), w.dtype)
            out[f"{key}_offset"] = jnp.where(jnp.isnan(eig.vals), jnp.nan, 0.0).astype(w.dtype)
        if not keep_w:
            out.pop("w")
        if "nu_vector" in out and w.shape[0] > KEEP_W_LIMIT:   # the diagonal ν, per row, for small models only
            out.pop("nu_vector")
        return out
    return log


def _trajectory(sink, rows, w0):
    """GD's iterates (row k = w_k; unwritten rows read NaN): where the sink keeps them, else in
    memory, or in a temporary file when large."""
    from .rundir import Trajectory

    n, dtype = w0.shape[0], np.dtype(w0.dtype)
    if hasattr(sink, "trajectory"):
        traj = sink.trajectory(rows, n, dtype)
    elif rows * n * dtype.itemsize > 256 * 2**20:
        import tempfile
        tmp = tempfile.TemporaryDirectory(prefix="gdflows-gd-")
        traj = Trajectory(rows, n, dtype, path=Path(tmp.name) / "w.f8")
        traj.tmp = tmp   # removed with the trajectory
    else:
        traj = Trajectory(rows, n, dtype)
    if traj.valid == 0:
        traj.write(0, np.asarray(w0)[None])
    return traj


def _not_run(result, name, status):
    result.status[name], result.notes[name], result.wall_seconds[name] = status, [], 0.0
    result.series[name] = {}


class _Runner:
    """One process: ahead-of-time compiled chunked scans, host checks, writes and checkpoints between
    chunks."""

    def __init__(self, proc, traced, eta, steps, chunk, bound, progress, sink, keep_w, record, reference,
                 should_stop):
        # traced(eta) -> (process, logger): built inside the compiled programs, where η is an argument
        self.proc, self.traced, self.eta = proc, traced, eta
        self.steps, self.chunk, self.bound = steps, chunk, bound
        self.progress, self.sink, self.keep_w = progress, sink, keep_w
        self.record, self.reference, self.should_stop = record, reference, should_stop
        self.compile_seconds, self.compiles, self._compiled = 0.0, 0, {}
        self.wall_seconds = 0.0

    def _scan(self, state, xs):
        key = xs.shape[0]
        if key not in self._compiled:
            def chunk(st, x, eta):
                proc, log = self.traced(eta)

                def body(st, w_gd):
                    st = proc.step(st)
                    return st, log(st, w_gd)
                return jax.lax.scan(body, st, x)
            t0 = time.perf_counter()
            self._compiled[key] = jax.jit(chunk).lower(state, xs, self.eta).compile()
            self.compile_seconds += time.perf_counter() - t0
            self.compiles += 1
        return self._compiled[key](state, xs, self.eta)

    def _gd_rows(self, start, n, w0):
        if self.reference is None:
            return jnp.zeros((n, 0), w0.dtype)
        return jnp.asarray(self.reference.read(start, n))

    def run(self, w0, restored=None):
        """``(series, status, notes)``; ``restored`` = ``(entry, state leaves, stored series)`` to continue."""
        t0 = time.perf_counter()
        proc, steps = self.proc, self.steps
        state = proc.init(w0)
        first = jax.jit(lambda st, w, eta: self.traced(eta)[1](st, w))(state, self._gd_rows(0, 1, w0)[0], self.eta)
        first = jax.tree_util.tree_map(np.asarray, first)
        self.compile_seconds += time.perf_counter() - t0   # (mostly compiling the init and log programs)
        series = {k: np.full((steps + 1,) + np.shape(v), np.nan) for k, v in first.items()
                  if k != "finite" and (k != "w" or self.keep_w)}
        notes: list = []
        if restored is not None:
            entry, leaves, stored = restored
            done, notes = int(entry["done"]), list(entry.get("notes", []))
            self.wall_seconds = float(entry.get("wall_seconds", 0.0))
            for k, v in stored.items():
                if k in series:
                    series[k][:done + 1] = v[:done + 1]
            if entry["status"] != "running":
                return series, entry["status"], notes
            from .rundir import state_from
            state = state_from(state, leaves)
        else:
            done = 0
            self._store(series, first, 0, 1)
            if not (first["finite"] and np.isfinite(first["loss"])):
                return self._finish(series, _bad_start(proc, w0), notes, 0, t0)
        status = "ok"
        while done < steps:
            n = min(self.chunk, steps - done)
            new_state, logs = self._scan(state, self._gd_rows(done + 1, n, w0))
            logs = jax.tree_util.tree_map(np.asarray, logs)
            bad = _first_bad(logs, self.bound)
            keep = n if bad is None else bad[0]
            self._store(series, logs, done + 1, keep)
            if bad is not None:
                done += keep
                status = f"{bad[1]} at step {done + 1}: {bad[2]}"
                break
            done, state = done + n, new_state
            if self.progress:
                self.progress(proc.name, done, steps)
            if done < steps:
                self._checkpoint(done, "running", notes, t0, state)
                if self.should_stop():
                    status = f"interrupted at step {done}"
                    break
        return self._finish(series, status, notes, done, t0)

    def _checkpoint(self, done, status, notes, t0, state=None):
        if hasattr(self.sink, "checkpoint"):
            entry = {"done": done, "status": status, "notes": notes,
                     "wall_seconds": self.wall_seconds + time.perf_counter() - t0}
            self.sink.checkpoint(self.proc.name, entry, state)

    def _store(self, series, logs, start, keep):
        if keep == 0:
            return
        rows = {k: np.asarray(v)[:keep] if start else np.asarray(v)[None] for k, v in logs.items() if k != "finite"}
        if self.record is not None:
            self.record.write(start, rows["w"])
        if not self.keep_w:
            rows.pop("w", None)
        for k, v in rows.items():
            series[k][start:start + keep] = v
        if self.sink is not None:
            self.sink.write(self.proc.name, rows, start)

    def _finish(self, series, status, notes, done, t0):
        if "eig_converged" in series:
            failures = int(np.sum(series["eig_converged"][1:done + 1] == 0))
            text = f"eigensolver did not converge at {failures} step(s)"
            if failures and text not in notes:
                notes = [n for n in notes if not n.startswith("eigensolver did not converge")] + [text]
                warnings.warn(f"{self.proc.name}: " + text, RuntimeWarning, stacklevel=4)
        if not status.startswith("interrupted"):   # an interrupted process keeps its running checkpoint
            self._checkpoint(done, status, notes, t0)
        self.wall_seconds += time.perf_counter() - t0
        return series, status, notes


def _bad_start(proc, w0) -> str:
    """Why a process cannot start: the initial point itself, or (e.g. the midpoint's first GD step
    overflowing) the process's own initial state."""
    w0 = np.asarray(w0)
    if not np.all(np.isfinite(w0)):
        return "diverged at step 0: the initial point is not finite"
    return (f"diverged at step 0: the {proc.name} process's initial state gives a non-finite value "
            "(the initial point itself is finite)")


def _first_bad(logs, bound):
    """(index, kind, reason) of the first step with a non-finite state, a loss above ``bound``, or a
    failed ODE solve (the state after a failed solve is not the flow's, so it is not kept)."""
    finite, loss = logs["finite"], logs["loss"]
    nonfinite = ~finite.astype(bool) | ~np.isfinite(loss)
    above = np.isfinite(loss) & (loss > bound)
    failed = ~logs["solver_ok"].astype(bool) if "solver_ok" in logs else np.zeros_like(nonfinite)
    idx = np.flatnonzero(nonfinite | above | failed)
    if idx.size == 0:
        return None
    i = int(idx[0])
    if failed[i]:
        return i, "failed", "the ODE solver could not finish the step (max_steps or step size too small)"
    return i, "diverged", ("non-finite parameters or loss" if nonfinite[i]
                           else f"loss {loss[i]:.3g} above bound {bound:.3g}")


def _last_finite(x):
    idx = np.flatnonzero(np.isfinite(x))
    return float(x[idx[-1]]) if idx.size else None


def summarize(result: RunResult) -> dict:
    """The ``summary.json`` content: per process final/tail metrics (see the CLI docs)."""
    disc = result.discrete
    key = reference_key(disc)
    out = {"problem": result.problem.name, "lr": result.settings.eta, "steps": result.steps,
           "n_params": result.problem.n, "processes": list(result.series), "discrete": disc,
           "status": "interrupted" if result.interrupted else "complete"}
    if result.optimizer is not None:
        out["optimizer"] = dataclasses.asdict(result.optimizer)
    tail = max(1, result.steps // 10)
    for name, ser in result.series.items():
        entry = {"status": result.status[name], "notes": result.notes[name],
                 "wall_seconds": result.wall_seconds[name]}
        out[name] = entry
        if "loss" not in ser:
            entry["steps_reached"] = 0
            continue
        loss = ser["loss"]
        reached = np.flatnonzero(np.isfinite(loss))
        last = int(reached[-1]) if reached.size else 0
        entry.update(steps_reached=last, compile_seconds=result.compile_seconds.get(name),
                     compiles=result.compiles.get(name),
                     final_loss=float(loss[last]),
                     mean_loss_tail=float(np.nanmean(loss[-tail:])) if np.isfinite(loss[-tail:]).any() else None,
                     final_sharpness=_last_finite(ser["eigs"][:last + 1, 0]))
        # effective sharpness: λ_max(P⁻¹H), = ηS for GD; the optimizers' eigs are already effective
        eff = entry["final_sharpness"]
        entry["final_effective_sharpness"] = None if eff is None else (eff * result.settings.eta if disc == "gd" else eff)
        if "w" in ser:
            entry["final_params"] = result.problem.named(ser["w"][last])
        if f"distance_to_{key}" in ser:
            dist = ser[f"distance_to_{key}"]
            entry["final_distance_to_discrete"] = float(dist[last])
            entry["max_distance_to_discrete"] = float(np.nanmax(dist[:last + 1]))
            if key == "gd":
                entry["final_distance_to_gd"] = entry["final_distance_to_discrete"]
                entry["max_distance_to_gd"] = entry["max_distance_to_discrete"]
        run_seconds = result.wall_seconds[name] - (result.compile_seconds.get(name) or 0.0)
        entry["seconds_per_step"] = run_seconds / max(last, 1)
        if "eig_matvecs" in ser:   # full eigen-solves: rows with fresh eigenvalues after the start
            fresh = np.isfinite(ser["eigs"][1:last + 1, 0])
            entry["eig_solves"] = int(fresh.sum())
            entry["eig_matvecs_per_solve"] = float(np.mean(ser["eig_matvecs"][1:last + 1][fresh])) if fresh.any() else None
        if "nu" in ser:
            entry["final_nu"] = float(ser["nu"][last])
            entry["mean_nu_tail"] = float(np.nanmean(ser["nu"][-tail:])) if np.isfinite(ser["nu"][-tail:]).any() else None
        if name == "cf":
            entry["final_predicted_loss"] = float(ser["predicted_loss"][last])
            entry["final_sigma_trace"] = float(ser["sigma_trace"][last])
    return out
