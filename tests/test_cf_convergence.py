"""Convergence of the central flow's Euler substeps on the default digits problem, against a run with
many more substeps (the converged reference); the study itself is ``benchmarks/cf_convergence.py``."""
import importlib.util
import pathlib

import pytest

_SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "cf_convergence.py"


def _study():
    spec = importlib.util.spec_from_file_location("cf_convergence", _SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.study


@pytest.mark.slow
def test_euler_substeps_converge_at_first_order(no_x64):
    """Through the edge (GD reaches it at step ~78): doubling the substeps halves the distance to
    the 16-substep flow, up to the reference's own error (first order: ratio 2 against an exact
    reference, 3 against a 16-substep one when comparing 4 and 8)."""
    out = _study()(steps=100, substeps=(4, 8), reference=16)
    e4, e8 = (r["max_rel"] for r in out["rows"])
    assert 0 < e8 < e4
    assert 1.8 < e4 / e8 < 4.0, (e4, e8)


@pytest.mark.long
def test_default_substeps_within_two_percent_of_the_converged_flow(no_x64):
    """The default run's 400 steps: the default 8 substeps stay within 2% of ‖w_GD − w_GF‖ of the
    64-substep flow over the whole run (the paper's 4: 2.6%)."""
    from numeric.compare import DEFAULT

    out = _study()(steps=400, substeps=(DEFAULT.cf_substeps,), reference=64)
    assert out["rows"][0]["max_rel"] <= 0.02, out
