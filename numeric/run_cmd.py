"""``gdflows run``: one problem, several processes, a table, and optionally files.

Output directory (``--out``): ``results.h5`` (see :mod:`numeric.results` for the layout) and
``summary.json`` with, per process: ``final_loss``, ``mean_loss_tail`` (mean loss over the last
10% of steps), ``final_sharpness``, ``final_distance_to_gd``, ``final_params``, ``status``,
``wall_seconds``; and for ``cf`` also ``final_predicted_loss`` and ``final_sigma_trace`` (tr Σ).
"""
from __future__ import annotations

import sys


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


def cmd_run(args) -> int:
    import jax

    from derive.errors import DeriveInputError

    from .driver import run, summarize
    from .processes import Settings

    if args.list:
        from .problems import list_problems
        for name, description in list_problems():
            print(f"{name:14s} {description}")
        return 0
    jax.config.update("jax_enable_x64", not args.float32)
    problem, lr, steps = _resolve_problem(args)
    if lr is None:
        raise DeriveInputError("lr: --lr is required for a custom loss")
    if steps is None:
        raise DeriveInputError("steps: --steps is required for a custom loss")
    flows = [f.strip() for f in args.flows.split(",") if f.strip()]
    out_dir = None
    if args.out:
        from .results import prepare_output_dir
        out_dir = prepare_output_dir(args.out, overwrite=args.overwrite)
    settings = Settings(eta=lr, rtol=args.rtol, atol=args.atol, mf_order=args.mf_order,
                        cf_substeps=args.cf_substeps, k_max=args.k_max)
    result = run(problem, lr, steps, flows, settings=settings)
    summary = summarize(result)
    _print_table(result, summary)
    if out_dir is not None:
        _write_outputs(out_dir, result, summary)
        print(f"wrote {out_dir}/results.h5 and {out_dir}/summary.json")
    return 0


def _print_table(result, summary):
    print(f"problem {result.problem.name}  n = {result.problem.n}  η = {result.settings.eta}  "
          f"2/η = {2 / result.settings.eta:.4g}  steps = {result.steps}")
    head = (f"{'process':9s} {'final loss':>12s} {'tail loss':>12s} {'sharpness':>10s} {'‖w − w_GD‖':>11s} "
            f"{'wall s':>7s}  status")
    print(head)
    for name in result.series:
        e = summary[name]
        dist = e.get("final_distance_to_gd", float("nan"))
        tail = e["mean_loss_tail"] if e["mean_loss_tail"] is not None else float("nan")
        print(f"{name:9s} {e['final_loss']:12.6g} {tail:12.6g} {e['final_sharpness']:10.5g} {dist:11.4g} "
              f"{e['wall_seconds']:7.2f}  {e['status']}")
        for note in e["notes"]:
            print(f"{'':9s} warning: {note}", file=sys.stderr)
    if "cf" in summary:
        cf = summary["cf"]
        print(f"central flow: predicted loss {cf['final_predicted_loss']:.6g}, tr Σ = {cf['final_sigma_trace']:.4g}")


def _write_outputs(out_dir, result, summary):
    from .results import ResultsWriter, write_summary

    processes = {name: {k: v.shape[1:] for k, v in ser.items()} for name, ser in result.series.items()}
    attrs = {"problem": result.problem.name, "lr": result.settings.eta, "steps": result.steps,
             "n_params": result.problem.n, "param_names": list(result.problem.param_names or [])}
    with ResultsWriter(out_dir / "results.h5", processes, result.steps + 1, attrs) as writer:
        for name, ser in result.series.items():
            writer.write(name, ser, 0)
    write_summary(out_dir / "summary.json", summary)
