"""The `gdflows` command, the notebooks, and the import boundaries between layers."""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def gdflows(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "numeric.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def test_derive_prints_every_derivation_verified():
    r = gdflows("derive")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = r.stdout
    for needle in ("L_η = L + η·‖g‖²/4", "gradient field at order j (general L): 1: yes, 2: no, 3: no, 4: no",
                   "∇S = T[u, u]", "σ² = -2*⟨g, T[u, u]⟩/‖T[u, u]‖²", "E[L] = L + σ²/η",
                   "all derivations verified"):
        assert needle in out
    assert "FAIL" not in out


def test_derive_on_a_user_loss():
    r = gdflows("derive", "--loss", "(x*y-1)**2/2", "--lr", "0.1")
    assert r.returncode == 0, r.stderr
    assert "modified loss (order 1)" in r.stdout and "dx/dt" in r.stdout


@pytest.mark.parametrize("args, needle", [
    (["derive", "--order", "0"], "--order"),
    (["derive", "--loss", "__import__('os').system('echo pwned')"], "loss: function '__import__' is not allowed"),
    (["derive", "--loss", "x.real"], "loss: attribute access"),
    (["derive", "--loss", "x*y", "--params", "x"], "loss: unknown symbols ['y']"),
    (["derive", "--loss", "x**2", "--lr", "-1"], "--lr: must be > 0"),
    (["derive", "--loss", "x**2", "--lr", "abc"], "--lr: expected a number"),
    (["derive", "--loss", "abs(x)*y"], "not smooth"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, needle):
    r = gdflows(*args)
    assert r.returncode == 2
    assert "pwned" not in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_derive_does_not_import_jax_and_numeric_does_not_import_sympy():
    code = ("import sys, derive; assert 'jax' not in sys.modules, 'jax'; "
            "import numeric; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
    code = "import sys, numeric; [getattr(numeric, n) for n in numeric.__all__]; assert 'sympy' not in sys.modules"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    for path in (ROOT / "derive").glob("*.py"):
        assert "import numeric" not in path.read_text() and "from numeric" not in path.read_text(), path


def test_bad_input_is_refused_before_jax_loads():
    """``import numeric`` is cheap (its public names load when first used), so ``gdflows`` answers
    bad input in a fraction of JAX's import time; the names are the real objects."""
    code = ("import sys; from numeric.cli import main; rc = main(['compare', '--lr', 'inf']); "
            "print(rc, 'jax' in sys.modules); import numeric, numeric.compare, numeric.driver; "
            "print(callable(numeric.compare), numeric.run is numeric.driver.run, sorted(dir(numeric)) == sorted(set(dir(numeric))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.split() == ["2", "False", "True", "True", "True"], r.stdout + r.stderr
    assert "--lr: must be a finite number" in r.stderr


def run_notebook(name, cwd, **env):
    jupytext = pytest.importorskip("jupytext")
    path = ROOT / "notebooks" / f"{name}.py"
    nb = jupytext.read(path)
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= 3
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, cwd=cwd, timeout=600,
                          env={**os.environ, **env})


@pytest.mark.parametrize("name", ["01_derivations", "02_small_problems", "05_your_model"])
def test_notebook_executes(name, tmp_path):
    r = run_notebook(name, tmp_path, GDFLOWS_NOTEBOOK_QUICK="1")   # reduced sizes
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]


def test_derive_exits_nonzero_when_a_check_fails(monkeypatch, capsys):
    from derive import report
    from derive.result import Check
    from numeric import cli

    failing = report.Section("broken", ["f = 0"], [Check("an identity", False, "residual 1")])
    monkeypatch.setattr(report, "derivation_report", lambda *a, **k: [failing])
    assert cli.main(["derive"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] an identity" in out and "1 section(s) FAILED" in out


def test_derive_latex_output():
    r = gdflows("derive", "--latex", "--order", "2")
    assert r.returncode == 0
    assert r"L_\eta = L + \eta \frac{\|\nabla L\|^{2}}{4}" in r.stdout
