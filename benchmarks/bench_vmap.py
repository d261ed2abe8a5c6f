"""Would batching a sweep's runs with ``jax.vmap`` pay? Time one chunk of a process at B learning
rates, one run after another against one vmapped program, on the default problem (or ``--model``).

Every process is a ``lax.scan`` of its step with η an argument, so B runs at B learning rates are
one ``jax.vmap`` away. Under ``vmap`` the data-dependent control flow runs in lockstep: a
``while_loop`` (LOBPCG, the SDCP, diffrax's adaptive steps) iterates until the slowest member is
done, and a ``cond``/``switch`` on batched values (the eigen-solve interval, the central flow's
number of critical eigenvalues) evaluates every branch. Whether that costs more than the batching
saves depends on the device: this script measures it, compiled once per variant, each variant timed
after a warm-up call, and checks that every vmapped member equals its own run.

Usage: python benchmarks/bench_vmap.py [--flows gd,gf,cf] [--batch 4] [--steps 50] [--model mlp]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _timed(fn, *args):
    import jax

    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def measure(name: str, problem, settings, etas, steps: int) -> dict:
    """Seconds for ``steps`` steps of process ``name`` at every η: one after another and vmapped."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from numeric.processes import make_process

    def chunk(state, eta):
        proc = make_process(name, problem, dataclasses.replace(settings, eta=eta))

        def body(st, _):
            st = proc.step(st)
            return st, proc.observe(st)["loss"]
        return jax.lax.scan(body, state, None, length=steps)

    w0 = jnp.asarray(problem.init)
    etas = jnp.asarray(etas, w0.dtype)
    state = make_process(name, problem, dataclasses.replace(settings, eta=float(etas[0]))).init(w0)
    one, batched = jax.jit(chunk), jax.jit(jax.vmap(chunk))
    states = jax.tree_util.tree_map(lambda x: jnp.stack([x] * len(etas)), state)
    _, compile_one = _timed(one, state, etas[0])
    _, compile_batch = _timed(batched, states, etas)
    runs, sequential = [], 0.0
    for eta in etas:
        (_, losses), dt = _timed(one, state, eta)
        runs.append(np.asarray(losses))
        sequential += dt
    (_, losses), vmapped = _timed(batched, states, etas)
    each, bat = np.stack(runs), np.asarray(losses)
    rel = float(np.nanmax(np.abs(bat - each) / np.maximum(np.abs(each), 1e-30)))
    return {"process": name, "sequential_s": sequential, "vmapped_s": vmapped, "speedup": sequential / vmapped,
            "compile_one_s": compile_one, "compile_batched_s": compile_batch, "max_rel_diff": rel}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", default="gd,gf,cf")
    parser.add_argument("--batch", type=int, default=4, help="learning rates per batch (spread over 0.6–1.5 × the model's default)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--device", choices=("cpu", "gpu"), help="force a JAX platform")
    args = parser.parse_args(argv)
    import jax
    import numpy as np

    if args.device:   # as bench_compare.py does
        jax.config.update("jax_platforms", "cpu" if args.device == "cpu" else "cuda")
    from numeric.config import DEFAULT, build_problem, for_model, settings_for

    cfg = for_model(dataclasses.replace(DEFAULT, model=args.model))   # the MLP: DEFAULT itself
    problem = build_problem(cfg)
    etas = list(cfg.lr * np.linspace(0.6, 1.5, args.batch))   # the default MLP: 0.2–0.5
    print(f"{problem.description}\n  n_params = {problem.n}, {args.batch} learning rates {etas[0]:g}…{etas[-1]:g}, "
          f"{args.steps} steps from the same start, on {jax.devices()[0]}")
    print(f"{'process':8s} {'one by one s':>13s} {'vmapped s':>10s} {'speedup':>8s} {'compile 1 s':>12s} "
          f"{'compile B s':>12s} {'max rel diff':>13s}")
    for name in args.flows.split(","):
        r = measure(name, problem, settings_for(cfg), etas, args.steps)
        print(f"{name:8s} {r['sequential_s']:13.2f} {r['vmapped_s']:10.2f} {r['speedup']:8.2f} "
              f"{r['compile_one_s']:12.1f} {r['compile_batched_s']:12.1f} {r['max_rel_diff']:13.2e}")


if __name__ == "__main__":
    main()
