"""The edge-of-stability summary on synthetic series: onsets, the plain "edge not reached" line and the
checks that stop applying below the edge (GD and an adaptive optimizer)."""
import numpy as np
import pytest

from numeric import metrics
from numeric.compare import eos_summary


def _series(top, extra=None):
    eigs = np.stack([np.asarray(top, float), np.zeros(len(top))], axis=1)
    return {"disc": {"eigs": eigs, "loss": np.linspace(1, 0.5, len(top))}, **(extra or {})}


def _gd_summary(top, eta):
    eos = eos_summary({"gd": _series(top)["disc"]}, eta)
    return eos, metrics.acceptance({"discrete": "gd", "eos": eos, "gd": {}, "cf": {}, "gf": {}})


def test_gd_below_the_edge_gives_its_largest_sharpness_as_a_fraction_of_two_over_eta():
    eta = 0.5                                   # 2/η = 4
    eos, checks = _gd_summary([0.5, 1.0, 1.7, 1.2], eta)
    assert eos["edge_reached"] is False and eos["gd_onset"] is None
    assert "never reached 2/η (largest 0.42·2/η)" in eos["edge_message"]   # 1.7 / 4 = 0.425
    assert all(c.passed is None for c in checks)
    assert all(c.line().startswith("n/a   ") and "not applicable" in c.line() for c in checks)


def test_gd_at_the_edge_has_no_message_and_real_verdicts():
    eos, checks = _gd_summary([1.0, 3.0, 4.1, 3.9, 4.0], 0.5)
    assert eos["edge_reached"] is True and eos["gd_onset"] == 2 and "edge_message" not in eos
    assert checks[0].passed is True and checks[0].value == pytest.approx(0.025)
    assert all(c.passed in (True, False) for c in checks)


def test_adaptive_peak_counts_from_its_first_step_below_the_edge():
    """An adaptive optimizer starts far above 2 (ν ≈ 0): that start is not a visit to the edge."""
    eos = eos_summary({"rmsprop": _series([50.0, 9.0, 1.0, 1.6, 1.2])["disc"]}, 0.01, discrete="rmsprop")
    assert eos["edge_reached"] is False
    assert "rmsprop's effective sharpness never reached 2 (largest 0.80·2)" in eos["edge_message"]


def test_adaptive_that_never_comes_below_the_edge_is_told_so():
    eos = eos_summary({"rmsprop": _series([50.0, 9.0, 4.0, 3.0])["disc"]}, 0.01, discrete="rmsprop")
    assert eos["edge_reached"] is False and "never came below 2" in eos["edge_message"]
    assert "smaller learning rate" in eos["edge_message"]


def test_mf_against_gf_over_the_whole_run_when_the_edge_is_never_reached():
    gd = _series([0.5, 1.0, 1.5])["disc"]
    mf = {"distance_to_gd": np.array([0.0, 0.1, 0.3])}
    gf = {"distance_to_gd": np.array([0.0, 0.4, 0.6])}
    eos = eos_summary({"gd": gd, "mf": mf, "gf": gf}, 0.5)
    assert eos["mf_vs_gf_before_eos"] == pytest.approx(0.5)
    checks = metrics.acceptance({"discrete": "gd", "eos": eos, "gd": {}, "mf": {}, "gf": {}})
    assert [c.passed for c in checks] == [None, True]    # GD's edge check n/a, MF vs GF applies


@pytest.mark.parametrize("passed, word", [(True, "PASS"), (False, "FAIL"), (None, "n/a")])
def test_verdict_words(passed, word):
    assert metrics.verdict(passed) == word
