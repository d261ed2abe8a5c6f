"""The ``gdflows`` command line.

``gdflows derive`` prints every derivation of :mod:`derive` with its verification status, and
exits 1 if a check fails. Bad input gives a one-line error and exit code 2.
"""
from __future__ import annotations

import argparse
import math
import sys


class UsageError(Exception):
    """A user error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _positive(name, cast=float, maximum=None):
    """An argparse type: a number of type ``cast`` that must be > 0 (and ≤ ``maximum()``), else a
    one-line UsageError."""
    kind = "an integer" if cast is int else "a number"

    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            raise UsageError(f"{name}: expected {kind}, got {text!r}") from None
        if not math.isfinite(value):
            raise UsageError(f"{name}: must be a finite number, got {text}")
        if not value > 0:
            raise UsageError(f"{name}: must be > 0, got {text}")
        if maximum is not None and value > maximum():
            raise UsageError(f"{name}: must be at most {maximum()}, got {text}")
        return value
    return parse


SEED_MAX = 2**32 - 1   # one rule for every seed: what NumPy's and JAX's generators all accept


def _seed(text):
    """An argparse type: an integer seed in [0, 2**32 − 1]."""
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--seed: expected an integer, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise UsageError(f"--seed: must be an integer in [0, {SEED_MAX}], got {text}")
    return value


def _limit(name):
    """The largest value the machine-independent limits of :mod:`numeric.budget` allow for ``name``."""
    def get():
        from .budget import LIMITS
        return LIMITS[name]
    return get


def _max_mf_order() -> int:
    from derive import MAX_ORDER   # the orders whose derivation verifies itself
    return MAX_ORDER


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gdflows", description="Theory of gradient-descent dynamics: derive, generate, simulate.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    d = sub.add_parser("derive", help="print and verify every derivation")
    d.add_argument("--order", type=int, default=4, help="highest order of modified equations (default 4)")
    d.add_argument("--latex", action="store_true", help="print formulas as LaTeX")
    d.add_argument("--seed", type=_seed, default=0, help="seed of the random rational check points")
    d.add_argument("--loss", help='instantiate on a loss, e.g. "(x*y-1)**2/2" (parsed safely)')
    d.add_argument("--params", help="comma-separated parameter names (default: all symbols)")
    d.add_argument("--lr", type=_positive("--lr"), help="learning rate for --loss (default: symbolic η)")
    r = sub.add_parser("run", help="simulate GD, gradient flow, modified flow, central flow, midpoint")
    src = r.add_mutually_exclusive_group()
    src.add_argument("--problem", help="a registered problem (see --list)")
    src.add_argument("--loss", dest="expression", help='a loss expression, e.g. "(x*y-1)**2/2" (parsed safely)')
    r.add_argument("--init", help="initial point for --loss, e.g. x=2.5,y=0.1 (every parameter)")
    r.add_argument("--params", dest="param_names", help="comma-separated parameter names for --loss "
                                                          "(default: all symbols)")
    r.add_argument("--lr", type=_positive("--lr"), help="learning rate η (default: the problem's)")
    r.add_argument("--steps", type=_positive("--steps", int), help="number of GD steps (default: the problem's)")
    r.add_argument("--flows", type=_csv("--flows"), help="comma-separated processes (default gd,gf,mf,cf,midpoint; "
                                                          "with --optimizer rmsprop: rmsprop,sf,cf)")
    r.add_argument("--mf-order", type=_positive("--mf-order", int, _max_mf_order), default=1,
                   help="modified-flow order (1 to 6)")
    r.add_argument("--cf-substeps", type=_positive("--cf-substeps", int, _limit("cf_substeps")), default=4,
                   help="central-flow Euler substeps per step")
    r.add_argument("--k-max", type=_positive("--k-max", int, _limit("k_max")), default=4,
                   help="most eigenvalues tracked")
    _add_tolerances(r)
    from .config import DEFAULT
    _add_optimizer(r, DEFAULT, network=False)
    r.add_argument("--float32", dest="float64", action="store_false", help="single precision (default: float64)")
    r.add_argument("--out", help="write results.h5 and summary.json to this new directory, as the run goes")
    r.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
    r.add_argument("--resume", metavar="DIR", help="continue the interrupted or killed run in DIR")
    r.add_argument("--list", action="store_true", help="list the registered problems and exit")
    _add_compare(sub)
    _add_compare(sub, sweep=True)
    m = sub.add_parser("merge", help="join the slices of a sweep (--shard) into one directory",
                       description="Join sweep directories (the slices of one sweep run with --shard I/N) into "
                                   "--out, as if the sweep had run in one go.")
    m.add_argument("sources", nargs="+", metavar="DIR", help="sweep directories")
    m.add_argument("--out", required=True, help="the new merged sweep directory")
    m.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
    m.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    return parser


def _csv(name, cast=str):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        try:
            values = tuple(cast(t) for t in items)
        except ValueError:
            raise UsageError(f"{name}: expected comma-separated values, got {text!r}") from None
        if not values:
            raise UsageError(f"{name}: expected at least one value, got {text!r}")
        return values
    return parse


def _add_compare(sub, sweep: bool = False) -> None:
    from .config import DEFAULT as D

    if sweep:
        c = sub.add_parser("sweep", help="the main job over a grid of options (learning rates, seeds, ...)",
                           description="Run `gdflows compare` for every combination of the comma-separated values "
                                       "given (e.g. --lr 0.2,0.3 --seed 0,1; --widths takes /-separated lists: "
                                       "32,32/64,64) into one directory: runs/, sweep.h5 (a group per run), "
                                       "sweep.json, sweep.csv and figures. Every other option as in compare.")
        c = _SweepArgs(c)
    else:
        c = sub.add_parser("compare", help="the main job: GD vs gradient, modified and central flows on a network",
                           description="Train a network by GD and run gradient flow, modified flow, central flow "
                                       "and the GD midpoint from the same start; write results.h5, summary.json "
                                       "and figures. No arguments: the default digits MLP at the edge of stability.")
    c.add_argument("--problem", help="a registered toy problem instead of a network (see gdflows run --list)")
    c.add_argument("--data", default=D.data, help=f"digits, cifar10, synthetic or sort (generated sequences to "
                                                  f"sort; --classes symbols) (default {D.data})")
    c.add_argument("--data-dir", help="directory with CIFAR-10's python batches (for --data cifar10)")
    c.add_argument("--n", type=_positive("--n", int), default=D.n, help=f"training examples (default {D.n})")
    c.add_argument("--classes", type=_positive("--classes", int), default=D.classes,
                   help=f"classes (default {D.classes}; 4 is the reference's CIFAR setting)")
    c.add_argument("--model", default=D.model, help=f"mlp, cnn, resnet, vit or transformer (sequence sorting, "
                                                    f"--data sort) (default {D.model}; each has its own defaults)")
    c.add_argument("--widths", type=_csv("--widths", int), default=D.widths,
                   help="MLP hidden widths (default " + ",".join(map(str, D.widths)) + ")")
    c.add_argument("--activation", default=D.activation, help=f"tanh, gelu or relu (default {D.activation})")
    c.add_argument("--loss-fn", default=D.loss, help=f"mse or ce (default {D.loss})")
    c.add_argument("--lr", type=_positive("--lr"), help=f"learning rate η (default {D.lr}, or the problem's)")
    c.add_argument("--steps", type=_positive("--steps", int), help=f"GD steps (default {D.steps}, or the problem's)")
    c.add_argument("--flows", type=_csv("--flows"), default=D.flows,
                   help="processes (default " + ",".join(D.flows) + ")")
    c.add_argument("--seed", type=_seed, default=D.seed, help="initialisation seed (default 0)")
    _add_optimizer(c, D)
    c.add_argument("--float64", action="store_true", help="double precision (default float32)")
    c.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"), help="where JAX runs (default auto)")
    c.add_argument("--k-max", type=_positive("--k-max", int, _limit("k_max")), default=D.k_max,
                   help="most eigenvalues tracked")
    c.add_argument("--eig-every", type=_positive("--eig-every", int), default=D.eig_every,
                   help="eigen-solve interval for gd/gf/mf/midpoint (the central flow solves every step)")
    c.add_argument("--cf-substeps", type=_positive("--cf-substeps", int, _limit("cf_substeps")),
                   default=D.cf_substeps,
                   help="central-flow Euler substeps per step")
    c.add_argument("--mf-order", type=_positive("--mf-order", int, _max_mf_order), default=D.mf_order,
                   help="modified-flow order (1 to 6)")
    c.add_argument("--cf-drift", default=D.cf_drift, choices=("loss", "modified"),
                   help="GD's central flow: stable part −η∇L (loss, the paper's) or −η∇(L + (η/4)‖∇L‖²) (modified)")
    _add_tolerances(c)
    what = "sweep" if sweep else "compare"
    c.add_argument("--out", help=f"output directory (default: a new gdflows-runs/{what}-<data>-<time>)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
    c.add_argument("--resume", metavar="DIR", help=f"continue the interrupted or killed {what} in DIR (its arguments)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    if sweep:
        c.parser.add_argument("--shard", metavar="I/N", help="run only the I-th of N slices of the grid (1 ≤ I ≤ N, "
                                                             "round robin); join them with gdflows merge")


# compare's options that take one value each and can be swept; everything else is shared by every run
_NOT_SWEPT = {"out", "resume", "device", "flows", "data_dir", "shard"}


class _Values(tuple):
    """The values given to a swept option (argparse also parses a string default into one)."""


class _SweepArgs:
    """``add_argument`` for ``sweep``: options of compare that take a value accept comma-separated
    lists (``--widths``: /-separated), each item parsed and checked as compare parses it."""

    def __init__(self, parser):
        self.parser = parser

    def add_argument(self, *flags, **kw):
        dest = flags[0].lstrip("-").replace("-", "_")
        if dest in _NOT_SWEPT or kw.get("action") is not None:
            return self.parser.add_argument(*flags, **kw)
        one, choices = kw.pop("type", str), kw.pop("choices", None)
        sep = "/" if dest == "widths" else ","

        def each(text):
            values = _Values(one(t.strip()) for t in text.split(sep) if t.strip())
            if not values:
                raise UsageError(f"{flags[0]}: expected {sep}-separated values, got {text!r}")
            bad = [v for v in values if choices is not None and v not in choices]
            if bad:
                raise UsageError(f"{flags[0]}: invalid choice {bad[0]!r} (choose from {', '.join(map(str, choices))})")
            return values
        return self.parser.add_argument(*flags, type=each, **kw)


def _number(name, valid, must, cast=float):
    """An argparse type: a number of type ``cast`` with ``valid(value)``, else a one-line UsageError
    saying it ``must`` be so."""
    kind = "an integer" if cast is int else "a number"

    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            raise UsageError(f"{name}: expected {kind}, got {text!r}") from None
        if not (math.isfinite(value) and valid(value)):
            raise UsageError(f"{name}: must be {must}, got {text}")
        return value
    return parse


def _unit_interval(name):
    return _number(name, lambda v: 0 < v < 1, "in (0, 1)")


def _nonnegative(name, cast=float):
    return _number(name, lambda v: v >= 0, "a finite number ≥ 0", cast)


def _add_tolerances(c) -> None:
    """--rtol, --atol of the gradient and modified flows (defaults by precision: numeric.compare.settings_for)."""
    c.add_argument("--rtol", type=_positive("--rtol"), help="flow ODE relative tolerance (default 1e-8 in float64, "
                                                              "1e-5 in float32)")
    c.add_argument("--atol", type=_positive("--atol"), help="flow ODE absolute tolerance (default 1e-10 in float64, "
                                                              "1e-7 in float32)")


def _add_optimizer(c, D, network=True) -> None:
    """--optimizer, --beta2, --eps, --bias-correction, --warm-start. ``network``: compare's help, whose
    RMSProp defaults differ from the plain settings (:data:`numeric.compare.OPTIMIZER_DEFAULTS`)."""
    from .config import OPTIMIZER_DEFAULTS, OPTIMIZERS

    rms = OPTIMIZER_DEFAULTS["rmsprop"] if network else {"beta2": D.beta2}
    c.add_argument("--optimizer", default=D.optimizer, choices=OPTIMIZERS,
                   help="gd, rmsprop (scalar ν) or rmsprop-diag (per-coordinate ν); with rmsprop the processes "
                        f"are the optimizer, its stable flow sf and central flow cf (default {D.optimizer})")
    c.add_argument("--beta2", type=_unit_interval("--beta2"), default=D.beta2,
                   help=f"RMSProp's EMA factor β₂ (default {rms['beta2']})")
    c.add_argument("--eps", type=_nonnegative("--eps"), default=D.eps,
                   help="RMSProp's ε added to √ν̂ (default 0" + (
                       f"; {OPTIMIZER_DEFAULTS['rmsprop-diag']['eps']:g} for rmsprop-diag)" if network else ")"))
    c.add_argument("--bias-correction", action=argparse.BooleanOptionalAction, default=D.bias_correction,
                   help="RMSProp's bias correction ν̂ = ν/(1 − β₂ᵗ) (default " + ("on)" if network else "off)"))
    c.add_argument("--warm-start", type=_nonnegative("--warm-start", int), default=D.warm_start,
                   help="RMSProp steps taken before every process starts (the reference's --warm-start; default "
                        f"{D.warm_start})")


def _cmd_derive(args) -> int:
    from derive import parse_loss
    from derive.errors import DeriveInputError
    from derive.report import derivation_report, instantiate_report

    if args.order < 1 or args.order > 6:
        raise UsageError(f"--order: expected an integer in [1, 6], got {args.order}")
    if args.loss is not None:
        from derive import eta
        try:
            params = args.params.split(",") if args.params else None
            loss, params, _ = parse_loss(args.loss, params=params)
            lines = instantiate_report(loss, params, args.lr if args.lr else eta, min(args.order, 3))
        except DeriveInputError as err:
            raise UsageError(str(err)) from None
        print("\n".join(lines))
        return 0
    failed = 0
    for section in derivation_report(args.order, args.latex, args.seed):
        print(section.render(), flush=True)
        failed += not section.passed
    total = "all derivations verified" if not failed else f"{failed} section(s) FAILED verification"
    print(f"\n{total}")
    return 1 if failed else 0


def _cmd_compare(args, given: dict, stop) -> int:
    import jax

    from .compare import compare
    from .config import config_from, resumed_config

    if args.resume:   # the stored configuration, resolved when the run started
        if args.out or args.overwrite:
            raise UsageError("--resume: goes without --out and --overwrite (the run directory is the one named)")
        cfg, stored = resumed_config(args.resume, "compare", given)
        device = stored.get("device", args.device)
    else:
        cfg, device = config_from(vars(args), given), args.device
    _use_device(device)
    jax.config.update("jax_enable_x64", cfg.float64)   # toy problems: float64 (config_from)
    compare(cfg, args.resume or args.out, overwrite=args.overwrite, progress=not args.no_progress,
            figures=not args.no_figures, resume=bool(args.resume), should_stop=stop,
            extra_options={"device": device})
    return 0


def _use_device(device: str) -> None:
    import jax

    if device == "cpu":
        jax.config.update("jax_platforms", "cpu")
    elif device == "gpu":
        try:
            jax.devices("gpu")
        except RuntimeError:
            raise UsageError("--device: no GPU is visible to JAX (install jax[cuda12] or use --device cpu)") from None


_SWEEP_PRESENTATION = {"command", "out", "overwrite", "resume", "no_progress", "no_figures", "shard", "device"}


def _cmd_sweep(args, given: dict, stop) -> int:
    import datetime as _dt
    from pathlib import Path

    import jax

    from .sweep import Grid, parse_shard, sweep

    _use_device(args.device)
    if args.resume:
        extra = sorted(set(given) - _SWEEP_PRESENTATION)
        if extra or args.out or args.overwrite or args.shard:
            raise UsageError("--resume: goes alone (the sweep directory holds its grid and slice)")
        from .recorder import check_resumable
        stored = check_resumable(args.resume, "sweep", {})["grid"]
        grid = Grid.from_spec(stored)
        shard = tuple(stored["shard"]) if stored.get("shard") else None
        out = args.resume
    else:
        options = {k: v for k, v in vars(args).items() if k not in _SWEEP_PRESENTATION}
        axes, base = [], {}
        for k, v in options.items():
            if isinstance(v, _Values) and len(v) > 1:
                axes.append((k, tuple(v)))
            else:
                base[k] = v[0] if isinstance(v, _Values) else v
        grid = Grid(tuple(axes), base, tuple(sorted(k for k in given if k not in _SWEEP_PRESENTATION)))
        shard = parse_shard(args.shard)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = args.out or Path("gdflows-runs") / f"sweep-{base.get('data', 'digits')}-{stamp}"
    jax.config.update("jax_enable_x64", bool(grid.base.get("float64") or grid.base.get("problem")))
    sweep(grid, out, shard=shard, overwrite=args.overwrite, resume=bool(args.resume), figures=not args.no_figures,
          should_stop=stop)
    return 0


def _cmd_merge(args) -> int:
    from .sweep import merge

    merge(args.sources, args.out, overwrite=args.overwrite, figures=not args.no_figures)
    return 0


def _explicit(argv) -> dict:
    """The options typed on the command line (defaults left out), by destination name."""
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for a in sub._actions:
                    a.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


def main(argv=None) -> int:
    from .recorder import Finished, Interrupted, StopOnSignal
    from .rundir import WriteError

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
        if args.command == "derive":
            return _cmd_derive(args)
        from .compile_cache import enable
        enable()   # a second run loads its compiled programs instead of compiling them again
        with StopOnSignal() as stop:
            if args.command == "run":
                from .run_cmd import cmd_run
                return cmd_run(args, _explicit(argv), stop)
            if args.command == "compare":
                return _cmd_compare(args, _explicit(argv), stop)
            if args.command == "sweep":
                return _cmd_sweep(args, _explicit(argv), stop)
            if args.command == "merge":
                return _cmd_merge(args)
    except Finished as done:
        print(f"gdflows: {done}")
        return 0
    except Interrupted as stopped:
        print(f"gdflows: {stopped}", file=sys.stderr)
        return stopped.exit_code
    except WriteError as err:   # disk full, permissions: what was written stays readable
        print(f"gdflows: error: {err.strerror}", file=sys.stderr)
        return 1
    except Exception as err:  # bad input, from argparse or from the library: one line, exit 2
        from derive.errors import DeriveInputError
        if not isinstance(err, (UsageError, DeriveInputError)):
            raise
        print(f"gdflows: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gdflows: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
