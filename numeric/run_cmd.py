"""``gdflows run``: one problem, several processes, a table, and optionally files.

Output directory (``--out``): ``results.h5`` (see :mod:`numeric.results` for the layout), written
after every chunk, and ``summary.json`` with, per process: ``final_loss``, ``mean_loss_tail`` (mean
loss over the last 10% of steps), ``final_sharpness``, ``final_distance_to_gd``, ``final_params``,
``status``, ``steps_reached``, ``wall_seconds``; and for ``cf`` also ``final_predicted_loss`` and
``final_sigma_trace`` (tr Σ). ``--resume DIR`` continues an interrupted or killed run.
"""
from __future__ import annotations

import math
import sys

# the options that define a run (what --resume restores and checks)
RUN_OPTIONS = ("problem", "loss", "init", "params", "lr", "steps", "flows", "mf_order", "cf_substeps", "k_max",
               "rtol", "atol", "float32", "optimizer", "beta2", "eps", "bias_correction", "warm_start")


def _resolve_problem(args):
    from derive.errors import DeriveInputError

    from .problems import REGISTRY, get_problem, problem_from_string

    if args.loss is not None:
        if not args.init:
            raise DeriveInputError("init: --loss needs --init with a value for every parameter, e.g. x=1,y=2")
        problem = problem_from_string(args.loss, args.init, params=args.params)
        return problem, args.lr, args.steps
    name = args.problem or "zhu"
    if args.init:
        raise DeriveInputError("init: --init goes with --loss; registered problems have their own")
    # known answers are evaluated at the learning rate actually used
    problem = get_problem(name) if args.lr is None else get_problem(name, lr=args.lr)
    spec = REGISTRY[name]
    lr = args.lr if args.lr is not None else spec.default_lr
    steps = args.steps if args.steps is not None else spec.default_steps
    return problem, lr, steps


def cmd_run(args, given: dict | None = None, stop=None) -> int:
    """Run, write (``--out``/``--resume``), print; exit code 2 if GD diverged, 128 + signal if stopped."""
    import jax

    from derive.errors import DeriveInputError

    from .budget import check_run
    from .driver import KEEP_W_LIMIT, check_flows, run, summarize
    from .processes import Settings

    if args.list:
        from .problems import list_problems
        for name, description in list_problems():
            print(f"{name:14s} {description}")
        return 0
    if args.resume:
        if args.out or args.overwrite:
            raise DeriveInputError("--resume: goes without --out and --overwrite (the run directory is the one named)")
        from .recorder import check_resumable
        stored = check_resumable(args.resume, "run", {k: v for k, v in (given or {}).items() if k in RUN_OPTIONS})
        for k in RUN_OPTIONS:
            setattr(args, k, stored.get(k))
    jax.config.update("jax_enable_x64", not args.float32)
    problem, lr, steps = _resolve_problem(args)
    if lr is None:
        raise DeriveInputError("lr: --lr is required for a custom loss")
    if steps is None:
        raise DeriveInputError("steps: --steps is required for a custom loss")
    optimizer = _optimizer(args)
    from .processes import discrete_name, make_process, process_names
    names = process_names(optimizer) if args.flows is None else [f.strip() for f in args.flows.split(",") if f.strip()]
    flows = check_flows(names, optimizer)
    out = args.resume or args.out
    check_run(problem.n, steps, len(flows), args.k_max, problem.n <= KEEP_W_LIMIT, out)
    settings = Settings(eta=lr, rtol=args.rtol, atol=args.atol, mf_order=args.mf_order,
                        cf_substeps=args.cf_substeps, k_max=args.k_max)
    for name in flows:   # formulas that cannot be built for this loss fail here, before files exist
        make_process(name, problem, settings, optimizer)
    recorder = None
    if out is not None:
        from .recorder import Recorder, open_run_directory
        options = {k: getattr(args, k) for k in RUN_OPTIONS}
        directory = open_run_directory(out, command="run", options=options, overwrite=args.overwrite,
                                       resume=bool(args.resume))
        attrs = {"problem": problem.name, "lr": lr, "steps": steps, "n_params": problem.n,
                 "param_names": list(problem.param_names or []), "discrete": discrete_name(optimizer)}
        recorder = Recorder(directory, steps + 1, attrs, resume=bool(args.resume))
    try:
        result = run(problem, lr, steps, flows, settings=settings, sink=recorder, should_stop=stop, optimizer=optimizer)
        summary = summarize(result)
        if recorder is not None:
            from .results import write_summary
            write_summary(recorder.directory.path / "summary.json", summary)
    except BaseException as err:
        if recorder is not None:
            recorder.abort(err)
        raise
    if recorder is not None:
        recorder.close(summary["status"])
    _print_table(result, summary)
    if recorder is not None:
        print(f"wrote {recorder.directory.path}/results.h5 and {recorder.directory.path}/summary.json")
    return _exit(result, summary, stop, out)


