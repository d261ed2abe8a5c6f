"""`gdflows run`: files, summary fields, bad input and divergence."""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def gdflows(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "numeric.cli", "run", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def test_run_writes_results_and_summary(tmp_path):
    out = tmp_path / "out"
    r = gdflows("--problem", "normal_form", "--steps", "200", "--out", str(out))
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    for proc in ("gd", "gf", "mf", "cf", "midpoint"):
        for key in ("final_loss", "mean_loss_tail", "final_sharpness", "final_distance_to_gd", "final_params"):
            assert key in summary[proc], (proc, key)
        assert set(summary[proc]["final_params"]) == {"x", "z"}
    assert {"final_predicted_loss", "final_sigma_trace"} <= set(summary["cf"])
    assert abs(summary["cf"]["final_sigma_trace"] - 0.5) < 1e-6          # σ² = 2(z* − z_e), exact
    from numeric.results import read_results
    data = read_results(out / "results.h5")
    series = data[0] if isinstance(data, tuple) else data
    assert series["gd"]["loss"].shape[0] == 201
    assert np.isclose(series["gd"]["loss"][-1], summary["gd"]["final_loss"])


def test_custom_loss_and_flows():
    r = gdflows("--loss", "(x*y-1)**2/2", "--init", "x=2.5,y=0.1", "--lr", "0.35", "--steps", "50",
                "--flows", "gd,cf")
    assert r.returncode == 0, r.stderr
    assert "gd " in r.stdout and "cf " in r.stdout and "gf " not in r.stdout


@pytest.mark.parametrize("args, needle", [
    (["--problem", "zhu", "--lr", "0"], "--lr: must be > 0"),
    (["--problem", "zhu", "--lr", "-1"], "--lr: must be > 0"),
    (["--problem", "zhu", "--steps", "0"], "--steps: must be > 0"),
    (["--problem", "nope"], "--problem: unknown 'nope'"),
    (["--loss", "x*y", "--init", "x=1", "--lr", "0.1", "--steps", "5"], "init"),
    (["--loss", "x*y+z", "--params", "x,y", "--init", "x=1,y=2", "--lr", "0.1", "--steps", "5"], "unknown symbols"),
    (["--loss", "__import__('os').system('echo pwned')", "--init", "x=1", "--lr", "0.1", "--steps", "5"],
     "not allowed"),
    (["--problem", "zhu", "--flows", "gd,xx"], "flows"),
])
def test_bad_input_exit_2(args, needle):
    r = gdflows(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "pwned" not in r.stdout


def test_divergence_keeps_data_and_other_processes_finish(tmp_path):
    out = tmp_path / "div"
    r = gdflows("--loss", "x**2/2", "--init", "x=1", "--lr", "2.5", "--steps", "40", "--flows", "gd,gf",
                "--out", str(out))
    assert r.returncode == 2, r.stderr                  # as `compare`: GD diverged, after writing everything
    assert "diverged at step" in r.stdout and "gradient descent diverged" in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gd"]["status"].startswith("diverged") and summary["gf"]["status"] == "ok"
    assert summary["gd"]["steps_reached"] >= 5
    assert summary["gf"]["final_loss"] < 1e-10


def test_run_and_compare_are_one_code_path(tmp_path, x64, capsys):
    """One toy configuration through `run` and through `compare`: the same resolved configuration,
    the same numerical settings (η not among them) and bit-identical series; `run` keeps the
    trajectories of a small problem, `compare` does not."""
    from numeric.cli import main
    from numeric.results import read_results

    common = ["--problem", "zhu", "--steps", "30", "--flows", "gd,gf,cf", "--k-max", "3", "--cf-substeps", "8",
              "--rtol", "1e-9"]
    assert main(["run", *common, "--out", str(tmp_path / "run")]) == 0
    assert main(["compare", *common, "--no-progress", "--no-figures", "--out", str(tmp_path / "cmp")]) == 0
    a, b = read_results(tmp_path / "run" / "results.h5"), read_results(tmp_path / "cmp" / "results.h5")
    assert a.attrs["config"] == b.attrs["config"]
    assert a.attrs["settings"] == b.attrs["settings"] and a.attrs["settings"]["eta"] is None
    for proc in ("gd", "gf", "cf"):
        assert set(a[proc]) - set(b[proc]) == {"w"}
        for name, arr in b[proc].items():
            np.testing.assert_array_equal(a[proc][name], arr, err_msg=f"{proc}/{name}")
    sa, sb = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("run", "cmp"))
    assert sa["eos"] == sb["eos"] and "final_params" in sa["gd"] and "final_params" not in sb["gd"]
