"""Speed of the main job: `gdflows compare` defaults, central-flow cost per unit time, the reference's workload.

Three measurements, each printed as times and ratios taken in one run (machines are shared and noisy):

* ``default``: ``gdflows compare`` with its embedded defaults; wall time in total and per process
  (compile and run separately), number of compiled scans per process (1–2: no retracing per step).
  Target: ≤ 3 minutes on a 2-core CPU.
* ``cf-unit``: on the default problem, advance the central flow until exactly one eigenvalue is
  critical and Σ is active, then time one unit of central-flow time (its 4 substeps, the eigen
  solve and the log) against one GD step: the bare update w ← w − η∇L, and GD as `compare` runs it
  (with its sharpness tracking). Target: ≤ 10× one GD step.
* ``minimal``: the reference implementation's ``minimal.py`` workload: MLP 3072-256-256-4 (GELU,
  853,508 parameters), n = 1000 synthetic CIFAR-shaped examples in 4 classes, 400 steps of GD,
  central flow and gradient flow, 3 eigenvalues. Target: ≤ 20 minutes on a 2-core CPU; per-process
  breakdown printed. GD and gradient flow solve for eigenvalues every 5 steps (they only log them),
  the central flow at every step with LOBPCG tolerance 1e-4. ``--steps`` shortens the run (the
  total is then extrapolated to 400 steps).

* ``table`` (the default): the default run, the digits CNN (``--model cnn``) and the
  ``minimal`` workload, every process in gradient-equivalents (its seconds per step divided by one
  bare gradient step w ← w − η∇L timed in the same run, inside a compiled scan as the processes
  run), with absolute times beside them, and the eigensolver's mean Hessian-vector products per
  solve. ``--steps`` shortens every workload (totals are then extrapolated).

Usage: python benchmarks/bench_compare.py [{table,default,cf-unit,minimal}] [--steps N] [--out DIR] [--device cpu|gpu]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MINIMAL_LR = 1.0   # synthetic data: sharpness starts near 1.4 and sharpens past 2/η = 2 within the run


def _breakdown(summary: dict, steps: int) -> None:
    print(f"{'process':9s} {'wall s':>8s} {'compile s':>10s} {'run s':>8s} {'s/step':>8s} {'scans':>6s}  status")
    for name in summary["processes"]:
        e = summary[name]
        comp = e.get("compile_seconds") or 0.0
        run_s = e["wall_seconds"] - comp
        print(f"{name:9s} {e['wall_seconds']:8.1f} {comp:10.1f} {run_s:8.1f} {run_s / steps:8.3f} "
              f"{e.get('compiles', '?'):>6}  {e['status']}")


def bench_default(args) -> None:
    from numeric import metrics
    from numeric.compare import DEFAULT, compare

    out = Path(args.out or tempfile.mkdtemp(prefix="bench-default-")) / "run"
    t0 = time.perf_counter()
    summary = compare(DEFAULT, out, overwrite=True, progress=False, echo=lambda *a: None)
    total = time.perf_counter() - t0
    print(f"gdflows compare (defaults: {DEFAULT.name}, {DEFAULT.steps} steps, n_params {summary['n_params']}): "
          f"{total:.1f} s in total (target ≤ 180 s)")
    _breakdown(summary, DEFAULT.steps)
    for c in summary["acceptance"]:
        print(f"{metrics.verdict(c['passed'])} {c['name']}: {c['value']}")


def _time_scan(step, state, n):
    import jax

    scan = jax.jit(lambda st: jax.lax.scan(lambda s, _: (step(s), None), st, None, length=n)[0])
    compiled = scan.lower(state).compile()
    jax.block_until_ready(compiled(state))
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        out = jax.block_until_ready(compiled(state))
        best = min(best, (time.perf_counter() - t) / n)
    return best, out


def bench_cf_unit(args) -> None:
    import jax
    import jax.numpy as jnp

    from numeric.config import DEFAULT, build_problem, process_settings
    from numeric.processes import make_process

    cfg = DEFAULT
    problem, s = build_problem(cfg), process_settings(cfg)
    w0 = jnp.asarray(problem.init, jnp.float32)
    cf = make_process("cf", problem, s)
    step = jax.jit(cf.step)
    state = cf.init(w0)
    for k in range(cfg.steps):  # noqa: B007   to the edge: one critical direction, Σ active
        state = step(state)
        if int(state.n_critical) == 1 and float(jnp.trace(state.X)) > 0:
            break
    else:
        raise SystemExit("cf-unit: the central flow never reached the edge with one critical direction")
    n = 20
    t_cf, end = _time_scan(cf.step, state, n)
    assert int(end.n_critical) == 1, "more than one critical direction during the timing"
    gd = make_process("gd", problem, s)
    t_gd_tracked, _ = _time_scan(gd.step, gd.init(state.w), n)
    bare = lambda w: w - s.eta * problem.grad(w)  # noqa: E731
    t_bare, _ = _time_scan(bare, state.w, n)
    print(f"default problem ({cfg.name}, n_params {problem.n}), central flow at the edge from step {k + 1}, "
          f"one critical eigenvalue, {s.cf_substeps} substeps per unit, k_max {s.k_max}")
    print(f"  one unit of central-flow time: {t_cf * 1e3:8.2f} ms")
    print(f"  one GD step with sharpness tracking (as compare runs it): {t_gd_tracked * 1e3:8.2f} ms  "
          f"→ ratio {t_cf / t_gd_tracked:.2f} (target ≤ 10)")
    print(f"  one bare GD step w ← w − η∇L: {t_bare * 1e3:8.3f} ms  → ratio {t_cf / t_bare:.1f}")


def _minimal_config(**changes):
    """The reference's ``minimal.py`` workload (its scheme: 4 central-flow substeps), with ``changes``."""
    from numeric.compare import CompareConfig

    base = dict(data="synthetic", n=1000, classes=4, model="mlp", widths=(256, 256), activation="gelu", loss="mse",
                lr=MINIMAL_LR, steps=400, flows=("gd", "cf", "gf"), k_max=3, eig_every=5, eig_tol=1e-4, chunk=25,
                cf_substeps=4)
    return CompareConfig(**{**base, **changes})


