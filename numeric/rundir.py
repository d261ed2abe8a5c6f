"""The run directory: what a run needs to survive interruption, be read while running, and resume.

Next to ``results.h5`` and ``summary.json`` a run directory holds

* ``run.json`` — the command and its arguments (what ``--resume`` reruns, and checks new
  arguments against);
* ``.lock`` — held (``flock``) by the process that writes the directory; the kernel releases it
  when that process ends however it ends, so a run whose files say "running" while nobody holds
  the lock was killed (:func:`run_status`);
* ``checkpoint.npz`` — after every chunk, each process's progress (rows written, status) and the
  full state of the process in progress (parameters, eigen tracker, Σ, ODE solver flags), replaced
  atomically (temporary file + rename), so a kill at any moment leaves the previous checkpoint;
* ``gd_trajectory.f8`` — GD's iterates, row by row (the other processes' distance to GD is
  measured against it); deleted when the run completes.

Every write is an explicit ``write``/``pwrite`` (never a memory map), so a full disk is an
``OSError`` naming the file, not a SIGBUS.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Checkpoint", "RunDirectory", "Trajectory", "WriteError", "atomic_write", "leaves_of", "run_status",
           "state_from"]

MANIFEST = "run.json"
LOCK = ".lock"
CHECKPOINT = "checkpoint.npz"
TRAJECTORY = "gd_trajectory.f8"


class WriteError(OSError):
    """Writing the run's files failed (disk full, permissions, ...): one line naming the file."""


def _write_error(path, err: OSError) -> WriteError:
    return WriteError(err.errno, f"writing {os.fspath(path)} failed: {err.strerror or err}")


def run_status(directory: str | os.PathLike) -> str:
    """``"running"``, ``"killed"`` or the status recorded by the run (``complete``, ``interrupted``, ...).

    A run records ``running`` when it starts; if its lock is free while the record still says
    ``running``, the writing process ended without finishing (SIGKILL, power loss): ``"killed"``.
    """
    directory = Path(directory)
    try:
        recorded = json.loads((directory / MANIFEST).read_text()).get("status", "unknown")
    except (OSError, ValueError):
        return "unknown"
    if recorded != "running":
        return recorded
    return "running" if _locked_by_another(directory / LOCK) else "killed"


