"""`gdflows sweep` and `gdflows merge`: the grid, its slices, runs spread over devices, resume, bad input.

The end-to-end runs are tiny (20 digits, 4 hidden units, 6 steps). The one-go sweep runs on 4 forced
host devices in a subprocess; the same grid run as two slices on one device and merged must give
bit-identical series (products this small are not split differently by the two device settings; at
full size float32 results depend on the device setting in the last bit, see the README), and every
table entry is recomputed from the runs' own results files.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numeric.sweep import Grid, read_sweep

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--n", "20", "--widths", "4", "--k-max", "1", "--steps", "6", "--flows", "gd,gf,cf", "--no-figures"]
GRID = ["--lr", "0.3,0.5", "--seed", "0,1"]


def gdflows(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "numeric.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, **(env or {})})


# ------------------------------------------------------------------------------------------ the grid
@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 4), min_size=0, max_size=3), n=st.integers(1, 7))
def test_slices_cover_the_grid_once(sizes, n):
    from numeric.sweep import Grid

    grid = Grid(tuple((f"opt{i}", tuple(range(k))) for i, k in enumerate(sizes)), {}, ())
    ids = [rid for rid, _ in grid.points()]
    assert len(ids) == len(set(ids)) == int(np.prod(sizes))
    sliced = [rid for i in range(n) for k, (rid, _) in enumerate(grid.points()) if k % n == i]
    assert sorted(sliced) == sorted(ids)


def test_points_vary_the_last_axis_fastest_and_ids_name_the_values():
    grid = Grid((("lr", (0.2, 0.4)), ("seed", (0, 1))), {}, ())
    assert [(rid, p) for rid, p in grid.points()] == [
        ("000-lr0.2-seed0", {"lr": 0.2, "seed": 0}), ("001-lr0.2-seed1", {"lr": 0.2, "seed": 1}),
        ("002-lr0.4-seed0", {"lr": 0.4, "seed": 0}), ("003-lr0.4-seed1", {"lr": 0.4, "seed": 1})]


def test_each_run_takes_the_optimizers_defaults_for_what_is_not_given():
    grid = Grid((("lr", (0.01, 0.02)),), {"optimizer": "rmsprop"}, ("optimizer",))
    cfg = grid.config({"lr": 0.01})
    assert cfg.lr == 0.01 and cfg.flows == ("rmsprop", "sf", "cf") and cfg.beta2 == 0.9   # rmsprop's defaults


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("args, needle", [
    (["--lr", "0.2,-1"], "--lr: must be > 0"),
    (["--lr", "0.2,x"], "--lr: expected a number"),
    (["--activation", "tanh,sigmoid"], "sigmoid"),
    (["--seed", "0,1", "--shard", "3/2"], "--shard"),
    (["--seed", "0,1", "--shard", "a"], "--shard"),
    (["--beta2", "0.9,1.5"], "--beta2"),
    (["--widths", "8,x/4"], "--widths"),
])
def test_bad_sweep_input_is_one_line_and_exit_code_2(tmp_path, args, needle):
    out = tmp_path / "sweep"
    r = gdflows("sweep", *TINY, *args, "--out", str(out))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gdflows: error: ") and needle in lines[0], r.stderr
    assert not out.exists()


def test_merge_refuses_what_is_not_a_sweep_and_different_sweeps(tmp_path):
    from derive.errors import DeriveInputError
    from numeric.sweep import merge

    (tmp_path / "plain").mkdir()
    with pytest.raises(DeriveInputError, match="^sources: .* is not a gdflows sweep directory"):
        merge([tmp_path / "plain"], tmp_path / "out")
    for name, lrs in (("a", [0.1, 0.2]), ("b", [0.1, 0.3])):
        d = tmp_path / name
        (d / "runs").mkdir(parents=True)
        spec = {"axes": [["lr", lrs]], "base": {}, "explicit": ["lr"], "shard": None}
        (d / "run.json").write_text(json.dumps({"command": "sweep", "options": {"grid": spec}, "status": "complete"}))
    with pytest.raises(DeriveInputError, match="^sources: the directories hold different sweeps"):
        merge([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ end to end
def in_process(*args):
    """``gdflows ARGS`` in this process (one CPU device): a CompletedProcess-like record."""
    import contextlib
    import io
    from types import SimpleNamespace

    import jax

    from numeric.cli import main

    x64, out, err = jax.config.jax_enable_x64, io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        jax.config.update("jax_enable_x64", x64)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The grid run in one go on 4 forced host devices (a subprocess: the flag must precede JAX's
    start), and as two slices on this process's one device, merged."""
    base = tmp_path_factory.mktemp("sweep")
    one = gdflows("sweep", *TINY, *GRID, "--out", str(base / "one"),
                  env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    slices = [in_process("sweep", *TINY, *GRID, "--shard", f"{i}/2", "--out", str(base / f"s{i}")) for i in (1, 2)]
    merged = in_process("merge", str(base / "s1"), str(base / "s2"), "--out", str(base / "merged"))
    return base, one, slices, merged


@pytest.mark.slow
def test_sweep_on_four_devices_equals_two_slices_merged(sweeps):
    base, one, slices, merged = sweeps
    for r in (one, *slices, merged):
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    used = {line.split(" on ")[1].split(":")[0] + ":" + line.split(" on ")[1].split(":")[1]
            for line in one.stdout.splitlines() if " on cpu:" in line}
    assert len(used) == 4, one.stdout                        # four runs, four devices
    a, b = read_sweep(base / "one"), read_sweep(base / "merged")
    ids = [k for k in a if not k.startswith("_")]
    assert ids == [k for k in b if not k.startswith("_")] == ["000-lr0.3-seed0", "001-lr0.3-seed1",
                                                             "002-lr0.5-seed0", "003-lr0.5-seed1"]
    for rid in ids:
        for proc in ("gd", "gf", "cf"):
            for name, arr in a[rid][proc].items():
                np.testing.assert_array_equal(arr, b[rid][proc][name], err_msg=f"{rid}/{proc}/{name}")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    assert strip(a["_rows"]) == strip(b["_rows"])
    for i in (1, 2):   # each slice holds its round-robin half
        assert [k for k in read_sweep(base / f"s{i}") if not k.startswith("_")] == ids[i - 1::2]


@pytest.mark.slow
def test_sweep_table_is_what_the_runs_files_say(sweeps):
    """Every table entry recomputed from the run's own results.h5 (not from the sweep's code)."""
    from numeric.results import read_results

    base = sweeps[0]
    table = json.loads((base / "one" / "sweep.json").read_text())
    assert table["missing"] == [] and len(table["runs"]) == 4
    csv_rows = (base / "one" / "sweep.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 5 and csv_rows[0].startswith("id,lr,seed,status")
    for row in table["runs"]:
        res = read_results(base / "one" / "runs" / row["id"] / "results.h5")
        lr = res.attrs["lr"]
        assert lr == row["lr"] and row["status"] == "complete"
        top = res["gd"]["eigs"][:, 0]
        above = np.flatnonzero(top >= 2 / lr)
        assert row["onset"] == (int(above[0]) if above.size else None)
        assert row["edge_reached"] == bool(above.size)
        assert row["peak_over_edge"] == pytest.approx(np.max(top) * lr / 2, rel=1e-12)
        ratio = res["cf"]["distance_to_gd"][-1] / res["gf"]["distance_to_gd"][-1]
        assert row["cf_over_stable"] == pytest.approx(ratio, rel=1e-12)
        if row["onset"] is not None:
            loss = res["gd"]["loss"]
            avg = np.array([loss[max(0, k - 10):k + 11].mean() for k in range(len(loss))])[row["onset"]:]
            assert row["measured_loss"] == pytest.approx(avg.mean(), rel=1e-9)
            assert row["predicted_loss"] == pytest.approx(res["cf"]["predicted_loss"][row["onset"]:].mean(), rel=1e-9)


@pytest.mark.slow
def test_figures_and_resume_of_an_interrupted_sweep(sweeps, tmp_path):
    """A sweep whose second run is missing (as after a kill) resumes that run only, to the same numbers;
    the merged directory gets the sweep figures."""
    base = sweeps[0]
    d = tmp_path / "resumed"
    shutil.copytree(base / "s1", d)
    manifest = json.loads((d / "run.json").read_text())
    (d / "run.json").write_text(json.dumps({**manifest, "status": "interrupted"}))
    shutil.rmtree(d / "runs" / "002-lr0.5-seed0")
    r = in_process("sweep", "--resume", str(d))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "000-lr0.3-seed0: complete (kept)" in r.stdout and "002-lr0.5-seed0 on" in r.stdout, r.stdout
    again, first = read_sweep(d), read_sweep(base / "s1")
    for proc in ("gd", "gf", "cf"):
        for name, arr in first["002-lr0.5-seed0"][proc].items():
            np.testing.assert_array_equal(arr, again["002-lr0.5-seed0"][proc][name])
    fig = in_process("merge", str(base / "s1"), str(base / "s2"), "--out", str(tmp_path / "figs"))
    assert fig.returncode == 0, fig.stderr
    for name in ("sweep_sharpness.png", "sweep_ratio.png", "sweep_loss.png"):
        assert (tmp_path / "figs" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