def bench_minimal(args) -> None:
    from numeric.compare import compare

    cfg = _minimal_config(lr=args.lr or MINIMAL_LR, steps=args.steps or 400, eig_every=args.eig_every,
                          eig_tol=args.eig_tol, chunk=args.chunk)
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-minimal-")) / "run"
    t0 = time.perf_counter()
    summary = compare(cfg, out, overwrite=True, progress=not args.no_progress, figures=True,
                      echo=lambda *a: None)
    total = time.perf_counter() - t0
    print(f"minimal.py workload: MLP 3072-256-256-4 gelu, n_params {summary['n_params']}, synthetic n = {cfg.n}, "
          f"{cfg.steps} steps of {','.join(cfg.flows)}, k_max {cfg.k_max}, lr {cfg.lr}, eig_every {cfg.eig_every}, "
          f"eig_tol {cfg.eig_tol or 'default'}")
    print(f"total {total:.1f} s = {total / 60:.2f} min (target ≤ 20 min for 400 steps)")
    if cfg.steps != 400:
        run = sum(summary[p]["wall_seconds"] - (summary[p].get("compile_seconds") or 0) for p in cfg.flows)
        print(f"  extrapolated to 400 steps: {(total - run + run * 400 / cfg.steps) / 60:.2f} min")
    _breakdown(summary, cfg.steps)
    eos = summary["eos"]
    print(f"GD onset {eos.get('gd_onset')}, GD peak S·η/2 {eos.get('gd_sharpness_peak', 0) * cfg.lr / 2:.3f}, "
          f"CF onset {eos.get('cf_onset')}; output {out}")


