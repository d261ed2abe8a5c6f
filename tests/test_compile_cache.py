"""numeric.compile_cache: where JAX's persistent compilation cache lives, and how it is turned off."""
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
    import os
    import subprocess
    import sys

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
