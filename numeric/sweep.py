"""``gdflows sweep`` and ``gdflows merge``: the main job over a grid of options (learning rates, seeds, …).

Every run of the grid is one ``compare`` run (:func:`numeric.compare.compare`, the same code path),
written into the sweep's directory::

    DIR/run.json                the sweep: its grid (axes and the options shared by every run)
    DIR/runs/<id>/              each run's own directory (results.h5, summary.json, checkpoints):
                                an interrupted sweep resumes run by run (``--resume DIR``)
    DIR/sweep.h5                one HDF5 file, a group per run (format ``gdflows-sweep``):
                                /<id>/<process>/<series>, the group's attrs its options and status
    DIR/sweep.json, sweep.csv   one row per run: its options, status, edge onset, sharpness
                                deviations, CF/GF distance ratio, time-averaged and predicted loss
    DIR/sweep_sharpness.png     sharpness against steps for every η with its 2/η line
    DIR/sweep_ratio.png         final ‖w_GD − w_CF‖ / ‖w_GD − w_GF‖ against η
    DIR/sweep_loss.png          predicted against measured time-averaged loss over the edge phase

Runs are spread over every visible JAX device (one run per device at a time, each pinned with
``jax.default_device``); ``--shard I/N`` runs the I-th of N round-robin slices of the grid (a
cluster's job array), and ``merge`` joins slices into one directory as if the sweep had run in
one go.
"""
from __future__ import annotations

import csv
import itertools
import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import metrics

__all__ = ["Grid", "sweep", "merge", "assemble", "SWEEP_FORMAT"]

SWEEP_FORMAT = "gdflows-sweep"
_SHORT = {"lr": "lr", "seed": "seed", "steps": "steps", "beta2": "b2", "widths": "w", "activation": "act",
          "loss": "loss", "optimizer": "opt", "model": "model", "n": "n", "classes": "c", "eps": "eps"}


@dataclass(frozen=True)
class Grid:
    """A sweep: ``axes`` (option, values) in the order given, and ``base``: the options every run
    shares. ``explicit``: the options the user set (the rest take the optimizer's or problem's defaults)."""

    axes: tuple
    base: dict
    explicit: tuple

    def points(self) -> list[tuple[str, dict]]:
        """``(run id, {option: value})`` for every point of the grid, in order (last axis fastest)."""
        names = [k for k, _ in self.axes]
        out = []
        for i, values in enumerate(itertools.product(*(v for _, v in self.axes))):
            point = dict(zip(names, values))
            label = "-".join(f"{_SHORT.get(k, k)}{_text(v)}" for k, v in point.items())
            out.append((f"{i:03d}" + (f"-{label}" if label else ""), point))
        return out

    def config(self, point: dict):
        from .config import config_from
        return config_from({**self.base, **point}, set(self.explicit) | set(point))

    def spec(self) -> dict:
        return {"axes": [[k, list(v)] for k, v in self.axes], "base": self.base, "explicit": sorted(self.explicit)}

    @classmethod
    def from_spec(cls, spec: dict) -> "Grid":
        axes = tuple((k, tuple(tuple(x) if isinstance(x, list) else x for x in v)) for k, v in spec["axes"])
        base = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["base"].items()}
        return cls(axes, base, tuple(spec["explicit"]))


