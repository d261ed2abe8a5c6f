"""Convergence of the central flow's time stepping on the default digits problem.

The central flow is integrated by explicit Euler with ``cf_substeps`` substeps per unit of τ
(the paper's scheme: 4). This script runs it with several substep counts and with a converged
reference (64 substeps by default), and prints, for each, the largest distance to the reference
over the run relative to ‖w_GD − w_GF‖ at the end of the run (the scale the central flow is
meant to resolve), the fitted order of accuracy, and the cost per unit of τ in bare-gradient
steps. ``tests/test_cf_convergence.py`` asserts the same on a shorter run.

With ``--optimizer rmsprop`` or ``rmsprop-diag`` the same study runs on that optimizer's default
run (:data:`numeric.config.OPTIMIZER_DEFAULTS`), its central flow against its stable flow: the scale
is then ‖w_opt − w_SF‖.

Usage: python benchmarks/cf_convergence.py [--steps 400] [--substeps 1,2,4,8] [--reference 64]
       [--optimizer gd|rmsprop|rmsprop-diag]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def study(steps: int = 400, substeps=(1, 2, 4, 8), reference: int = 64, cfg=None, optimizer: str = "gd") -> dict:
    """``{"scale": ‖w_disc − w_stable‖ at the end, "rows": [{substeps, max_rel, final_rel, seconds_per_unit}],
    "order": fitted slope of log max_rel against log substeps, "reference": reference}``."""
    import numpy as np

    from numeric import driver
    from numeric.config import DEFAULT, build_problem, for_optimizer, settings_for

    cfg = for_optimizer(dataclasses.replace(cfg or DEFAULT, optimizer=optimizer))
    cfg = dataclasses.replace(cfg, steps=steps)
    opt = cfg.optimizer_settings()
    disc, stable = ("gd", "gf") if opt is None else (opt.name, "sf")
    problem = build_problem(cfg)
    base = driver.run(problem, cfg.lr, steps, [disc, stable], settings=settings_for(cfg), keep_w=True,
                      chunk=cfg.chunk, optimizer=opt)
    scale = float(np.linalg.norm(base.series[disc]["w"][-1] - base.series[stable]["w"][-1]))
    paths, seconds = {}, {}
    for m in sorted(set(substeps) | {reference}):
        s = settings_for(dataclasses.replace(cfg, cf_substeps=m))
        r = driver.run(problem, cfg.lr, steps, ["cf"], settings=s, keep_w=True, chunk=cfg.chunk, optimizer=opt)
        if r.status["cf"] != "ok":
            raise RuntimeError(f"cf with {m} substeps: {r.status['cf']}")
        paths[m] = r.series["cf"]["w"]
        seconds[m] = (r.wall_seconds["cf"] - r.compile_seconds["cf"]) / steps
    rows = []
    for m in sorted(substeps):
        d = np.linalg.norm(paths[m] - paths[reference], axis=1)
        rows.append({"substeps": m, "max_rel": float(d.max() / scale), "final_rel": float(d[-1] / scale),
                     "seconds_per_unit": seconds[m]})
    ms = np.array([r["substeps"] for r in rows], float)
    errs = np.array([r["max_rel"] for r in rows])
    order = float(-np.polyfit(np.log(ms), np.log(errs), 1)[0]) if len(rows) > 1 else float("nan")
    return {"scale": scale, "rows": rows, "order": order, "reference": reference,
            "reference_seconds_per_unit": seconds[reference]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--substeps", default="1,2,4,8")
    parser.add_argument("--reference", type=int, default=64)
    parser.add_argument("--optimizer", default="gd", choices=("gd", "rmsprop", "rmsprop-diag"))
    args = parser.parse_args(argv)
    from numeric.compile_cache import enable
    enable()
    t0 = time.perf_counter()
    out = study(args.steps, tuple(int(x) for x in args.substeps.split(",")), args.reference,
                optimizer=args.optimizer)
    pair = "‖w_GD − w_GF‖" if args.optimizer == "gd" else f"‖w_{args.optimizer} − w_SF‖"
    print(f"default digits problem ({args.optimizer}), {args.steps} steps; reference: {out['reference']} Euler "
          f"substeps per unit τ; scale {pair} at the end = {out['scale']:.4g}")
    print(f"{'substeps':>8s} {'max ‖w − w_ref‖/scale':>22s} {'final':>10s} {'ms per unit τ':>14s}")
    for r in out["rows"]:
        print(f"{r['substeps']:8d} {r['max_rel']:22.3e} {r['final_rel']:10.3e} {r['seconds_per_unit'] * 1e3:14.2f}")
    print(f"{out['reference']:8d} {'(reference)':>22s} {'':>10s} {out['reference_seconds_per_unit'] * 1e3:14.2f}")
    print(f"fitted order of accuracy: {out['order']:.2f}; {time.perf_counter() - t0:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
