"""Runs that lose nothing: written as they go, readable while running, interrupted by signals,
killed, resumed bit-identically, failures recorded truthfully, I/O errors in one line.

Every run here is a real `gdflows` subprocess; signals are sent to it by the test.
"""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--n", "20", "--widths", "4", "--k-max", "1", "--no-progress", "--no-figures"]
RUN = ["--problem", "zhu", "--steps", "8000", "--flows", "gd,gf,cf"]   # gf runs ~3 s: time to interrupt it


def gdflows(*args, timeout=300, preamble=""):
    code = preamble + "import sys; from numeric.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "numeric.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def rows_written(path, process):
    """``n_written`` of a process, read with plain h5py (no special flags) while the run goes on."""
    try:
        with h5py.File(path, "r") as f:
            return int(f[process].attrs["n_written"])
    except Exception:   # not created yet, or caught mid-write: ask again
        return 0


def wait_for(proc, path, process, rows, timeout=120):
    t0 = time.time()
    while rows_written(path, process) < rows:
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, "the run wrote nothing in time"
        time.sleep(0.05)


def one_line(err, prefix="gdflows: "):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix) and "Traceback" not in err, err
    return lines[0]


def assert_same_datasets(a, b):
    """Every dataset of two results files equal bit for bit (NaN where NaN)."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names = []
        fb.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        assert names and set(names) == set(_datasets(fa))
        for name in names:
            x, y = fa[name][()], fb[name][()]
            assert x.dtype == y.dtype and x.shape == y.shape, name
            assert np.array_equal(x.view(np.uint64), y.view(np.uint64)), name   # bit-identical, NaN included


def _datasets(f):
    out = []
    f.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    r = gdflows("run", *RUN, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


# ------------------------------------------------------------------------------ signals and resume
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_at_a_chunk_writes_summary_and_resume_is_bit_identical(sig, code, uninterrupted, tmp_path):
    out = tmp_path / "run"
    proc = start("run", *RUN, "--out", str(out))
    wait_for(proc, out / "results.h5", "gf", 200)      # readable while running, with plain h5py
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    line = one_line(stderr)
    assert "interrupted" in line and f"--resume {out}" in line
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["gd"]["status"] == "ok"
    assert summary["gf"]["status"].startswith("interrupted at step")
    reached = summary["gf"]["steps_reached"]
    assert 200 <= reached < 8000 and f"interrupted at step {reached}" == summary["gf"]["status"]
    assert summary["cf"] == {**summary["cf"], "status": "not started (interrupted)", "steps_reached": 0}
    from numeric.results import read_results
    res = read_results(out / "results.h5")
    assert res.attrs["status"] == "interrupted"
    assert np.isfinite(res["gf"]["loss"][:reached + 1]).all() and np.isnan(res["gf"]["loss"][reached + 1:]).all()

    r = gdflows("run", "--resume", str(out))
    assert r.returncode == 0, r.stderr
    assert_same_datasets(out / "results.h5", uninterrupted / "results.h5")
    assert json.loads((out / "summary.json").read_text())["status"] == "complete"
    assert not (out / "checkpoint.npz").exists() and not (out / "gd_trajectory.f8").exists()
    r = gdflows("run", "--resume", str(out))
    assert r.returncode == 0 and "complete; nothing to resume" in r.stdout, r.stdout + r.stderr


def test_sigkilled_compare_resumes_bit_identical(tmp_path):
    """Kill a compare with SIGKILL in the middle of a process; --resume gives the same file as a run
    never interrupted (every dataset, bit for bit)."""
    args = [*TINY, "--steps", "150", "--flows", "gd,gf,cf"]
    ref = tmp_path / "ref"
    r = gdflows("compare", *args, "--out", str(ref))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "killed"
    proc = start("compare", *args, "--out", str(out))
    wait_for(proc, out / "results.h5", "gf", 51)
    proc.kill()
    proc.communicate()
    from numeric.results import read_results
    from numeric.rundir import run_status
    assert run_status(out) == "killed"
    res = read_results(out / "results.h5")
    assert res.attrs["status"] == "killed" and res.process_attrs["gd"]["n_written"] == 151
    assert np.isfinite(res["gd"]["loss"]).all()                  # every chunk written before the kill
    r = gdflows("compare", "--resume", str(out), "--lr", "0.5")
    assert r.returncode == 2 and "different arguments" in one_line(r.stderr, "gdflows: error: --resume")
    r = gdflows("compare", "--resume", str(out), "--no-progress", "--no-figures")
    assert r.returncode == 0, r.stderr
    assert_same_datasets(out / "results.h5", ref / "results.h5")
    assert read_results(out / "results.h5").attrs["status"] == "complete"


def test_resume_refuses_what_it_cannot_resume(tmp_path):
    from numeric.rundir import RunDirectory
    r = gdflows("run", "--resume", str(tmp_path))
    assert r.returncode == 2 and "not a gdflows run directory" in one_line(r.stderr)
    out = tmp_path / "run"
    r = gdflows("run", "--problem", "zhu", "--steps", "20", "--out", str(out))
    assert r.returncode == 0, r.stderr
    r = gdflows("compare", "--resume", str(out))
    assert r.returncode == 2 and "gdflows run --resume" in one_line(r.stderr)
    manifest = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**manifest, "status": "running"}))
    held = RunDirectory(out)
    held.acquire()                                   # as a live writer would
    try:
        r = gdflows("run", "--resume", str(out))
        assert r.returncode == 2 and "being written by another" in one_line(r.stderr)
    finally:
        held.release()


# ------------------------------------------------------------------------------- failures, truthfully
def test_gd_divergence_is_exit_2_and_distances_are_nan_from_there(tmp_path):
    out = tmp_path / "div"
    r = gdflows("run", "--loss", "x**4", "--init", "x=3", "--lr", "1", "--steps", "20", "--flows", "gd,gf",
                "--out", str(out))
    assert r.returncode == 2 and "gradient descent diverged at step 1" in one_line(r.stderr), r.stderr
    from numeric.results import read_results
    res = read_results(out / "results.h5")
    assert res.attrs["status"] == "partial"
    assert res["gf"]["distance_to_gd"][0] == 0 and np.isnan(res["gf"]["distance_to_gd"][1:]).all()
    assert np.isnan(res["gf"]["gd_offset"][1:]).all() and np.isfinite(res["gf"]["loss"]).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gd"]["steps_reached"] == 0 and summary["gf"]["status"] == "ok"


def test_failed_ode_solves_and_bad_starts_are_recorded(tmp_path):
    out = tmp_path / "huge"
    r = gdflows("run", "--loss", "x**2/2", "--init", "x=1", "--lr", "1e308", "--steps", "5",
                "--flows", "gd,gf,mf,midpoint", "--out", str(out))
    assert r.returncode == 2, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    for flow in ("gf", "mf"):
        assert summary[flow]["status"].startswith("failed at step 1: the ODE solver"), summary[flow]
        assert summary[flow]["steps_reached"] == 0
    assert "the initial point itself is finite" in summary["midpoint"]["status"]
    r = gdflows("run", "--loss", "sqrt(x)", "--init", "x=0", "--lr", "0.1", "--steps", "10", "--flows", "gd,gf")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    gd_row = next(line for line in r.stdout.splitlines() if line.startswith("gd "))
    assert "n/a" in gd_row                                       # no eigenvalue: shown as such


# ------------------------------------------------------------------------------------ bad input up front
BAD = [
    (["compare", "--lr", "inf"], "--lr: must be a finite number"),
    (["run", "--loss", "x**2", "--init", "x=1", "--lr", "inf", "--steps", "3"], "--lr: must be a finite"),
    (["run", "--problem", "zhu", "--rtol", "nan"], "--rtol: must be a finite"),
    (["run", "--loss", "x**2", "--init", "x=inf", "--lr", "0.1", "--steps", "3"], "init"),
    (["compare", "--seed", "9223372036854775808"], "--seed: must be an integer in [0, 4294967295]"),
    (["compare", "--seed", "-1"], "--seed: must be an integer in [0, 4294967295]"),
    (["compare", "--data", "synthetic", "--classes", "4", "--seed", "-1"], "--seed"),
    (["compare", "--k-max", "1000"], "--k-max: must be at most 8"),
    (["compare", "--mf-order", "50"], "--mf-order: must be at most 6"),
    (["run", "--problem", "zhu", "--cf-substeps", "100000"], "--cf-substeps: must be at most 1000"),
    (["compare", "--widths", "100000,100000"], "--widths: this run needs about"),
    (["compare", "--data", "synthetic", "--classes", "4", "--n", "10000000"], "--n: this run needs about"),
    (["compare", "--steps", "1000000000000"], "--steps: this run needs about"),
    (["run", "--problem", "zhu", "--steps", "1000000000000"], "--steps: this run needs about"),
    (["compare", "--flows", "gd,nope"], "flows"),
]


@pytest.mark.parametrize("args, needle", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_refused_before_anything_is_created(args, needle, tmp_path):
    out = tmp_path / "out"
    r = gdflows(*args, "--out", str(out), timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert needle in one_line(r.stderr, "gdflows: error: ")
    assert not out.exists()


def test_derive_refuses_an_infinite_learning_rate():
    r = gdflows("derive", "--loss", "x**2", "--lr", "inf")
    assert r.returncode == 2 and "--lr: must be a finite number" in one_line(r.stderr)


# ------------------------------------------------------------------------------------------ I/O errors
_FILE_LIMIT = ("import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
               "resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20)); ")
# the file system fails after the first few writes of GD's trajectory, as a full disk would
_DISK_FULL_LATER = ("import errno, os; import numeric.rundir as R; _w = os.pwrite; _n = [0]\n"
                    "def pwrite(fd, data, offset):\n"
                    "    _n[0] += 1\n"
                    "    if _n[0] > 4: raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
                    "    return _w(fd, data, offset)\n"
                    "R.os.pwrite = pwrite\n")


def test_a_file_too_large_for_the_file_system_is_one_line_exit_1(tmp_path):
    out = tmp_path / "big"
    r = gdflows("run", "--problem", "zhu", "--steps", "60000", "--out", str(out), preamble=_FILE_LIMIT)
    assert r.returncode == 1, r.stderr
    assert "results.h5 failed: File too large" in one_line(r.stderr, "gdflows: error: writing")
    assert json.loads((out / "run.json").read_text())["status"] == "failed"


def test_disk_full_mid_run_keeps_what_was_written(tmp_path):
    out = tmp_path / "full"
    r = gdflows("run", "--problem", "zhu", "--steps", "400", "--flows", "gd,gf", "--out", str(out),
                preamble=_DISK_FULL_LATER)
    assert r.returncode == 1, r.stderr
    line = one_line(r.stderr, "gdflows: error: writing")
    assert "gd_trajectory.f8 failed: No space left on device" in line
    from numeric.results import read_results
    res = read_results(out / "results.h5")
    assert res.attrs["status"] == "failed"
    written = res.process_attrs["gd"]["n_written"]
    from numeric.compare import DEFAULT
    assert written >= 2 * DEFAULT.chunk and np.isfinite(res["gd"]["loss"][:written]).all()   # chunks before the failure