def _text(v) -> str:
    if isinstance(v, (tuple, list)):
        return "x".join(map(str, v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` → (I, N) with 1 ≤ I ≤ N; one-line errors naming ``--shard``."""
    from derive.errors import DeriveInputError

    if text is None:
        return None
    try:
        i, n = (int(t) for t in text.split("/"))
    except ValueError:
        raise DeriveInputError(f"--shard: expected I/N (the I-th of N slices, 1 ≤ I ≤ N), got {text!r}") from None
    if not 1 <= i <= n:
        raise DeriveInputError(f"--shard: expected 1 ≤ I ≤ N, got {text!r}")
    return i, n


def sweep(grid: Grid, out, *, shard: tuple[int, int] | None = None, overwrite: bool = False, resume: bool = False,
          figures: bool = True, echo=print, should_stop=None, devices=None) -> dict:
    """Run the grid (or its ``shard`` slice) into ``out``; write the sweep files; return the sweep summary.

    Every run's configuration is checked before anything is created. A run whose discrete process
    diverges is kept (status and results so far) and the sweep goes on.

    Raises:
        DeriveInputError: a bad option in any run, or a bad ``out`` (before anything is created).
        Interrupted: ``should_stop`` stopped the sweep (every finished run is kept; ``--resume``).
    """
    import jax

    from derive.errors import DeriveInputError

    from .budget import check_compare
    from .config import check_config
    from .driver import check_flows
    from .recorder import Interrupted, open_run_directory

    points = grid.points()
    if shard is not None:
        points = [p for k, p in enumerate(points) if k % shard[1] == shard[0] - 1]
    configs = {}
    for run_id, point in points:
        cfg = grid.config(point)
        try:
            check_config(cfg)
            check_flows(cfg.flows, cfg.optimizer_settings())
        except DeriveInputError as err:
            raise DeriveInputError(f"{err} (run {run_id})") from None
        check_compare(cfg, out)
        configs[run_id] = cfg
    spec = json.loads(json.dumps({**grid.spec(), "shard": list(shard) if shard else None}))   # as stored
    directory = open_run_directory(out, command="sweep", options={"grid": spec}, overwrite=overwrite, resume=resume)
    out = directory.path
    (out / "runs").mkdir(exist_ok=True)
    devices = list(devices or jax.devices())
    echo(f"gdflows sweep: {len(points)} runs" + (f" (slice {shard[0]}/{shard[1]} of {len(grid.points())})"
                                                 if shard else "") + f" on {len(devices)} device(s), output {out}")
    t0 = time.perf_counter()
    stop = should_stop or (lambda: False)
    lock = threading.Lock()
    todo = list(configs.items())
    stopped: list = []

    def worker(device):
        while True:
            with lock:
                if not todo or stopped:
                    return
                run_id, cfg = todo.pop(0)
            try:
                with jax.default_device(device):
                    line = _run_one(run_id, cfg, out / "runs" / run_id, stop, device)
            except BaseException as err:   # a signal, a full disk: the other workers stop after their run
                with lock:
                    stopped.append(err)
                return
            with lock:
                echo(line)

    _prepare_derivations(next(iter(configs.values())))
    try:
        if len(devices) == 1:
            worker(devices[0])
        else:
            threads = [threading.Thread(target=worker, args=(d,), daemon=True) for d in devices[:len(todo)]]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        summary = assemble(out, grid, figures=figures, wall_seconds=time.perf_counter() - t0, shard=shard)
    except BaseException:
        directory.release()
        raise
    directory.write_manifest(status="interrupted" if stopped else "complete")
    directory.release()
    print_table(summary, echo)
    if stopped and not isinstance(stopped[0], Interrupted):
        raise stopped[0]
    if stopped:
        raise Interrupted(getattr(should_stop, "signum", None) or 2,
                          f"interrupted: the runs finished so far are kept in {out}; continue with "
                          f"gdflows sweep --resume {out}")
    return summary


def _prepare_derivations(cfg) -> None:
    """Build the processes' symbolic formulas once in this thread (SymPy's caches are not thread-safe)."""
    from .compare import build_processes
    from .config import build_problem

    build_processes(cfg, build_problem(cfg))


def _run_one(run_id: str, cfg, path: Path, stop, device) -> str:
    """One run of the sweep (resumed where it was interrupted, skipped where complete): its table line."""
    from derive.errors import DeriveInputError

    from .compare import compare
    from .recorder import Finished
    from .rundir import run_status

    t0 = time.perf_counter()
    resume = path.is_dir() and (path / "run.json").exists()
    if resume and run_status(path) == "complete":
        return f"  {run_id}: complete (kept)"
    where = f"  {run_id} on {device}"
    try:
        summary = compare(cfg, path, resume=resume, progress=False, figures=False, echo=lambda *a: None,
                          should_stop=stop)
    except Finished:
        return f"  {run_id}: complete (kept)"
    except DeriveInputError as err:   # the discrete process diverged: its results so far are kept
        return f"{where}: {err}"
    eos = summary.get("eos", {})
    state = (f"edge at step {eos['discrete_onset']}" if eos.get("edge_reached")
             else "edge not reached" if "edge_reached" in eos else "no sharpness")
    return f"{where}: {state}, {time.perf_counter() - t0:.0f} s"


# ------------------------------------------------------------------------------------------ assembling
def assemble(out, grid: Grid, *, figures: bool = True, wall_seconds: float | None = None, shard=None) -> dict:
    """Write ``sweep.h5``, ``sweep.json``, ``sweep.csv`` and the figures from the run directories in ``out``."""
    from .results import read_results, read_summary, write_summary

    out = Path(out)
    rows, series = [], {}
    points = grid.points()
    wanted = [p for k, p in enumerate(points) if shard is None or k % shard[1] == shard[0] - 1]
    missing = []
    for run_id, point in wanted:
        path = out / "runs" / run_id
        if not (path / "summary.json").exists():
            missing.append(run_id)
            continue
        summary, res = read_summary(path / "summary.json"), read_results(path / "results.h5")
        rows.append(_row(run_id, point, summary, res))
        series[run_id] = res
    _write_h5(out / "sweep.h5", grid, rows, series, shard)
    result = {"format": SWEEP_FORMAT, "grid": grid.spec(), "shard": list(shard) if shard else None,
              "runs": rows, "missing": missing, "wall_seconds": wall_seconds}
    write_summary(out / "sweep.json", result)
    _write_csv(out / "sweep.csv", rows)
    if figures and rows:
        from .sweep_figures import sweep_figures
        result["figures"] = [p.name for p in sweep_figures(rows, series, out)]
    return result


def _row(run_id: str, point: dict, summary: dict, res) -> dict:
    """One run's line of the sweep table, computed from its summary and series."""
    disc = summary.get("discrete", "gd")
    eos = summary.get("eos", {})
    ratio = None
    stable = "gf" if disc == "gd" else "sf"
    if "cf" in summary and stable in summary:
        key = "final_distance_to_discrete"
        cf, sf = summary["cf"].get(key), summary[stable].get(key)
        ratio = cf / sf if cf is not None and sf else None
    measured = predicted = None
    onset = eos.get("discrete_onset")
    if onset is not None and "cf" in res and "predicted_loss" in res["cf"]:
        avg = metrics.sliding_mean(res[disc]["loss"], eos.get("window", metrics.DEFAULT_WINDOW))[onset:]
        pred = res["cf"]["predicted_loss"][onset:]
        ok = np.isfinite(avg) & np.isfinite(pred)
        if ok.any():
            measured, predicted = float(avg[ok].mean()), float(pred[ok].mean())
    checks = summary.get("acceptance", [])
    return {"id": run_id, **{k: list(v) if isinstance(v, tuple) else v for k, v in point.items()},
            "lr": summary["lr"], "seed": summary["config"].get("seed"), "status": summary.get("status"),
            "discrete": disc, "edge_reached": eos.get("edge_reached"), "onset": onset,
            "peak_over_edge": (eos["discrete_sharpness_peak"] / eos["edge"]) if eos.get("discrete_sharpness_peak")
            is not None else None,
            "discrete_max_rel_dev": eos.get("discrete_sharpness_max_rel_dev"),
            "cf_max_rel_dev": eos.get("cf_sharpness_max_rel_dev"), "cf_over_stable": ratio,
            "measured_loss": measured, "predicted_loss": predicted,
            "passed": sum(c["passed"] is True for c in checks), "failed": sum(c["passed"] is False for c in checks),
            "not_applicable": sum(c["passed"] is None for c in checks),
            "wall_seconds": sum(summary[p].get("wall_seconds", 0) for p in summary.get("processes", []))}


def _write_h5(path: Path, grid: Grid, rows, series, shard) -> None:
    import h5py

    from .results import provenance

    tmp = path.with_suffix(".h5.tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["format"], f.attrs["format_version"] = SWEEP_FORMAT, 1
        f.attrs["grid"] = json.dumps(grid.spec())
        f.attrs["shard"] = json.dumps(list(shard) if shard else None)
        for k, v in provenance().items():
            f.attrs[k] = v
        for row in rows:
            g = f.create_group(row["id"])
            g.attrs["row"] = json.dumps({k: v for k, v in row.items()}, default=float)
            g.attrs["status"] = str(row["status"])
            for proc, data in series[row["id"]].items():
                pg = g.create_group(proc)
                for name, arr in data.items():
                    pg.create_dataset(name, data=arr)
    tmp.replace(path)


_CSV = ("id", "lr", "seed", "status", "edge_reached", "onset", "peak_over_edge", "discrete_max_rel_dev",
        "cf_max_rel_dev", "cf_over_stable", "measured_loss", "predicted_loss", "passed", "failed",
        "not_applicable", "wall_seconds")


def _write_csv(path: Path, rows) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(_CSV)
        for row in rows:
            w.writerow(["" if row.get(k) is None else row.get(k) for k in _CSV])


def read_sweep(path) -> dict:
    """``{run id: {process: {series: array}}}`` from ``sweep.h5`` (a directory or the file), with
    ``"_rows"``: the table rows and ``"_grid"``: the grid spec."""
    import h5py

    path = Path(path)
    path = path / "sweep.h5" if path.is_dir() else path
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != SWEEP_FORMAT:
            from derive.errors import DeriveInputError
            raise DeriveInputError(f"path: {str(path)!r} is not a {SWEEP_FORMAT} file")
        out = {rid: {p: {k: ds[()] for k, ds in pg.items()} for p, pg in g.items()} for rid, g in f.items()}
        out["_rows"] = [json.loads(f[rid].attrs["row"]) for rid in f]
        out["_grid"] = json.loads(f.attrs["grid"])
    return out


def print_table(summary: dict, echo=print) -> None:
    rows = summary["runs"]
    echo(f"{'run':28s} {'status':9s} {'edge':>5s} {'peak/edge':>9s} {'disc dev':>8s} {'CF dev':>8s} "
         f"{'CF/GF':>7s} {'loss':>8s} {'pred':>8s} {'checks':>10s}")
    for r in rows:
        def f(key, spec):
            v = r.get(key)
            return f"{'—':>{spec[0]}s}" if v is None else format(v, spec[0] + spec[1])
        onset = "—" if r["onset"] is None else str(r["onset"])
        echo(f"{r['id'][:28]:28s} {str(r['status'])[:9]:9s} {onset:>5s} {f('peak_over_edge', ('9', '.3f'))} "
             f"{f('discrete_max_rel_dev', ('8', '.3f'))} {f('cf_max_rel_dev', ('8', '.2e'))} "
             f"{f('cf_over_stable', ('7', '.3f'))} {f('measured_loss', ('8', '.4f'))} "
             f"{f('predicted_loss', ('8', '.4f'))} {r['passed']:>3d}/{r['failed']}/{r['not_applicable']:<3d}")
    if summary.get("missing"):
        echo(f"missing runs (not run yet, or in another slice): {', '.join(summary['missing'])}")
    echo("checks: passed/failed/not applicable; peak/edge: largest sharpness over 2/η (effective: over 2)")


# ------------------------------------------------------------------------------------------ merging
def merge(sources, out, *, overwrite: bool = False, figures: bool = True, echo=print) -> dict:
    """Join the slices (``--shard``) of one sweep into ``out``, as if the sweep had run in one go.

    Raises:
        DeriveInputError: a source that is not a sweep directory, slices of different sweeps, one
            run in two slices with different results, or a bad ``out``.
    """
    from derive.errors import DeriveInputError

    from .recorder import open_run_directory
    from .rundir import LOCK, RunDirectory, run_status

    if not sources:
        raise DeriveInputError("sources: name the sweep directories to merge")
    grids = []
    for src in map(Path, sources):
        manifest = RunDirectory(src).manifest() if src.is_dir() else {}
        if manifest.get("command") != "sweep":
            raise DeriveInputError(f"sources: {str(src)!r} is not a gdflows sweep directory (no sweep run.json)")
        if run_status(src) == "running":
            raise DeriveInputError(f"sources: {str(src)!r} is being written by a running sweep")
        spec = dict(manifest["options"]["grid"])
        spec.pop("shard", None)
        grids.append(spec)
    if any(json.dumps(g, sort_keys=True) != json.dumps(grids[0], sort_keys=True) for g in grids[1:]):
        raise DeriveInputError("sources: the directories hold different sweeps (their grids differ)")
    grid = Grid.from_spec(grids[0])
    ids = {rid for rid, _ in grid.points()}
    found: dict = {}
    for src in map(Path, sources):
        for run in sorted((src / "runs").glob("*")):
            if run.name not in ids or not (run / "summary.json").exists():
                continue
            if run.name in found and (run / "summary.json").read_bytes() != (found[run.name] / "summary.json").read_bytes():
                if json.loads((run / "summary.json").read_text()).get("status") == "complete" and \
                        json.loads((found[run.name] / "summary.json").read_text()).get("status") == "complete":
                    raise DeriveInputError(f"sources: run {run.name} is in {str(found[run.name].parent.parent)!r} "
                                           f"and {str(src)!r} with different results")
            found.setdefault(run.name, run)
    directory = open_run_directory(out, command="sweep", options={"grid": {**grid.spec(), "shard": None}},
                                   overwrite=overwrite, resume=False)
    out = directory.path
    status = "failed"
    try:
        (out / "runs").mkdir()
        for rid, run in found.items():
            shutil.copytree(run, out / "runs" / rid, ignore=shutil.ignore_patterns(LOCK))
        summary = assemble(out, grid, figures=figures, wall_seconds=None)
        status = "complete"
    finally:
        directory.write_manifest(status=status)
        directory.release()
    echo(f"gdflows merge: {len(found)} of {len(ids)} runs from {len(sources)} directories into {out}")
    print_table(summary, echo)
    return summary