def _optimizer(args):
    """None for GD, else the RMSProp of ``--optimizer`` with its options."""
    if getattr(args, "optimizer", "gd") in (None, "gd"):
        return None
    from .adaptive import RMSProp
    opt = RMSProp(beta2=args.beta2, eps=args.eps, bias_correction=bool(args.bias_correction),
                  diagonal=args.optimizer == "rmsprop-diag", warm_start=args.warm_start)
    opt.check()
    return opt


def _exit(result, summary, stop, out) -> int:
    from derive.errors import DeriveInputError

    from .recorder import Interrupted

    kept = f"; results so far kept in {out}" if out else ""
    if result.interrupted:
        again = f"; continue with --resume {out}" if out else ""
        raise Interrupted(getattr(stop, "signum", None) or 2, f"interrupted: stopped after the chunk in progress{kept}"
                                                             f"{again}")
    disc = summary.get("discrete", "gd")
    gd = summary.get(disc, {}).get("status", "ok")
    if gd != "ok":
        what = "gradient descent" if disc == "gd" else disc
        raise DeriveInputError(f"--lr: {what} {gd} at lr = {result.settings.eta}; the other processes "
                               f"ran on; distances to {disc} are NaN from there{kept}")
    return 0


def _fmt(value, spec: str) -> str:
    """``value`` in ``spec``, or "n/a" (None or NaN: e.g. no eigenvalue was ever computed)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        width = "".join(c for c in spec.split(".")[0] if c.isdigit())
        return f"{'n/a':>{width or 0}s}"
    return format(value, spec)


def _print_table(result, summary):
    print(f"problem {result.problem.name}  n = {result.problem.n}  η = {result.settings.eta}  "
          f"2/η = {2 / result.settings.eta:.4g}  steps = {result.steps}")
    disc = summary.get("discrete", "gd")
    adaptive = disc != "gd"
    ref = "‖w − w_GD‖" if not adaptive else "‖w − w_disc‖"
    head = (f"{'process':12s} {'final loss':>12s} {'tail loss':>12s} {'S_eff' if adaptive else 'sharpness':>10s} "
            f"{ref:>12s} " + (f"{'ν':>10s} " if adaptive else "") + f"{'wall s':>7s}  status")
    print(head)
    for name in result.series:
        e = summary[name]
        nu = (_fmt(e.get("final_nu"), "10.4g") + " ") if adaptive else ""
        if "final_loss" not in e:
            print(f"{name:12s} {'':>12s} {'':>12s} {'':>10s} {'':>12s} {' ' * len(nu)}{e['wall_seconds']:7.2f}  {e['status']}")
            continue
        print(f"{name:12s} {_fmt(e['final_loss'], '12.6g')} {_fmt(e['mean_loss_tail'], '12.6g')} "
              f"{_fmt(e['final_sharpness'], '10.5g')} {_fmt(e.get('final_distance_to_discrete'), '12.4g')} {nu}"
              f"{e['wall_seconds']:7.2f}  {e['status']}")
        for note in e["notes"]:
            print(f"{'':9s} warning: {note}", file=sys.stderr)
    if "cf" in summary and "final_predicted_loss" in summary["cf"]:
        cf = summary["cf"]
        print(f"central flow: predicted loss {_fmt(cf['final_predicted_loss'], '.6g')}, "
              f"tr Σ = {_fmt(cf['final_sigma_trace'], '.4g')}")
