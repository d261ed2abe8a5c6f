"""JAX's persistent compilation cache for gdflows' commands: a second run skips most compilation.

The compiled programs of a run (every process's scan, the eigensolver, the operator programs) are
stored on disk, keyed by the program, the compile options, the device and the JAX version, so a
later run of the same configuration (or of one that shares programs) loads them instead of
compiling again. Loading gives the same executable, so results stay bit-identical.

Where: ``$GDFLOWS_JAX_CACHE`` if set, else ``$XDG_CACHE_HOME/gdflows/jax`` (default
``~/.cache/gdflows/jax``). ``GDFLOWS_JAX_CACHE=off`` turns it off. Deleting the folder is safe.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV", "cache_dir", "enable"]

ENV = "GDFLOWS_JAX_CACHE"
MIN_COMPILE_SECONDS = 0.2   # programs that compile faster than this are not worth a disk entry


def cache_dir() -> Path | None:
    """The cache folder this environment asks for, or None when ``GDFLOWS_JAX_CACHE=off``."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in ("off", "0", "none", "false"):
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gdflows" / "jax"


def enable() -> Path | None:
    """Point JAX's persistent compilation cache at :func:`cache_dir` (idempotent); the folder or None.

    A folder that cannot be created leaves the cache off (a run never fails for want of a cache).
    """
    import jax

    folder = cache_dir()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return folder