def _bare_gradient_seconds(problem, eta, float64=False, n=20):
    """One bare gradient step w ← w − η∇L, timed inside a compiled scan (best of 3)."""
    import jax.numpy as jnp

    w0 = jnp.asarray(problem.init, jnp.float64 if float64 else jnp.float32)
    seconds, _ = _time_scan(lambda w: w - eta * problem.grad(w), w0, n)
    return seconds


def _workloads(args):
    from numeric.compare import DEFAULT

    loads = {"default": DEFAULT, "cnn": dataclasses.replace(DEFAULT, model="cnn"), "minimal": _minimal_config()}
    if args.steps:
        loads = {k: dataclasses.replace(c, steps=args.steps) for k, c in loads.items()}
    return {k: loads[k] for k in (args.only or loads)}


def bench_table(args) -> None:
    from numeric.compare import build_problem, compare

    rows = []
    for name, cfg in _workloads(args).items():
        problem = build_problem(cfg)
        bare = _bare_gradient_seconds(problem, cfg.lr, cfg.float64)
        out = Path(args.out or tempfile.mkdtemp(prefix="bench-table-")) / name
        t0 = time.perf_counter()
        summary = compare(cfg, out, overwrite=True, progress=not args.no_progress, echo=lambda *a: None)
        total = time.perf_counter() - t0
        full = 400 if name != "default" or args.steps else cfg.steps
        run = sum(summary[p]["wall_seconds"] - (summary[p].get("compile_seconds") or 0) for p in summary["processes"])
        extrapolated = total - run + run * full / cfg.steps
        print(f"\n{name}: {cfg.name}, n_params {problem.n}, {cfg.steps} steps, k_max {cfg.k_max}, eig_every "
              f"{cfg.eig_every}; one bare gradient step {bare * 1e3:.2f} ms; total {total:.1f} s"
              + (f" (extrapolated to {full} steps: {extrapolated:.0f} s)" if full != cfg.steps else ""))
        print(f"  {'process':9s} {'grad-eq/step':>12s} {'ms/step':>9s} {'compile s':>10s} {'solves':>7s} "
              f"{'HVPs/solve':>10s} {'per eigval':>10s}  status")
        for p in summary["processes"]:
            e = summary[p]
            per = e.get("seconds_per_step") or float("nan")
            mv = e.get("eig_matvecs_per_solve")
            mv_s = f"{mv:10.1f} {mv / cfg.k_max:10.1f}" if mv is not None else f"{'-':>10s} {'-':>10s}"
            print(f"  {p:9s} {per / bare:12.1f} {per * 1e3:9.2f} {e.get('compile_seconds') or 0:10.1f} "
                  f"{e.get('eig_solves', 0):7d} {mv_s}  {e['status']}")
            rows.append((name, p, per / bare, per, mv))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="table", choices=("table", "default", "cf-unit", "minimal"))
    parser.add_argument("--only", action="append", choices=("default", "cnn", "minimal"),
                        help="table: run only this workload (repeatable)")
    parser.add_argument("--steps", type=int, help="table, minimal: steps (default 400)")
    parser.add_argument("--lr", type=float, help=f"minimal: learning rate (default {MINIMAL_LR})")
    parser.add_argument("--eig-every", type=int, default=5,
                        help="minimal: eigen-solve interval for gd and gf, which only log eigenvalues (default 5)")
    parser.add_argument("--eig-tol", type=float, default=1e-4,
                        help="minimal: central-flow LOBPCG relative tolerance (default 1e-4)")
    parser.add_argument("--chunk", type=int, default=25, help="steps per compiled scan")
    parser.add_argument("--out", help="keep the run's output here")
    parser.add_argument("--device", choices=("cpu", "gpu"), help="force a JAX platform")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--no-cache", action="store_true", help="leave JAX's persistent compilation cache off")
    args = parser.parse_args(argv)
    if args.device:
        import jax
        jax.config.update("jax_platforms", "cpu" if args.device == "cpu" else "cuda")
    from numeric.compile_cache import enable
    if not args.no_cache:
        enable()
    {"table": bench_table, "default": bench_default, "cf-unit": bench_cf_unit, "minimal": bench_minimal}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
