"""The experiment layer: one configuration (:class:`CompareConfig`) and one code path
(:func:`compare`) behind ``gdflows compare``, ``gdflows run`` (toy problems and losses typed as
text, files only with ``--out``), ``gdflows sweep`` (one :func:`compare` per grid point) and
``numeric.compare`` (your own problem). The learning rate is ``lr`` here, in the CLI and in every
file; the processes, which evaluate the derived formulas, call it η (``Settings.eta``, set once by
:func:`numeric.driver.run` from its argument).

``gdflows compare`` is the main job. With no arguments it trains the default digits MLP (:data:`DEFAULT`) at a learning
rate where GD sharpens progressively and then reaches the edge of stability within the run, and
writes to a new output directory:

* ``results.h5`` — every series of every process, written chunk by chunk as the run goes (layout
  in :mod:`numeric.results`); an interrupted run keeps what it had, unreached steps are NaN;
* ``summary.json`` — per process ``final_loss``, ``final_distance_to_gd``, ``max_distance_to_gd``,
  ``final_sharpness``, ``wall_seconds`` (…), for ``cf`` also ``predicted_loss_rel_err`` and
  ``sharpness_max_rel_dev``, an ``eos`` block (onsets, GD's deviation from 2/η, MF vs GF before
  the edge) and the ``acceptance`` checks;
* ``loss.png``, ``sharpness.png``, ``distance.png``, ``variance.png`` (:mod:`numeric.figures`).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import metrics
from .config import (DEFAULT, CompareConfig, build_problem, check_config, config_from,  # noqa: F401 (re-exported)
                     config_record, experiment, process_settings, settings_for)

if TYPE_CHECKING:
    from .problem import Problem

__all__ = ["CompareConfig", "DEFAULT", "build_problem", "compare", "config_from", "eos_summary", "experiment",
           "print_table"]


def eos_summary(series: dict, eta: float, window: int = metrics.DEFAULT_WINDOW, discrete: str = "gd") -> dict:
    """Edge-of-stability metrics: onsets, the discrete process's and CF's deviation from the edge,
    CF's loss (and ν) prediction, MF vs GF.

    GD's edge is S = 2/η; an adaptive optimizer's is an effective sharpness of 2 (its ``eigs`` are
    effective already), which the metrics see as η = 1. Keys: ``discrete_*`` for every run and
    the same values under ``gd_*`` for GD runs.
    """
    units = eta if discrete == "gd" else 1.0
    out: dict = {"discrete": discrete, "edge": 2.0 / units, "window": window}
    if discrete == "gd":
        out["two_over_lr"] = 2.0 / eta
    disc = series.get(discrete, {})
    if "eigs" not in disc:
        return out
    # an adaptive optimizer starts with a tiny ν (S_eff ≫ 2 for a few steps): its edge is the
    # first return to 2 after it has been below
    top = np.asarray(disc["eigs"][:, 0], dtype=np.float64)
    onset = metrics.eos_onset(top, units, from_below=discrete != "gd")
    out["discrete_onset"] = onset
    out["discrete_sharpness_peak"] = float(np.nanmax(top))
    out["edge_reached"] = onset is not None
    if onset is None:
        # an adaptive optimizer's peak counts from its first step below the edge (its start is above)
        below = np.flatnonzero(np.isfinite(top) & (top < out["edge"])) if discrete != "gd" else [0]
        tail = top[below[0]:] if len(below) else top[:0]
        peak = float(np.nanmax(tail)) if np.isfinite(tail).any() else None
        out["edge_message"] = metrics.edge_message(discrete, peak, out["edge"], stayed_above=not len(below))
    out["discrete_sharpness_max_rel_dev"] = metrics.sharpness_max_rel_dev(disc["eigs"][:, 0], units, onset)
    cf = series.get("cf", {})
    if "sigma_trace" in cf:
        start = metrics.cf_onset(cf["sigma_trace"])
        out["cf_onset"] = start
        out["cf_sharpness_max_rel_dev"] = metrics.sharpness_max_rel_dev(cf["eigs"][:, 0], units, start)
        out["cf_predicted_loss_rel_err"] = metrics.predicted_loss_rel_err(cf["predicted_loss"], disc["loss"], onset,
                                                                          window)
        if "nu" in cf and "nu" in disc:
            out["cf_predicted_nu_rel_err"] = metrics.predicted_loss_rel_err(cf["nu"], disc["nu"], onset, window)
    if discrete == "gd":
        out.update({f"gd_{k[len('discrete_'):]}": v for k, v in list(out.items()) if k.startswith("discrete_")})
    mf, gf = series.get("mf", {}), series.get("gf", {})
    if onset != 0 and "distance_to_gd" in mf and "distance_to_gd" in gf:
        before = slice(0, None if onset is None else onset + 1)   # never at the edge: the whole run
        out["mf_max_distance_before_eos"] = float(np.nanmax(mf["distance_to_gd"][before]))
        out["gf_max_distance_before_eos"] = float(np.nanmax(gf["distance_to_gd"][before]))
        out["mf_vs_gf_before_eos"] = out["mf_max_distance_before_eos"] / max(out["gf_max_distance_before_eos"], 1e-300)
    return out


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="step", disable=not enabled, dynamic_ncols=True, file=sys.stderr)
    last: dict = {}

    def update(process, done, steps):
        bar.set_description(process)
        bar.update(done - last.get(process, 0))
        last[process] = done
    return bar, update


def compare(what: "CompareConfig | Problem" = DEFAULT, out: str | Path | None = None, *, overwrite: bool = False,
            progress: bool = True, figures: bool = True, echo=print, resume: bool = False,
            should_stop=None, extra_options: dict | None = None, write: bool = True, checks: bool = True,
            keep_w: bool | None = False, stop_if_diverged: bool = True, command: str = "compare",
            **options) -> dict:
    """Run an experiment, write results, summary and figures into ``out``; return the summary.

    Your own model::

        problem = numeric.from_jax(loss_fn, params)       # any pytree of parameters
        summary = numeric.compare(problem, lr=0.1, steps=300, flows=("gd", "gf", "cf"), out="runs/mine")

    Results are written after every chunk, with a checkpoint of every process (see
    :mod:`numeric.recorder`); ``summary.json`` is written before anything is printed.

    Args:
        what: a :class:`CompareConfig` (the built-in data and models, a registered toy problem or a
            loss typed as text) or a :class:`~numeric.problem.Problem` of your own (``from_jax``,
            ``from_sympy``); for a problem ``lr`` is required, its precision is JAX's
            (``jax_enable_x64``), and the data and model options do not apply.
        out: a new output directory (default ``gdflows-runs/compare-<name>-<time>``).
        options: :class:`CompareConfig` fields replacing those of ``what`` (``lr``, ``steps``,
            ``flows``, ``optimizer``, ``beta2``, ``k_max``, …).
        resume: continue the interrupted or killed run in ``out`` (``cfg`` must be the one it
            was started with).
        should_stop: polled after every chunk (e.g. :class:`numeric.recorder.StopOnSignal`); when
            it returns true the run stops there, writes its summary (status "interrupted") and
            raises :class:`numeric.recorder.Interrupted`.
        extra_options: stored with ``cfg`` in ``run.json`` (e.g. the CLI's ``device``).
        write: False: no files at all (``out`` must be None; ``gdflows run`` without ``--out``).
        checks: print the edge-of-stability checks (they are in the summary either way).
        keep_w: keep every process's trajectory ``w`` (None: small problems only; the summary then
            has ``final_params``).
        stop_if_diverged: skip the remaining processes once the discrete process diverges
            (``gdflows run`` lets them finish).
        command: the command recorded in ``run.json`` (``--resume`` refuses another's directory).

    Raises:
        DeriveInputError: bad configuration or output directory (before any computation), or GD
            diverged (after writing what was computed).
        Interrupted: ``should_stop`` stopped the run (after writing what was computed).
        WriteError: the files could not be written (what was written before stays readable).
    """
    from derive.errors import DeriveInputError

    from .budget import check_compare, check_run
    from .driver import check_flows, keeps_w, run
    from .results import to_jsonable, write_summary

    cfg, problem = experiment(what, options)
    check_config(cfg)
    optimizer = cfg.optimizer_settings()
    check_flows(cfg.flows, optimizer)
    if resume and out is None:
        raise DeriveInputError("--resume: name the run directory to resume")
    if not write and (out is not None or resume):
        raise DeriveInputError("out: write=False writes nothing; leave out and resume unset")
    own, small, target = problem is not None, bool(cfg.problem or cfg.expression), out if write else None
    if not own:
        if not small:
            check_compare(cfg, target)    # a network: memory and disk from its shapes, before building it
        problem = build_problem(cfg)      # bad data/model arguments fail here, before the directory exists
    keep_w = keeps_w(problem, keep_w)
    if own or small:
        check_run(problem.n, cfg.steps, len(cfg.flows), cfg.k_max, keep_w, target)
    record = config_record(cfg, problem if own else None)
    settings = settings_for(cfg)
    directory = None
    if write:
        out = Path(out) if out is not None else default_out_dir(cfg, problem if own else None)
        directory = _open(out, command, {**record, **(extra_options or {})}, overwrite, resume, cfg, problem)
        out = directory.path
    echo(f"gdflows {command}: {problem.description or problem.name}")
    opt_text = "" if optimizer is None else (f", {optimizer.name} (β₂ = {optimizer.beta2:g}, ε = {optimizer.eps:g}"
                                             f"{', bias correction' if optimizer.bias_correction else ''})")
    echo(f"  n_params = {problem.n}, lr = {cfg.lr} (2/η = {2 / cfg.lr:.4g}){opt_text}, steps = {cfg.steps}, "
         f"flows = {','.join(cfg.flows)}, {'float64' if cfg.float64 else 'float32'}"
         + (f", output {out}" if write else "") + (" (resumed)" if resume else ""))
    disc = "gd" if optimizer is None else optimizer.name
    recorder = None
    if write:
        from .recorder import Recorder
        attrs = {"problem": problem.name, "lr": cfg.lr, "steps": cfg.steps, "n_params": problem.n, "discrete": disc,
                 "param_names": list(problem.param_names or []), "config": to_jsonable(record),
                 "settings": to_jsonable(dataclasses.asdict(settings)), "description": problem.description}
        recorder = Recorder(directory, cfg.steps + 1, attrs, resume=resume)
    bar, update = _progress_bar(cfg.steps * len(cfg.flows), progress)
    try:
        result = run(problem, cfg.lr, cfg.steps, list(cfg.flows), settings=settings, chunk=cfg.chunk,
                     progress=update, sink=recorder, keep_w=keep_w, stop_if_gd_diverges=stop_if_diverged,
                     should_stop=should_stop, optimizer=optimizer)
        summary = _summary(result, cfg, record, disc)
        found = metrics.acceptance(summary) if not result.interrupted else []
        summary["acceptance"] = [c._asdict() for c in found]
        if write:
            write_summary(out / "summary.json", summary)
    except BaseException as err:
        if recorder is not None:
            recorder.abort(err)   # a second signal, or an error: the run can be resumed
        raise
    finally:
        bar.close()
    if recorder is not None:
        recorder.close(summary["status"])
    return _report(cfg, out if write else None, result, summary, found if checks else [], figures and write, echo,
                   getattr(should_stop, "signum", None))


def _open(out, command, options, overwrite, resume, cfg, problem):
    """The run directory: created (or reopened to resume) only after every check has passed."""
    from .recorder import open_run_directory

    build_processes(cfg, problem)   # formulas that cannot be built for this loss fail here, before files exist
    return open_run_directory(out, command=command, options=options, overwrite=overwrite, resume=resume)


def build_processes(cfg: CompareConfig, problem) -> None:
    """Build every process of ``cfg`` on ``problem`` once: a formula that cannot be built for this loss
    fails here, and SymPy's derivations are cached for the run."""
    from .processes import make_process

    for name in cfg.flows:
        make_process(name, problem, process_settings(cfg), cfg.optimizer_settings())


def _summary(result, cfg, record, disc) -> dict:
    """The driver's per-process summary with the configuration, the edge-of-stability metrics and
    the central flow's predictions against the discrete process."""
    from .driver import summarize

    summary = summarize(result)
    summary["config"] = record
    summary["eos"] = eos_summary(result.series, cfg.lr, discrete=disc)
    if "cf" in summary and "loss" in result.series.get("cf", {}):
        summary["cf"]["predicted_loss_rel_err"] = summary["eos"].get("cf_predicted_loss_rel_err")
        summary["cf"]["sharpness_max_rel_dev"] = summary["eos"].get("cf_sharpness_max_rel_dev")
        if "cf_predicted_nu_rel_err" in summary["eos"]:
            summary["cf"]["predicted_nu_rel_err"] = summary["eos"]["cf_predicted_nu_rel_err"]
    return summary


def _report(cfg, out, result, summary, checks, figures, echo, signum) -> dict:
    """Figures, the table and the checks, after every file is written; the exit condition."""
    from derive.errors import DeriveInputError

    from .recorder import Interrupted

    written = []
    if figures:
        from .figures import make_figures
        from .results import Results
        attrs = {"problem": summary["problem"], "lr": cfg.lr, "steps": cfg.steps, "discrete": summary["discrete"]}
        try:
            written = make_figures(Results(result.series, attrs, {}), out)   # the series just written, from memory
        except OSError as err:
            from .rundir import WriteError
            raise WriteError(err.errno or 0, f"writing the figures in {out} failed: {err.strerror or err}") from None
    print_table(summary, echo)
    if summary.get("eos", {}).get("edge_message"):
        echo(summary["eos"]["edge_message"])
    if checks:
        echo("edge-of-stability checks (the acceptance criteria of the default run):")
        for c in checks:
            echo(c.line())
    if out is not None:
        echo(f"wrote {out}/results.h5, summary.json" + "".join(f", {p.name}" for p in written))
    kept = f"; results so far kept in {out}" if out is not None else ""
    if result.interrupted:
        again = f"; continue with --resume {out}" if out is not None else ""
        raise Interrupted(signum or 2, f"interrupted: stopped after the chunk in progress{kept}{again}")
    disc = summary.get("discrete", "gd")
    gd_status = summary.get(disc, {}).get("status", "ok")
    if gd_status != "ok":
        what = "gradient descent" if disc == "gd" else disc
        others = [p for p in summary["processes"] if p != disc]
        ran_on = f"; the other processes ran on, their distances to {disc} NaN from there" if others and not all(
            summary[p]["status"].startswith("skipped") for p in others) else ""
        raise DeriveInputError(f"--lr: {what} {gd_status} at lr = {cfg.lr}; try a smaller --lr{ran_on}{kept}")
    return summary


def default_out_dir(cfg: CompareConfig, problem=None) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = problem.name if problem is not None else (cfg.problem or cfg.data)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "problem"
    return Path("gdflows-runs") / f"compare-{safe}-{stamp}"


def print_table(summary: dict, echo=print) -> None:
    """The end-of-run table: one row per process (GD: sharpness and S·η/2; an adaptive optimizer:
    effective sharpness λ_max(P⁻¹H), its half, and ν)."""
    disc = summary.get("discrete", "gd")
    ref = "GD" if disc == "gd" else disc
    adaptive = disc != "gd"
    head = f"{'process':12s} {'final loss':>11s} {'S_eff' if adaptive else 'sharpness':>10s} {'S_eff/2' if adaptive else 'S·η/2':>7s} "
    head += f"{'‖w − w_' + ref + '‖':>16s} {'max ‖w − w_' + ref + '‖':>20s} " + (f"{'ν':>10s} " if adaptive else "")
    echo(head + f"{'wall s':>7s}  status")
    for name in summary["processes"]:
        e = summary[name]
        if "final_loss" not in e:
            echo(f"{name:12s} {'':>11s} {'':>10s} {'':>7s} {'':>16s} {'':>20s} " + (f"{'':>10s} " if adaptive else "")
                 + f"{e['wall_seconds']:7.1f}  {e['status']}")
            continue
        r = e.get("final_effective_sharpness")
        nu = (_fmt(e.get("final_nu"), "10.4g") + " ") if adaptive else ""
        echo(f"{name:12s} {_fmt(e['final_loss'], '11.5g')} {_fmt(e['final_sharpness'], '10.4g')} "
             f"{_fmt(None if r is None else r / 2, '7.4g')} {_fmt(e.get('final_distance_to_discrete', 0), '16.4g')} "
             f"{_fmt(e.get('max_distance_to_discrete', 0), '20.4g')} {nu}{e['wall_seconds']:7.1f}  {e['status']}")
        for note in e.get("notes", []):
            echo(f"{'':9s} warning: {note}")
    cf = summary.get("cf", {})
    if "final_predicted_loss" in cf:
        echo(f"central flow: predicted loss {_fmt(cf['final_predicted_loss'], '.5g')}, "
             f"tr Σ = {_fmt(cf['final_sigma_trace'], '.4g')}")


def _fmt(value, spec: str) -> str:
    """``value`` in ``spec``, or "n/a" (None or NaN: e.g. no eigenvalue was ever computed)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        width = "".join(c for c in spec.split(".")[0] if c.isdigit())
        return f"{'n/a':>{width or 0}s}"
    return format(value, spec)
