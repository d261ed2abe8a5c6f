"""``gdflows compare``: GD, gradient flow, modified flow, central flow (and midpoint) on a network.

The main job. With no arguments it trains the default digits MLP (:data:`DEFAULT`) at a learning
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import metrics

if TYPE_CHECKING:
    from .problem import Problem

__all__ = ["CompareConfig", "DEFAULT", "build_problem", "compare", "eos_summary", "experiment"]


@dataclass(frozen=True)
class CompareConfig:
    """One ``gdflows compare`` run. The defaults are the embedded default run.

    Attributes:
        problem: a registered toy problem (``gdflows run --list``) instead of a network; its
            learning rate and steps are used unless ``lr``/``steps`` are given.
        data, n, classes, data_dir: the data set (``digits``, ``cifar10`` with ``data_dir``, ``synthetic``).
        model, widths, activation, loss: the network and the loss (``mse`` or ``ce``).
        lr, steps, flows: learning rate, GD steps, processes.
        seed: initialisation seed (data subsets are deterministic).
        float64: double precision (default float32; matmuls at full precision either way).
        k_max, eig_tol, eig_every: eigen tracker capacity, LOBPCG tolerance, solve interval for
            the non-central processes.
        cf_substeps, mf_order, rtol, atol: central-flow substeps, modified-flow order, ODE tolerances.
        chunk: steps per compiled scan (results are written after each chunk).
        optimizer: ``gd``, ``rmsprop`` (scalar ν) or ``rmsprop-diag`` (per-coordinate ν); with an
            RMSProp the processes are the optimizer, its stable flow ``sf`` and central flow ``cf``.
        beta2, eps, bias_correction, warm_start: RMSProp's settings (ignored by GD).
        cf_drift: GD's central flow driven by the loss (``loss``, the paper's) or by the order-1
            modified loss (``modified``).
    """

    problem: str | None = None
    data: str = "digits"
    n: int = 1000
    classes: int = 10
    data_dir: str | None = None
    model: str = "mlp"
    widths: tuple = (32, 32)
    activation: str = "tanh"
    loss: str = "mse"
    lr: float = 0.335
    steps: int = 400
    flows: tuple = ("gd", "gf", "mf", "cf", "midpoint")
    seed: int = 0
    float64: bool = False
    k_max: int = 3
    eig_tol: float | None = None
    eig_every: int = 1
    cf_substeps: int = 8   # measured: 4 (the paper's) is 2.6% of ‖w_GD − w_GF‖ off the converged flow, 8 is 1.2%
    mf_order: int = 1
    rtol: float | None = None
    atol: float | None = None
    chunk: int = 25
    optimizer: str = "gd"
    beta2: float = 0.99
    eps: float = 0.0
    bias_correction: bool = False
    warm_start: int = 0
    cf_drift: str = "loss"

    def optimizer_settings(self):
        """None for GD, else the :class:`numeric.adaptive.RMSProp` of this run."""
        if self.optimizer == "gd":
            return None
        from .adaptive import RMSProp
        return RMSProp(beta2=self.beta2, eps=self.eps, bias_correction=self.bias_correction,
                       diagonal=self.optimizer == "rmsprop-diag", warm_start=self.warm_start)

    @property
    def name(self) -> str:
        if self.problem:
            return self.problem
        if self.model != "mlp":
            return f"{self.data}-{self.model}-{self.activation}-{self.loss}"
        return f"{self.data}-{self.model}-{'-'.join(str(w) for w in self.widths)}-{self.activation}-{self.loss}"


DEFAULT = CompareConfig()
OPTIMIZERS = ("gd", "rmsprop", "rmsprop-diag")
# per optimizer: the default run's settings where they differ from GD's (see README, "Adaptive optimizers")
# (RMSProp's central flows keep the paper's 4 substeps: their convergence is not measured yet)
OPTIMIZER_DEFAULTS = {"gd": {}, "rmsprop": {"lr": 0.03, "beta2": 0.9, "bias_correction": True, "cf_substeps": 4},
                      "rmsprop-diag": {"lr": 0.002, "beta2": 0.99, "eps": 1e-8, "bias_correction": True,
                                       "warm_start": 5, "k_max": 5, "steps": 300, "eig_tol": 1e-4, "cf_substeps": 4}}


# per model: the default run's settings where they differ from the MLP's (see README, "Architectures")
# (learning rates from GD's sharpness trajectories, which reach 2/η within the run: the ViT starts above
# it, falls to 0.86·2/η and sharpens back by step ~95; the ResNet sharpens from 0.67·2/η to it by step
# ~130 (both on 200 digits, to keep their runs short); the sorting Transformer with MSE never sharpens
# (its sharpness falls as it learns), with cross-entropy it sharpens from 0.5·2/η to it by step ~35;
# mf and midpoint can be asked for)
_ARCH = {"activation": "gelu", "steps": 300, "flows": ("gd", "gf", "cf")}
MODEL_DEFAULTS = {"cnn": {}, "resnet": {**_ARCH, "n": 200, "lr": 0.5}, "vit": {**_ARCH, "n": 200, "lr": 0.1},
                  "transformer": {**_ARCH, "data": "sort", "n": 500, "classes": 6, "loss": "ce", "lr": 0.2}}


def build_problem(cfg: CompareConfig):
    """The :class:`~numeric.problem.Problem` of ``cfg``: data, model, loss, initial parameters."""
    import jax

    from .data import load_dataset
    from .models import make_loss, make_model
    from .problem import from_jax

    if cfg.problem is not None:
        from .problems import get_problem
        return get_problem(cfg.problem, lr=cfg.lr)
    kwargs = {"n": cfg.n, "classes": cfg.classes}
    if cfg.data == "cifar10":
        kwargs["data_dir"] = cfg.data_dir
    elif cfg.data == "synthetic":
        kwargs["seed"] = cfg.seed
    ds = load_dataset(cfg.data, **kwargs)
    model_kw = {"activation": cfg.activation}
    if cfg.model == "mlp":
        model_kw["widths"] = tuple(cfg.widths)
    model = make_model(cfg.model, ds.dim, ds.Y.shape[1], **model_kw)
    dtype = jax.numpy.float64 if cfg.float64 else jax.numpy.float32
    params = model.init(jax.random.PRNGKey(cfg.seed), dtype)
    X, Y = jax.numpy.asarray(ds.X, dtype), jax.numpy.asarray(ds.Y, dtype)
    return from_jax(make_loss(model, X, Y, cfg.loss), params, name=cfg.name, dense_limit=0,
                    hvp_columns=model.hvp_columns,
                    description=f"{ds.description}; {model.description}; {cfg.loss}")


def settings_for(cfg: CompareConfig):
    """Numerical settings: float32 gets tolerances above its rounding floor."""
    from .processes import Settings

    single = not cfg.float64
    return Settings(eta=cfg.lr, rtol=cfg.rtol or (1e-5 if single else 1e-8),
                    atol=cfg.atol or (1e-7 if single else 1e-10), mf_order=cfg.mf_order,
                    cf_substeps=cfg.cf_substeps, k_max=cfg.k_max, eig_tol=cfg.eig_tol or (1e-5 if single else 1e-7),
                    eig_every=cfg.eig_every, sdcp_tol=1e-6 if single else 1e-9, cf_drift=cfg.cf_drift)


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
            should_stop=None, extra_options: dict | None = None, **options) -> dict:
    """Run an experiment, write results, summary and figures into ``out``; return the summary.

    Your own model::

        problem = numeric.from_jax(loss_fn, params)       # any pytree of parameters
        summary = numeric.compare(problem, lr=0.1, steps=300, flows=("gd", "gf", "cf"), out="runs/mine")

    Results are written after every chunk, with a checkpoint of every process (see
    :mod:`numeric.recorder`); ``summary.json`` is written before anything is printed.

    Args:
        what: a :class:`CompareConfig` (the built-in data and models, or a registered toy problem)
            or a :class:`~numeric.problem.Problem` of your own (``from_jax``, ``from_sympy``); for a
            problem ``lr`` is required, its precision is JAX's (``jax_enable_x64``), and the
            data and model options do not apply.
        out: a new output directory (default ``gdflows-runs/compare-<name>-<time>``).
        options: :class:`CompareConfig` fields replacing those of ``what`` (``lr``, ``steps``,
            ``flows``, ``optimizer``, ``beta2``, ``k_max``, …).
        resume: continue the interrupted or killed run in ``out`` (``cfg`` must be the one it
            was started with).
        should_stop: polled after every chunk (e.g. :class:`numeric.recorder.StopOnSignal`); when
            it returns true the run stops there, writes its summary (status "interrupted") and
            raises :class:`numeric.recorder.Interrupted`.
        extra_options: stored with ``cfg`` in ``run.json`` (e.g. the CLI's ``device``).

    Raises:
        DeriveInputError: bad configuration or output directory (before any computation), or GD
            diverged (after writing what was computed).
        Interrupted: ``should_stop`` stopped the run (after writing what was computed).
        WriteError: the files could not be written (what was written before stays readable).
    """
    from derive.errors import DeriveInputError

    from .driver import check_flows, run, summarize
    from .recorder import Recorder, open_run_directory
    from .results import to_jsonable, write_summary

    cfg, problem = experiment(what, options)
    check_config(cfg)
    optimizer = cfg.optimizer_settings()
    check_flows(cfg.flows, optimizer)
    if resume and out is None:
        raise DeriveInputError("--resume: name the run directory to resume")
    if problem is not None:
        from .budget import check_run
        check_run(problem.n, cfg.steps, len(cfg.flows), cfg.k_max, False, out)
    out = Path(out) if out is not None else default_out_dir(cfg, problem)
    own = problem is not None
    problem = problem or build_problem(cfg)          # bad data/model arguments fail here, before the directory exists
    record = config_record(cfg, problem if own else None)
    options = {**record, **(extra_options or {})}
    directory = open_run_directory(out, command="compare", options=options, overwrite=overwrite, resume=resume)
    out = directory.path
    settings = settings_for(cfg)
    echo(f"gdflows compare: {problem.description or problem.name}")
    opt_text = "" if optimizer is None else (f", {optimizer.name} (β₂ = {optimizer.beta2:g}, ε = {optimizer.eps:g}"
                                             f"{', bias correction' if optimizer.bias_correction else ''})")
    echo(f"  n_params = {problem.n}, lr = {cfg.lr} (2/η = {2 / cfg.lr:.4g}){opt_text}, steps = {cfg.steps}, "
         f"flows = {','.join(cfg.flows)}, {'float64' if cfg.float64 else 'float32'}, output {out}"
         + (" (resumed)" if resume else ""))
    disc = "gd" if optimizer is None else optimizer.name
    attrs = {"problem": problem.name, "lr": cfg.lr, "steps": cfg.steps, "n_params": problem.n, "discrete": disc,
             "config": to_jsonable(record), "settings": to_jsonable(dataclasses.asdict(settings)),
             "description": problem.description}
    recorder = Recorder(directory, cfg.steps + 1, attrs, resume=resume)
    bar, update = _progress_bar(cfg.steps * len(cfg.flows), progress)
    try:
        result = run(problem, cfg.lr, cfg.steps, list(cfg.flows), settings=settings, chunk=cfg.chunk,
                     progress=update, sink=recorder, keep_w=False, stop_if_gd_diverges=True,
                     should_stop=should_stop, optimizer=optimizer)
        summary = summarize(result)
        summary["config"] = record
        summary["eos"] = eos_summary(result.series, cfg.lr, discrete=disc)
        if "cf" in summary and "loss" in result.series.get("cf", {}):
            summary["cf"]["predicted_loss_rel_err"] = summary["eos"].get("cf_predicted_loss_rel_err")
            summary["cf"]["sharpness_max_rel_dev"] = summary["eos"].get("cf_sharpness_max_rel_dev")
            if "cf_predicted_nu_rel_err" in summary["eos"]:
                summary["cf"]["predicted_nu_rel_err"] = summary["eos"]["cf_predicted_nu_rel_err"]
        checks = metrics.acceptance(summary) if not result.interrupted else []
        summary["acceptance"] = [c._asdict() for c in checks]
        write_summary(out / "summary.json", summary)
    except BaseException as err:
        recorder.abort(err)   # a second signal, or an error: the run can be resumed
        raise
    finally:
        bar.close()
    recorder.close(summary["status"])
    return _report(cfg, out, result, summary, checks, figures, echo, getattr(should_stop, "signum", None))


# the fields that describe a built-in network problem; a problem of your own brings its own
NETWORK_FIELDS = ("problem", "data", "n", "classes", "data_dir", "model", "widths", "activation", "loss", "seed")


def experiment(what, options: dict) -> tuple[CompareConfig, "Problem | None"]:
    """``(cfg, problem)`` of :func:`compare`: a configuration with ``options`` applied, and the
    user's problem (None for the built-in ones, which :func:`build_problem` makes)."""
    import jax

    from derive.errors import DeriveInputError

    from .problem import Problem

    fields = {f.name for f in dataclasses.fields(CompareConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise DeriveInputError(f"{unknown[0]}: not an option of compare; expected some of {sorted(fields)}")
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    if isinstance(what, CompareConfig):
        return dataclasses.replace(what, **options), None
    if not isinstance(what, Problem):
        raise DeriveInputError(f"problem: expected a numeric.Problem (from_jax, from_sympy) or a CompareConfig, "
                               f"got {type(what).__name__}")
    given = sorted(set(options) & set(NETWORK_FIELDS))
    if given:
        raise DeriveInputError(f"{given[0]}: a problem of your own brings its own model and data; "
                               f"{', '.join(NETWORK_FIELDS)} do not apply")
    if "lr" not in options:
        raise DeriveInputError("lr: give the learning rate of your problem, e.g. compare(problem, lr=0.1)")
    x64 = bool(jax.config.jax_enable_x64)
    if options.get("float64", x64) != x64:
        raise DeriveInputError(f"float64: your problem runs in JAX's precision, which is "
                               f"{'float64' if x64 else 'float32'} (set jax_enable_x64 before building it)")
    cfg = dataclasses.replace(DEFAULT, **{**options, "float64": x64})
    if cfg.optimizer != "gd" and "flows" not in options:
        cfg = dataclasses.replace(cfg, flows=(cfg.optimizer, "sf", "cf"))
    return cfg, what


def config_record(cfg: CompareConfig, problem=None) -> dict:
    """The configuration as stored in ``run.json``, the results file and ``summary.json``: every
    field for a built-in problem; for a problem of your own its name and size instead of the
    network fields, which do not apply."""
    record = dataclasses.asdict(cfg)
    if problem is None:
        return record
    record = {k: v for k, v in record.items() if k not in NETWORK_FIELDS}
    return {"problem": problem.name, "source": "python", "n_params": problem.n, **record}


def check_config(cfg: CompareConfig) -> None:
    """One-line errors naming the argument for numbers that cannot run."""
    from derive.errors import DeriveInputError

    if not (isinstance(cfg.lr, (int, float)) and math.isfinite(cfg.lr) and cfg.lr > 0):
        raise DeriveInputError(f"--lr: must be a finite number > 0, got {cfg.lr}")
    if not (isinstance(cfg.steps, int) and cfg.steps > 0):
        raise DeriveInputError(f"--steps: must be a positive integer, got {cfg.steps!r}")
    if cfg.cf_drift not in ("loss", "modified"):
        raise DeriveInputError(f"--cf-drift: expected loss or modified, got {cfg.cf_drift!r}")
    if cfg.cf_drift != "loss" and cfg.optimizer != "gd":
        raise DeriveInputError("--cf-drift: the modified-loss drift is GD's; RMSProp's central flow has none yet")
    if cfg.optimizer not in OPTIMIZERS:
        raise DeriveInputError(f"--optimizer: unknown {cfg.optimizer!r}; expected one of {list(OPTIMIZERS)}")
    if not (math.isfinite(cfg.beta2) and 0 < cfg.beta2 < 1):
        raise DeriveInputError(f"--beta2: must be in (0, 1), got {cfg.beta2}")
    if not (math.isfinite(cfg.eps) and cfg.eps >= 0):
        raise DeriveInputError(f"--eps: must be a finite number ≥ 0, got {cfg.eps}")


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
    echo(f"wrote {out}/results.h5, summary.json" + "".join(f", {p.name}" for p in written))
    if result.interrupted:
        raise Interrupted(signum or 2, f"interrupted: stopped after the chunk in progress; results so far kept "
                                         f"in {out}; continue with --resume {out}")
    disc = summary.get("discrete", "gd")
    gd_status = summary.get(disc, {}).get("status", "ok")
    if gd_status != "ok":
        what = "gradient descent" if disc == "gd" else disc
        raise DeriveInputError(f"--lr: {what} {gd_status} at lr = {cfg.lr}; try a smaller --lr "
                               f"(results so far kept in {out})")
    return summary


def default_out_dir(cfg: CompareConfig, problem=None) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = problem.name if problem is not None else (cfg.problem or cfg.data)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "problem"
    return Path("gdflows-runs") / f"compare-{safe}-{stamp}"


def for_optimizer(cfg: CompareConfig, explicit=()) -> CompareConfig:
    """``cfg`` with the optimizer's defaults (lr, β₂, ε, bias correction, flows) for every field not in ``explicit``."""
    if cfg.optimizer not in OPTIMIZER_DEFAULTS:
        return cfg
    changes = {k: v for k, v in OPTIMIZER_DEFAULTS[cfg.optimizer].items() if k not in explicit}
    if cfg.optimizer != "gd" and "flows" not in explicit:
        changes["flows"] = (cfg.optimizer, "sf", "cf")
    return dataclasses.replace(cfg, **changes)


def config_from(options: dict, explicit=()) -> CompareConfig:
    """The configuration of one run from option values (CLI destinations or field names; others are
    ignored): the optimizer's and the toy problem's defaults fill every field not in ``explicit``.
    ``compare``, ``sweep`` and ``merge`` resolve their runs here."""
    options = {OPTION_FIELDS.get(k, k): v for k, v in options.items()}
    explicit = {OPTION_FIELDS.get(k, k) for k in explicit}
    fields = {f.name for f in dataclasses.fields(CompareConfig)}
    cfg = CompareConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()
                           if k in fields and v is not None})
    return for_problem(for_optimizer(for_model(cfg, explicit), explicit), options.get("lr") if "lr" in explicit else None,
                       options.get("steps") if "steps" in explicit else None)


def for_model(cfg: CompareConfig, explicit=()) -> CompareConfig:
    """``cfg`` with the model's defaults (data, activation, learning rate, steps: :data:`MODEL_DEFAULTS`)
    for every field not in ``explicit``."""
    changes = {k: v for k, v in MODEL_DEFAULTS.get(cfg.model, {}).items() if k not in explicit}
    return dataclasses.replace(cfg, **changes)


# CLI destinations that are CompareConfig fields under another name
OPTION_FIELDS = {"loss_fn": "loss"}


def for_problem(cfg: CompareConfig, lr: float | None, steps: int | None) -> CompareConfig:
    """``cfg`` with the learning rate and steps resolved: given values, else the problem's or the defaults."""
    if cfg.problem is not None:
        from .problems import REGISTRY
        if cfg.problem not in REGISTRY:
            from derive.errors import DeriveInputError
            raise DeriveInputError(f"--problem: unknown {cfg.problem!r}; expected one of {sorted(REGISTRY)}")
        spec = REGISTRY[cfg.problem]
        return dataclasses.replace(cfg, lr=lr or spec.default_lr, steps=steps or spec.default_steps, float64=True)
    own = OPTIMIZER_DEFAULTS.get(cfg.optimizer, {})
    return dataclasses.replace(cfg, lr=lr or own.get("lr", cfg.lr), steps=steps or own.get("steps", cfg.steps))


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
        s, r = e["final_sharpness"], e.get("final_effective_sharpness")
        s_txt, r_txt = ("n/a", "") if s is None else (f"{s:10.4g}", f"{r / 2:7.4g}")
        nu = f"{e['final_nu']:10.4g} " if adaptive and e.get("final_nu") is not None else (f"{'':>10s} " if adaptive else "")
        echo(f"{name:12s} {e['final_loss']:11.5g} {s_txt:>10s} {r_txt:>7s} {e.get('final_distance_to_discrete', 0):16.4g} "
             f"{e.get('max_distance_to_discrete', 0):20.4g} {nu}{e['wall_seconds']:7.1f}  {e['status']}")
    cf = summary.get("cf", {})
    if "final_predicted_loss" in cf:
        echo(f"central flow: predicted loss {cf['final_predicted_loss']:.5g}, tr Σ = {cf['final_sigma_trace']:.4g}")
