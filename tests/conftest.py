"""Shared test helpers: random rational points and the tolerances used across the suite."""
import random

import pytest
import sympy as sp

# Tolerances in one place (float64 oracles unless stated).
TOL_F64 = 1e-10
TOL_F32 = 2e-4


def rational_point(seed, n, lo=-9, hi=9):
    rng = random.Random(seed)
    return [sp.Rational(rng.randint(lo, hi), rng.randint(1, 7)) for _ in range(n)]


def is_zero_matrix(m):
    return all(sp.expand(e) == 0 for e in m)


def _jax_x64(enabled):
    import jax
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", enabled)
    yield
    jax.config.update("jax_enable_x64", old)


@pytest.fixture
def x64():
    """Double precision for the test, restored afterwards."""
    yield from _jax_x64(True)


@pytest.fixture
def no_x64():
    """Single precision for the test, restored afterwards."""
    yield from _jax_x64(False)


def pytest_configure(config):
    """One persistent compilation cache for the session (this process and the CLI subprocesses),
    in a fresh folder removed at the end: programs shared by several tests compile once."""
    import os
    import tempfile

    if "GDFLOWS_JAX_CACHE" not in os.environ:
        config._gdflows_cache = tempfile.TemporaryDirectory(prefix="gdflows-test-jax-cache-")
        os.environ["GDFLOWS_JAX_CACHE"] = config._gdflows_cache.name
    from numeric.compile_cache import enable
    enable()


def pytest_unconfigure(config):
    cache = getattr(config, "_gdflows_cache", None)
    if cache is not None:
        cache.cleanup()


def pytest_collection_modifyitems(config, items):
    """``long`` checks run only when asked for (``-m long``), so the default run stays short."""
    if "long" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="a check of several minutes: run it with -m long")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


def _compare_cli(tmp_path_factory, name, *args):
    import pathlib
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("compare") / name
    root = pathlib.Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "numeric.cli", "compare", "--out", str(out), "--no-progress", *args],
                       capture_output=True, text=True, cwd=root, timeout=1200)
    return out, r


@pytest.fixture(scope="session")
def default_compare_run(tmp_path_factory):
    """The main job with its embedded defaults (``gdflows compare``), run once per test session.

    Returns ``(output directory, completed process)``; used by the acceptance test and notebook 03.
    """
    return _compare_cli(tmp_path_factory, "default")


@pytest.fixture(scope="session")
def rmsprop_compare_run(tmp_path_factory):
    """``gdflows compare --optimizer rmsprop`` with its defaults, once per session (acceptance, notebook 04)."""
    return _compare_cli(tmp_path_factory, "rmsprop", "--optimizer", "rmsprop")


@pytest.fixture(scope="session")
def rmsprop_diag_compare_run(tmp_path_factory):
    """``gdflows compare --optimizer rmsprop-diag`` with its defaults (a ``long`` check)."""
    return _compare_cli(tmp_path_factory, "rmsprop-diag", "--optimizer", "rmsprop-diag")
