"""numeric.compile_cache: where JAX's persistent compilation cache lives, and how it is turned off."""
import json
import os
import subprocess
import sys

import jax

from numeric import compile_cache


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GDFLOWS_JAX_CACHE", str(tmp_path / "c"))
    assert compile_cache.cache_dir() == tmp_path / "c"
    for off in ("off", "OFF", "0", "none"):
        monkeypatch.setenv("GDFLOWS_JAX_CACHE", off)
        assert compile_cache.cache_dir() is None
    monkeypatch.delenv("GDFLOWS_JAX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.cache_dir() == tmp_path / "xdg" / "gdflows" / "jax"


def test_enable_writes_compiled_programs_to_the_folder(tmp_path):
    """In a fresh process (JAX reads the folder once): a compiled program lands in the cache."""

    code = ("import jax, jax.numpy as jnp\n"
            "from numeric import compile_cache\n"
            "print(compile_cache.enable())\n"
            "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)\n"
            "f = lambda x: sum(jnp.sin(x * i) for i in range(40))\n"
            "jax.jit(f).lower(jnp.ones(7)).compile()\n")
    env = {**os.environ, "GDFLOWS_JAX_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "cache")
    assert any(p.name.startswith("jit_") for p in (tmp_path / "cache").iterdir())


def test_off_leaves_jax_alone(monkeypatch):
    before = jax.config.jax_compilation_cache_dir
    monkeypatch.setenv("GDFLOWS_JAX_CACHE", "off")
    assert compile_cache.enable() is None
    assert jax.config.jax_compilation_cache_dir == before


def test_a_run_at_another_learning_rate_compiles_no_new_chunk_program(tmp_path):
    """η is an argument of the compiled chunks, not a constant: the chunk programs written to the
    cache by a run at η = 0.3 serve a run at η = 0.4 (and the two runs' numbers still differ)."""
    code = ("import jax, json, numpy as np\n"
            "jax.config.update('jax_enable_x64', True)\n"
            "from numeric import compile_cache, run\n"
            "from numeric.problems import get_problem\n"
            "compile_cache.enable()\n"
            "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)\n"
            "import pathlib, sys\n"
            "cache = pathlib.Path(sys.argv[1])\n"
            "seen, losses = [], []\n"
            "for eta in (0.3, 0.4):\n"
            "    r = run(get_problem('zhu'), eta, 6, ['gd', 'gf', 'cf'], chunk=3)\n"
            "    losses.append(float(r.series['gd']['loss'][-1]))\n"
            "    seen.append(sorted(p.name for p in cache.iterdir() if p.name.startswith('jit_chunk')))\n"
            "print(json.dumps({'seen': seen, 'losses': losses}))\n")
    env = {**os.environ, "GDFLOWS_JAX_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache")], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    first, second = out["seen"]
    assert len(first) >= 3 and second == first, out      # gd, gf, cf: one chunk program each, reused
    assert out["losses"][0] != out["losses"][1]
