"""Differential testing at scale: ≥ 10,000 random examples of the symbolic-to-numeric path.

Runs the properties of ``tests/test_differential.py`` (strategies and oracle in
``tests/differential.py``) without stopping at the first failure, and prints per property the
examples run, the failures, and the first failures in full. Exit status 1 if anything failed.
Shrink a failure to a minimal example by running the suite's test with more examples, e.g.
``python -m pytest tests/test_differential.py --hypothesis-seed=<seed>``.

    python benchmarks/differential.py                    # 10,000 examples in all
    python benchmarks/differential.py --examples 500 --only values
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

import differential as D  # noqa: E402

import test_operators as O  # noqa: E402

_CLI_DIR = tempfile.mkdtemp(prefix="gdflows-differential-")
_CLI_COUNT = itertools.count()

# Share of the examples per property (values are cheapest and cover the emitter most). The CLI
# property builds the problem `gdflows run --loss` builds and evaluates its loss kernel; every
# 20th example runs the whole command and reads the step-0 loss back from results.h5.
PROPERTIES = {
    "values": (D.value_examples, lambda ex: D.value_case(*ex), 0.5),
    "derivatives": (D.derivative_examples, lambda ex: D.derivative_case(*ex), 0.3),
    "cli": (D.cli_examples, lambda ex: D.cli_case(*ex, _CLI_DIR, end_to_end=next(_CLI_COUNT) % 20 == 0), 0.1),
    "operators": (O.cases, O.operator_case, 0.1),
}


def run_property(name, strategy, case, examples, rng_seed):
    failures, count = [], [0]

    @seed(rng_seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy())
    def body(example):
        count[0] += 1
        try:
            problems = case(example)
        except Exception as err:  # an exception is a failure too: record it and go on
            problems = [f"{type(err).__name__}: {err}".splitlines()[0] + "\n" +
                        "".join(traceback.format_exception(err)[-3:])]
        if problems:
            failures.append((example, problems))

    start = time.perf_counter()
    body()
    return count[0], failures, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="examples in all (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=",".join(PROPERTIES), help="comma-separated properties")
    parser.add_argument("--show", type=int, default=5, help="failures shown in full per property")
    args = parser.parse_args(argv)
    chosen = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PROPERTIES]
    if unknown:
        parser.error(f"--only: unknown properties {unknown}; expected some of {list(PROPERTIES)}")
    total = sum(PROPERTIES[p][2] for p in chosen)
    print(f"{'property':12s} {'examples':>9s} {'failures':>9s} {'seconds':>8s}")
    all_failures, all_examples = 0, 0
    for name in chosen:
        strategy, case, share = PROPERTIES[name]
        n = max(1, round(args.examples * share / total))
        count, failures, seconds = run_property(name, strategy, case, n, args.seed)
        all_failures += len(failures)
        all_examples += count
        print(f"{name:12s} {count:9d} {len(failures):9d} {seconds:8.1f}", flush=True)
        for example, problems in failures[:args.show]:
            print(f"  FAIL {example!r}")
            for p in problems[:3]:
                print(f"       {p}")
    print(f"{'total':12s} {all_examples:9d} {all_failures:9d}")
    skipped = sum(D.SKIPPED.values())
    print(f"comparisons skipped as ill-conditioned (no single correct float64 answer): {skipped}")
    for reason, n in sorted(D.SKIPPED.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {n:6d}  {reason}")
    return 1 if all_failures else 0


if __name__ == "__main__":
    sys.exit(main())