def _locked_by_another(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class RunDirectory:
    """Owns a prepared output directory for the length of one run (or resumed run).

    Args:
        path: the directory (from :func:`numeric.results.prepare_output_dir`, or an existing run
            directory when resuming).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock_fd = None

    # lock and manifest ------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the directory's lock; a one-line error if another process holds it."""
        from derive.errors import DeriveInputError

        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DeriveInputError(f"--resume: {str(self.path)!r} is being written by another running "
                                   "gdflows process") from None
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def manifest(self) -> dict:
        try:
            return json.loads((self.path / MANIFEST).read_text())
        except FileNotFoundError:
            return {}

    def write_manifest(self, **fields) -> None:
        """Update ``run.json`` atomically with ``fields`` (e.g. ``status``)."""
        from .results import to_jsonable

        data = {**self.manifest(), **fields, "host": socket.gethostname(), "pid": os.getpid()}
        atomic_write(self.path / MANIFEST, (json.dumps(to_jsonable(data), indent=2) + "\n").encode())

    # checkpoint -------------------------------------------------------------------------
    def save_checkpoint(self, checkpoint: "Checkpoint") -> None:
        atomic_write(self.path / CHECKPOINT, checkpoint.to_bytes())

    def load_checkpoint(self) -> "Checkpoint":
        path = self.path / CHECKPOINT
        if not path.exists():
            return Checkpoint()
        return Checkpoint.from_file(path)

    def finish(self, status: str) -> None:
        """Record the final status, drop what only a resume needs, release the lock."""
        self.write_manifest(status=status)
        if status == "complete":
            for name in (TRAJECTORY, CHECKPOINT):
                try:
                    (self.path / name).unlink()
                except FileNotFoundError:
                    pass
        self.release()


class Checkpoint:
    """Per process: ``done`` (rows 0..done written), ``status``, ``notes``, timings; and the state
    leaves of the process still running (``states[name]``)."""

    def __init__(self, progress: dict | None = None, states: dict | None = None):
        self.progress: dict[str, dict] = dict(progress or {})
        self.states: dict[str, list[np.ndarray]] = dict(states or {})

    def to_bytes(self) -> bytes:
        import io

        arrays = {"progress": np.frombuffer(json.dumps(self.progress).encode(), dtype=np.uint8)}
        for name, leaves in self.states.items():
            for i, leaf in enumerate(leaves):
                arrays[f"state/{name}/{i}"] = np.asarray(leaf)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_file(cls, path: Path) -> "Checkpoint":
        with np.load(path, allow_pickle=False) as z:
            progress = json.loads(z["progress"].tobytes().decode())
            states: dict[str, list] = {}
            keys = sorted((k for k in z.files if k.startswith("state/")), key=lambda k: int(k.rsplit("/", 1)[1]))
            for key in keys:
                states.setdefault(key.split("/")[1], []).append(z[key])
        return cls(progress, states)


class Trajectory:
    """GD's iterates: row k = w_k, in memory or in a file written with ``pwrite``.

    Rows never written read as NaN (``valid`` = rows written so far), so anything measured against
    a GD that diverged or has not got there yet is NaN, never a distance to zeros.
    """

    def __init__(self, rows: int, n: int, dtype, path: Path | None = None, resume: bool = False):
        self.rows, self.n, self.dtype = rows, n, np.dtype(dtype)
        self.path, self.valid, self._fd, self._mem, self.tmp = path, 0, None, None, None
        if path is None:
            self._mem = np.full((rows, n), np.nan, self.dtype)
            return
        flags = os.O_RDWR | (0 if resume else os.O_CREAT | os.O_TRUNC)
        try:
            self._fd = os.open(path, flags, 0o644)
        except OSError as err:
            raise _write_error(path, err) from None

    @property
    def row_bytes(self) -> int:
        return self.n * self.dtype.itemsize

    def write(self, start: int, block) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if self._mem is not None:
            self._mem[start:start + len(block)] = block
        else:
            data = memoryview(block).cast("B")
            offset, done = start * self.row_bytes, 0
            try:
                while done < len(data):
                    done += os.pwrite(self._fd, data[done:], offset + done)
            except OSError as err:
                raise _write_error(self.path, err) from None
        self.valid = max(self.valid, start + len(block))

    def read(self, start: int, count: int) -> np.ndarray:
        out = np.full((count, self.n), np.nan, self.dtype)
        have = max(0, min(count, self.valid - start))
        if have and self._mem is not None:
            out[:have] = self._mem[start:start + have]
        elif have:
            raw = os.pread(self._fd, have * self.row_bytes, start * self.row_bytes)
            out[:have] = np.frombuffer(raw, self.dtype).reshape(have, self.n)
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.tmp is not None:   # a temporary directory holding the file
            self.tmp.cleanup()
            self.tmp = None


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename; a one-line WriteError."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as err:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise _write_error(path, err) from None


def leaves_of(state: Any) -> list[np.ndarray]:
    """A process state's leaves as host arrays (bit-exact copies)."""
    import jax

    return [np.asarray(x) for x in jax.tree_util.tree_leaves(state)]


def state_from(template: Any, leaves: list[np.ndarray]) -> Any:
    """The state with ``template``'s structure, dtypes and shapes and the stored ``leaves``."""
    import jax
    import jax.numpy as jnp

    ref, tree = jax.tree_util.tree_flatten(template)
    if len(ref) != len(leaves) or any(np.shape(a) != np.shape(b) for a, b in zip(ref, leaves)):
        from derive.errors import DeriveInputError
        raise DeriveInputError("--resume: the stored process state does not match this run's (different "
                               "arguments or gdflows version)")
    return jax.tree_util.tree_unflatten(tree, [jnp.asarray(b, dtype=a.dtype) for a, b in zip(ref, leaves)])
