"""Acceptance of the main job: `gdflows compare` with its embedded defaults, at the edge of stability.

The run is the README's main job (the digits MLP, 400 steps of GD, gradient flow, modified flow,
central flow and midpoint); the checks are the theory-against-simulation claims of the central
flows paper, computed by the command from its own results and re-derived here from results.h5.
"""
import json

import numpy as np
import pytest

from numeric import metrics
from numeric.results import read_results

pytestmark = pytest.mark.slow


def test_default_run_writes_results_summary_and_figures(default_compare_run):
    out, r = default_compare_run
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for name in ("results.h5", "summary.json", "loss.png", "sharpness.png", "distance.png", "variance.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 1000, name
    res = read_results(out / "results.h5")
    assert res.attrs["status"] == "complete"
    assert set(res) == {"gd", "gf", "mf", "cf", "midpoint"}
    assert all("w" not in ser for ser in res.values())      # no trajectories stored by default
    printed = [line for line in r.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(printed) == 5 and all(line.startswith("PASS") for line in printed), r.stdout[-3000:]


def test_default_run_meets_the_edge_of_stability_acceptance(default_compare_run):
    out, r = default_compare_run
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    res = read_results(out / "results.h5")
    eta, two = summary["lr"], 2.0 / summary["lr"]
    gd_s, cf_s = res["gd"]["eigs"][:, 0], res["cf"]["eigs"][:, 0]
    # progressive sharpening: GD starts below 2/η and reaches it within the run, then stays within ±15%
    onset = metrics.eos_onset(gd_s, eta)
    assert gd_s[0] < 0.97 * two and onset is not None and onset > 20
    assert np.nanmax(np.abs(gd_s[onset:] / two - 1)) <= 0.15
    # the central flow's sharpness is pinned within 1% of 2/η once Σ is active
    start = metrics.cf_onset(res["cf"]["sigma_trace"])
    assert start is not None and start < onset + 5
    assert np.max(np.abs(cf_s[start:] / two - 1)) <= 0.01
    # it stays near GD while gradient flow drifts away
    d_cf, d_gf = res["cf"]["distance_to_gd"][-1], res["gf"]["distance_to_gd"][-1]
    assert d_cf <= 0.25 * d_gf
    # its predicted loss L + tr Σ/η matches GD's sliding-window average loss
    err = metrics.predicted_loss_rel_err(res["cf"]["predicted_loss"], res["gd"]["loss"], onset)
    assert err <= 0.1
    # before the edge the modified flow is closer to GD than gradient flow
    before = slice(1, onset + 1)
    assert np.max(res["mf"]["distance_to_gd"][before]) < np.max(res["gf"]["distance_to_gd"][before])
    # the command's summary says the same
    assert summary["cf"]["sharpness_max_rel_dev"] == pytest.approx(np.max(np.abs(cf_s[start:] / two - 1)), rel=1e-6)
    assert summary["cf"]["predicted_loss_rel_err"] == pytest.approx(err, rel=1e-9)
    assert all(c["passed"] for c in summary["acceptance"])
    print(f"\nGD onset {onset}, GD max |S/(2/η) − 1| after it {np.nanmax(np.abs(gd_s[onset:] / two - 1)):.3f}, "
          f"CF {np.max(np.abs(cf_s[start:] / two - 1)):.2e}, ‖CF−GD‖/‖GF−GD‖ {d_cf / d_gf:.3f}, "
          f"predicted loss rel. err {err:.4f}")


def test_edge_of_stability_notebook_on_the_default_run(default_compare_run, tmp_path):
    """Notebook 03 redraws the default run from its results file (here: the session's one default run,
    so this test lives in the same file as the others that use it and runs on the same test worker)."""
    from test_cli_notebooks import run_notebook

    out, run = default_compare_run
    assert run.returncode == 0, run.stderr[-2000:]
    r = run_notebook("03_edge_of_stability", tmp_path, GDFLOWS_RESULTS=str(out / "results.h5"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert len(list(tmp_path.glob("*.png"))) >= 5
