"""`gdflows compare`: files, summary, no retracing, bad input, output directory policy, divergence, --device.

Every run is tiny (20 digits, one hidden layer of width 4, one tracked eigenvalue, a few steps) so that
the file runs in about a minute on two CPU cores; compilation dominates.
"""
import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# 64 inputs -> 4 tanh units -> 10 outputs: 64*4 + 4 + 4*10 + 10 parameters.
TINY = ["--n", "20", "--widths", "4", "--k-max", "1", "--no-progress"]
TINY_PARAMS = 64 * 4 + 4 + 4 * 10 + 10
SUMMARY_KEYS = ("final_loss", "final_distance_to_gd", "max_distance_to_gd", "final_sharpness", "wall_seconds")
FIGURES = ("loss.png", "sharpness.png", "distance.png", "variance.png")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def gdflows_compare(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "numeric.cli", "compare", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


@pytest.fixture
def cli(capsys):
    """``gdflows compare ARGS`` in-process: (exit code, stdout, stderr); JAX's x64 flag restored after."""
    import jax

    from numeric.cli import main

    old = jax.config.jax_enable_x64

    def call(*args):
        code = main(["compare", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    yield call
    jax.config.update("jax_enable_x64", old)


def one_error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gdflows: error: ") and "Traceback" not in err, err
    return lines[0]


# --------------------------------------------------------------------------------- end to end (--device cpu)
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One small gd,cf run through the real command line (a subprocess), forced onto the CPU."""
    out = tmp_path_factory.mktemp("compare") / "out"
    r = gdflows_compare(*TINY, "--lr", "0.35", "--steps", "6", "--flows", "gd,cf", "--device", "cpu",
                        "--out", str(out))
    return r, out


def test_small_run_on_cpu_writes_results_summary_and_figures(small_run):
    from numeric.results import read_results, read_summary

    r, out = small_run
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    steps = 6

    res = read_results(out / "results.h5")
    assert set(res) == {"gd", "cf"}
    assert res.attrs["status"] == "complete"
    assert res.attrs["problem"] == "digits-mlp-4-tanh-mse"
    assert res.attrs["lr"] == pytest.approx(0.35) and res.attrs["steps"] == steps
    assert res.attrs["n_params"] == TINY_PARAMS
    for proc, series in res.items():
        assert {"loss", "eigs", "distance_to_gd"} <= set(series), (proc, sorted(series))
        for name, arr in series.items():
            assert arr.shape[0] == steps + 1, (proc, name, arr.shape)
        assert np.all(np.isfinite(series["loss"])), (proc, series["loss"])
        assert res.process_attrs[proc]["n_written"] == steps + 1
    assert {"predicted_loss", "sigma_trace"} <= set(res["cf"])
    assert np.all(res["gd"]["distance_to_gd"] == 0)

    summary = read_summary(out / "summary.json")
    assert json.loads((out / "summary.json").read_text()) == summary      # strict JSON
    assert summary["problem"] == res.attrs["problem"]
    assert summary["lr"] == pytest.approx(0.35) and summary["steps"] == steps
    assert summary["n_params"] == TINY_PARAMS
    assert summary["processes"] == ["gd", "cf"] and "gf" not in summary
    for proc in ("gd", "cf"):
        entry = summary[proc]
        for key in SUMMARY_KEYS:
            assert key in entry, (proc, key)
        assert entry["status"] == "ok"
        assert entry["wall_seconds"] > 0
        loss, dist = res[proc]["loss"], res[proc]["distance_to_gd"]
        assert entry["final_loss"] == pytest.approx(loss[-1], rel=1e-6)
        assert entry["final_distance_to_gd"] == pytest.approx(dist[-1], rel=1e-6, abs=1e-12)
        assert entry["max_distance_to_gd"] == pytest.approx(np.max(dist), rel=1e-6, abs=1e-12)
        assert entry["final_sharpness"] == pytest.approx(res[proc]["eigs"][-1, 0], rel=1e-6)
    assert summary["gd"]["final_distance_to_gd"] == 0
    assert summary["cf"]["max_distance_to_gd"] > 0          # the central flow is not GD
    for key in ("predicted_loss_rel_err", "sharpness_max_rel_dev"):
        assert key in summary["cf"]
        assert summary["cf"][key] is None or summary["cf"][key] >= 0
    assert summary["acceptance"], "no acceptance checks in the summary"

    written = [name for name in FIGURES if (out / name).exists()]
    assert {"loss.png", "sharpness.png", "distance.png"} <= set(written), written
    for name in written:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name

    lines = r.stdout.splitlines()
    header = [i for i, line in enumerate(lines) if line.startswith("process") and "final loss" in line]
    assert len(header) == 1, r.stdout
    rows = lines[header[0] + 1:header[0] + 3]
    assert rows[0].split()[0] == "gd" and rows[1].split()[0] == "cf", r.stdout
    assert rows[0].split()[-1] == "ok" and rows[1].split()[-1] == "ok", r.stdout
    assert float(rows[0].split()[1]) == pytest.approx(summary["gd"]["final_loss"], rel=1e-3)
    verdicts = [line for line in lines if line.startswith(("PASS  ", "FAIL  ", "n/a   "))]
    assert len(verdicts) == len(summary["acceptance"]) >= 1, r.stdout
    assert any("results.h5" in line and "summary.json" in line for line in lines), r.stdout


def test_a_run_below_the_edge_says_so_in_one_line_and_marks_the_checks_not_applicable(cli, tmp_path):
    """Four steps at a small learning rate stay far below 2/η: one plain line with GD's largest
    sharpness as a fraction of 2/η (recomputed from the results file), the EoS checks "n/a", no FAIL."""
    from numeric.results import read_results, read_summary

    out = tmp_path / "below"
    code, stdout, err = cli(*TINY, "--lr", "0.02", "--steps", "4", "--flows", "gd,cf", "--no-figures",
                            "--out", str(out))
    assert code == 0, err
    summary, res = read_summary(out / "summary.json"), read_results(out / "results.h5")
    fraction = np.nanmax(res["gd"]["eigs"][:, 0]) * 0.02 / 2
    assert fraction < 1
    eos = summary["eos"]
    assert eos["edge_reached"] is False and eos["gd_onset"] is None
    said = [line for line in stdout.splitlines() if line.startswith("GD's sharpness never reached 2/η")]
    assert said == [eos["edge_message"]], stdout
    assert f"(largest {fraction:.2f}·2/η)" in said[0] and "--lr" in said[0] and "--steps" in said[0]
    assert summary["acceptance"] and all(c["passed"] is None for c in summary["acceptance"])
    assert not [line for line in stdout.splitlines() if line.startswith("FAIL")], stdout


# --------------------------------------------------------------------------------------------- no retracing
def test_one_compiled_scan_per_chunk_length():
    """≤ 2 compiled scans per process (full chunks + a last partial chunk), 1 when chunk divides steps.

    Independently of the driver's own counter, JAX's backend-compile events show that the chunks after
    the first one of a given length compile nothing.
    """
    import jax.monitoring

    from numeric.compare import CompareConfig, build_problem, settings_for
    from numeric.driver import run

    cfg = CompareConfig(n=20, widths=(4,), k_max=1, lr=0.3)
    problem, settings = build_problem(cfg), settings_for(cfg)
    compiles, seen = [0], {}

    def on_event(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles[0] += 1

    def progress(process, done, steps):
        seen.setdefault(process, []).append((done, compiles[0]))
    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        flows = ["gd", "midpoint"]
        result = run(problem, cfg.lr, 7, flows, settings=settings, chunk=2, progress=progress)  # chunks 2,2,2,1
        exact = run(problem, cfg.lr, 4, ["gd"], settings=settings, chunk=2)                    # chunks 2,2
    finally:
        jax.monitoring.unregister_event_duration_listener(on_event)
    assert exact.compiles == {"gd": 1}
    assert exact.status == {"gd": "ok"}
    assert set(result.compiles) == set(flows)
    for name in flows:
        assert 1 <= result.compiles[name] <= 2, result.compiles
        assert result.status[name] == "ok", result.status
        loss = result.series[name]["loss"]
        assert loss.shape == (8,) and np.all(np.isfinite(loss)), (name, loss)
        marks = seen[name]
        assert [done for done, _ in marks] == [2, 4, 6, 7], marks
        assert marks[0][1] == marks[2][1], f"{name}: the 2nd and 3rd chunks of 2 steps compiled: {marks}"


# ------------------------------------------------------------------------------------------------ bad input
@pytest.fixture
def cifar_dirs(tmp_path):
    """An empty directory, one whose batches are not CIFAR batches, and one whose batches would run code."""
    empty = tmp_path / "empty"
    empty.mkdir()
    malformed = tmp_path / "malformed"
    malformed.mkdir()
    evil = tmp_path / "evil"
    evil.mkdir()
    pwned = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {pwned}",)
    for i in range(1, 6):
        (malformed / f"data_batch_{i}").write_bytes(pickle.dumps([1, 2, 3], protocol=2))
        (evil / f"data_batch_{i}").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2))
    return {"EMPTY": empty, "MALFORMED": malformed, "EVIL": evil, "PWNED": pwned}


BAD_INPUT = [
    (["--data", "foo"], ["data", "'foo'"]),
    (["--model", "foo"], ["model", "'foo'"]),
    (["--activation", "foo"], ["activation", "'foo'"]),
    (["--loss-fn", "foo"], ["loss", "'foo'"]),
    (["--data", "cifar10", "--data-dir", "EMPTY"], ["--data-dir", "data_batch_1", "EMPTY"]),
    (["--data", "cifar10"], ["--data-dir", "data_batch_1"]),
    (["--data", "cifar10", "--data-dir", "MALFORMED"], ["--data-dir", "not a CIFAR-10 batch"]),
    (["--data", "cifar10", "--data-dir", "EVIL"], ["--data-dir", "refused global"]),
    (["--lr", "0"], ["--lr", "must be > 0"]),
    (["--lr", "-1"], ["--lr", "must be > 0"]),
    (["--lr", "abc"], ["--lr", "expected a number", "'abc'"]),
    (["--steps", "0"], ["--steps", "must be > 0"]),
    (["--flows", "gd,xx"], ["flows", "xx"]),
    (["--widths", "8,a"], ["--widths", "'8,a'"]),
    (["--n", "25"], ["n", "multiple of classes"]),
    (["--device", "tpu"], ["--device", "tpu"]),
    (["--problem", "nosuch"], ["--problem", "'nosuch'"]),
]


@pytest.mark.parametrize("args, needles", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(args, needles, cli, cifar_dirs, tmp_path):
    def fill(text):
        return str(cifar_dirs[text]) if text in cifar_dirs else text
    out = tmp_path / "out"
    code, stdout, err = cli(*TINY, "--steps", "2", "--flows", "gd", *map(fill, args), "--out", str(out))
    assert code == 2, stdout + err
    line = one_error_line(err)
    for needle in needles:
        assert fill(needle) in line, line
    assert not out.exists(), f"{out} was created although the input was rejected: {sorted(os.listdir(out))}"
    assert not cifar_dirs["PWNED"].exists()


# ------------------------------------------------------------------------------------- the output directory
def test_existing_output_directory_is_refused_and_left_untouched(cli, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    for extra in ([], ["--overwrite"]):          # --overwrite never deletes a directory gdflows did not write
        code, stdout, err = cli(*TINY, "--steps", "2", "--flows", "gd", "--out", str(out), *extra)
        assert code == 2, stdout + err
        line = one_error_line(err)
        assert "--out" in line and str(out) in line, line
        if not extra:
            assert "--overwrite" in line, line
        assert sorted(os.listdir(out)) == ["notes.txt"]
        assert (out / "notes.txt").read_text() == "precious"


def test_overwrite_replaces_a_previous_gdflows_output(small_run, cli, tmp_path):
    from numeric.results import read_results, read_summary

    r, previous = small_run
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / "again"
    shutil.copytree(previous, out)
    (out / "stale.txt").write_text("from an earlier run")
    code, stdout, err = cli(*TINY, "--steps", "2", "--flows", "gd", "--no-figures", "--out", str(out))
    assert code == 2 and "--overwrite" in one_error_line(err)
    assert (out / "stale.txt").exists() and (out / "loss.png").exists()

    code, stdout, err = cli(*TINY, "--steps", "2", "--flows", "gd", "--no-figures", "--out", str(out), "--overwrite")
    assert code == 0, stdout + err
    files = set(os.listdir(out))
    assert {"results.h5", "summary.json"} <= files
    assert not files & {"stale.txt", *FIGURES}, files           # nothing of the old run is left
    res = read_results(out / "results.h5")
    assert set(res) == {"gd"} and res.attrs["steps"] == 2 and res["gd"]["loss"].shape == (3,)
    assert read_summary(out)["processes"] == ["gd"]


# ---------------------------------------------------------------------------------------------- divergence
def test_divergence_exit_2_keeps_data(cli, tmp_path):
    from numeric.results import read_results, read_summary

    out = tmp_path / "div"
    code, stdout, err = cli(*TINY, "--lr", "1000", "--steps", "3", "--flows", "gd,cf", "--no-figures",
                            "--out", str(out))
    assert code == 2, stdout[-2000:] + err[-2000:]
    line = one_error_line(err)
    assert "diverged" in line and "--lr" in line and "smaller" in line, line
    assert str(out) in line, line
    summary = read_summary(out / "summary.json")
    assert summary["gd"]["status"].startswith("diverged"), summary["gd"]
    assert summary["cf"]["status"].startswith("skipped"), summary["cf"]
    res = read_results(out / "results.h5")
    assert res.attrs["status"] != "complete"
    loss = res["gd"]["loss"]
    assert loss.shape == (4,) and np.isfinite(loss[0])
    assert np.isnan(loss[-1])                     # steps after the divergence are not reached
    assert summary["gd"]["final_loss"] == pytest.approx(loss[np.flatnonzero(np.isfinite(loss))[-1]], rel=1e-6)
    assert "diverged" in stdout                   # the table still shows what happened


def test_real_process_exit_code_for_bad_input(tmp_path):
    out = tmp_path / "out"
    r = gdflows_compare("--lr", "abc", "--out", str(out), timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--lr" in one_error_line(r.stderr) and not out.exists()


# --------------------------------------------------------------------------------------------------- device
def test_device_gpu_without_a_gpu_is_one_line_exit_2(cli, tmp_path):
    import jax

    try:
        has_gpu = bool(jax.devices("gpu"))
    except RuntimeError:
        has_gpu = False
    if has_gpu:
        pytest.skip("a GPU is visible to JAX")
    out = tmp_path / "out"
    code, stdout, err = cli(*TINY, "--steps", "2", "--flows", "gd", "--device", "gpu", "--out", str(out))
    assert code == 2, stdout + err
    line = one_error_line(err)
    assert "--device" in line and "GPU" in line, line
    assert not out.exists()


def test_a_registered_toy_problem_runs_through_compare(cli, tmp_path):
    """--problem normal_form: the central flow's Σ is the exact 2-cycle's σ² = 2(z* − z_e)."""
    out = tmp_path / "nf"
    code, stdout, err = cli("--problem", "normal_form", "--lr", "0.8", "--steps", "300", "--flows", "gd,cf",
                            "--no-progress", "--no-figures", "--out", str(out))
    assert code == 0, stdout + err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problem"] == "normal_form" and summary["lr"] == 0.8 and summary["steps"] == 300
    from numeric.problems import get_problem
    known = get_problem("normal_form", lr=0.8).known
    assert summary["cf"]["final_sigma_trace"] == pytest.approx(known["sigma2"], rel=1e-6)
    assert summary["cf"]["final_sharpness"] == pytest.approx(2 / 0.8, rel=1e-6)
