"""numeric.figures: the compare command's PNGs from a synthetic results.h5 (no JAX runs)."""
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numeric.figures import make_figures, measured_variance
from numeric.results import ResultsWriter, read_results

ETA, ROWS, ONSET = 0.1, 401, 150
ALL = ["loss.png", "sharpness.png", "distance.png", "variance.png"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_results(path, data, attrs=None):
    """Write ``{process: {series: array}}`` with ResultsWriter and read it back."""
    shapes = {p: {k: np.shape(v)[1:] for k, v in series.items()} for p, series in data.items()}
    attrs = {"problem": "synthetic", "lr": ETA, "n_params": 3, "steps": ROWS - 1} if attrs is None else attrs
    with ResultsWriter(path, shapes, ROWS, attrs) as w:
        for proc, series in data.items():
            if series:
                w.write(proc, series, 0)
    return read_results(path)


def synthetic():
    """GD whose sharpness rises to 2/η and oscillates; cf pinned at 2/η with Σ; gf, mf, midpoint drifting."""
    t = np.arange(ROWS, dtype=float)
    edge = 2.0 / ETA
    flip = (-1.0) ** t
    amp = 0.1 * np.clip((t - ONSET) / 20.0, 0.0, 1.0)          # GD's oscillation amplitude along u1
    base = np.exp(-t / 80.0) + 0.05
    sharp_smooth = np.minimum(10.0 + 10.0 * t / ONSET, edge)
    gd_sharp = np.where(t < ONSET, sharp_smooth, edge + 1.5 * np.sin(2 * np.pi * t / 12.0))
    gd_eigs = np.stack([gd_sharp, 0.6 * sharp_smooth, 0.3 * sharp_smooth], axis=1)
    gd_eigs[t % 5 != 0] = np.nan                                # eigenvalues computed every 5 steps
    sigma_diag = np.stack([amp ** 2, (0.3 * amp) ** 2, np.zeros(ROWS)], axis=1)
    rng = np.random.default_rng(0)
    offset = np.stack([amp * flip, 0.3 * amp * flip, 1e-4 * rng.standard_normal(ROWS)], axis=1)
    gd = {"loss": base + 10.0 * amp ** 2 * (1.0 + 0.9 * flip), "eigs": gd_eigs, "grad_norm2": base ** 2,
          "distance_to_gd": np.zeros(ROWS), "gd_offset": np.zeros((ROWS, 3))}
    cf = {"loss": base, "eigs": np.stack([sharp_smooth, 0.6 * sharp_smooth, 0.3 * sharp_smooth], axis=1),
          "distance_to_gd": np.sqrt((offset ** 2).sum(axis=1)) + 1e-5, "gd_offset": offset,
          "predicted_loss": base + sigma_diag.sum(axis=1) / ETA, "sigma_trace": sigma_diag.sum(axis=1),
          "sigma_diag": sigma_diag, "n_critical": (t >= ONSET - 1).astype(float)}
    gf = {"loss": 1.1 * base, "eigs": np.stack([10.0 + t / 15.0, 6.0 + 0 * t, 3.0 + 0 * t], axis=1),
          "distance_to_gd": 1e-3 * t ** 1.5}
    mf = {"loss": 1.05 * base, "eigs": np.stack([10.0 + t / 16.0, 6.0 + 0 * t, 3.0 + 0 * t], axis=1),
          "distance_to_gd": 1e-5 * t + 1e-3 * np.maximum(t - ONSET, 0) ** 1.5}
    midpoint = {"loss": base + 1e-3, "distance_to_gd": 0.5 * amp + 1e-4}
    return {"gd": gd, "gf": gf, "mf": mf, "cf": cf, "midpoint": midpoint}


def assert_png(path):
    from matplotlib.image import imread

    raw = path.read_bytes()
    assert raw[:8] == PNG_SIGNATURE and raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    assert width >= 600 and height >= 300
    assert len(raw) > 10_000
    img = imread(path)
    assert img.shape[:2] == (height, width) and img[..., :3].std() > 0.05   # not a blank canvas


def test_all_four_figures(tmp_path):
    results = write_results(tmp_path / "results.h5", synthetic())
    paths = make_figures(results, tmp_path)
    assert paths == [tmp_path / name for name in ALL]
    for path in paths:
        assert_png(path)


def test_only_gd_gives_a_subset(tmp_path):
    data = synthetic()
    results = write_results(tmp_path / "results.h5", {"gd": data["gd"]})
    assert [p.name for p in make_figures(results, tmp_path)] == ["loss.png", "sharpness.png"]
    assert not (tmp_path / "distance.png").exists() and not (tmp_path / "variance.png").exists()


def test_missing_series_and_processes(tmp_path):
    data = synthetic()
    cf = {k: v for k, v in data["cf"].items() if k not in ("gd_offset", "eigs")}
    results = write_results(tmp_path / "results.h5", {"gd": {"loss": data["gd"]["loss"]}, "cf": cf})
    # no eigenvalues anywhere, no measured offsets: loss and distance only
    assert [p.name for p in make_figures(results, tmp_path)] == ["loss.png", "distance.png"]
    results = write_results(tmp_path / "r2.h5", {"cf": {"sigma_diag": data["cf"]["sigma_diag"],
                                                        "gd_offset": data["cf"]["gd_offset"]}}, attrs={})
    out = tmp_path / "only_variance"
    out.mkdir()
    assert [p.name for p in make_figures(results, out)] == ["variance.png"]  # no lr, no sigma_trace: still drawn


def test_all_nan_series_are_skipped(tmp_path):
    data = synthetic()
    shapes = {p: {k: np.shape(v)[1:] for k, v in s.items()} for p, s in data.items()}
    with ResultsWriter(tmp_path / "results.h5", shapes, ROWS, {"lr": ETA}):
        pass                                                   # nothing written: every series is NaN
    assert make_figures(read_results(tmp_path / "results.h5"), tmp_path) == []
    assert not list(tmp_path.glob("*.png"))
    # finite but unusable data: zero or negative losses (log scale), zero sigma, all-NaN offsets
    data["cf"]["sigma_diag"] = np.zeros((ROWS, 3))
    data["cf"]["gd_offset"] = np.full((ROWS, 3), np.nan)
    data["cf"]["predicted_loss"] = -np.ones(ROWS)
    for series in data.values():
        series["loss"] = np.zeros(ROWS)
    results = write_results(tmp_path / "r2.h5", data)
    assert [p.name for p in make_figures(results, tmp_path)] == ["sharpness.png", "distance.png"]


def test_measured_variance_of_an_alternating_offset():
    a = np.array([0.1, 0.02, 3.0])
    offset = np.where((np.arange(60) % 2 == 0)[:, None], a, -a)
    offset[:10] = np.nan                                       # rows not reached
    var = measured_variance({"cf": {"gd_offset": offset}}, window=5)
    assert var.shape == (60, 3)
    assert np.all(np.isnan(var[:8]))                           # windows centred on rows < 8 see no data
    np.testing.assert_allclose(var[8:], np.broadcast_to(a ** 2, (52, 3)), rtol=1e-12)
    assert measured_variance({"gd": {"loss": np.ones(3)}}) is None


def test_measured_variance_is_a_centred_truncated_mean_of_squares():
    var = measured_variance({"cf": {"gd_offset": np.array([1.0, 2.0, 3.0, 4.0])}}, window=3)
    np.testing.assert_allclose(var[:, 0], [(1 + 4) / 2, (1 + 4 + 9) / 3, (4 + 9 + 16) / 3, (9 + 16) / 2])


@pytest.mark.parametrize("window", [1, 7])
def test_window_is_passed_through(tmp_path, window):
    results = write_results(tmp_path / "results.h5", synthetic())
    assert len(make_figures(results, tmp_path, window=window)) == 4


def test_does_not_touch_pyplot(tmp_path):
    write_results(tmp_path / "results.h5", {"gd": synthetic()["gd"]})
    code = ("import sys; from numeric.figures import make_figures; from numeric.results import read_results; "
            f"make_figures(read_results({str(tmp_path / 'results.h5')!r}), {str(tmp_path)!r}); "
            "assert 'matplotlib.pyplot' not in sys.modules")
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=120)
