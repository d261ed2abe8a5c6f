"""Results I/O: the HDF5 results file, ``summary.json``, and the output directory.

Output directory (``--out``)
    :func:`prepare_output_dir` is called *before* a run starts, so a bad ``--out`` costs nothing.
    Policy (checked up front, never a half-overwrite):

    * a missing directory is created (with its parents); an existing empty one is used;
    * an existing non-empty directory is refused unless ``overwrite=True``;
    * with ``overwrite=True`` it is replaced only if it holds the marker file ``.gdflows-output``
      (written by this function into every directory it prepares), so ``--out ~`` can never delete
      a home directory. The old directory is first *renamed* aside (atomic), a fresh empty one is
      created, and only then is the old one deleted: at no moment does ``--out`` mix old and new files;
    * a path that is a file is refused.

    Files are then written into the directory as the run goes (the HDF5 file after every chunk),
    so an interrupted run keeps everything it had written; the run directory's other files
    (``run.json``, checkpoint, lock) are described in :mod:`numeric.rundir`.

``results.h5`` layout (format ``gdflows-results`` version 1)::

    /                               attrs: format = "gdflows-results", format_version = 1,
    │                                      rows (per series, e.g. steps + 1), status ("running" until
    │                                      close(); then "complete" / "partial" (some process stopped
    │                                      early), "interrupted" (a signal, or the writer's ``with`` block
    │                                      raised) or "failed" (an I/O error); :func:`read_results`
    │                                      reports "killed" for a run directory whose writer died),
    │                                      gdflows_version, git_commit,
    │                                      created (ISO time), plus the caller's attrs (problem, lr,
    │                                      n_params, param_names, ...; dicts and None are stored as JSON
    │                                      text under the same key with the prefix "json:")
    │                               (the caller's ``steps`` attr, if any, is the number of GD steps)
    ├── gd/                         one group per process: gd, gf, mf, cf, midpoint (any names)
    │   │                           attrs: n_written = 1 + the highest row index written so far
    │   ├── loss        (rows,)            float64, row k = after k steps
    │   ├── sharpness   (rows,)
    │   ├── eigs        (rows, K)          top-K Hessian eigenvalues (eig_matvecs: HVPs of that solve)
    │   ├── grad_norm2, distance_to_gd, time, ...   (rows,)
    │   └── w / params  (rows, n)          optional
    └── cf/
        ├── sigma_eigs (rows, K), predicted_loss, predicted_grad_norm2, sigma_trace, ...

Every dataset is float64, contiguous, allocated on disk at the start and filled with NaN (so rows
never written read as NaN: steps not reached, a diverged process, an interrupted run; and a full
disk shows up when the run starts, not hours in). :meth:`ResultsWriter.write` opens the file,
writes a chunk of rows (raw data only: the file's structure never changes after creation) and
closes it again, without taking HDF5's file lock: between chunks nobody holds the file, so a plain
``h5py.File(path, "r")`` (or ``h5dump``) reads it while the run goes on.

``summary.json``: pretty-printed JSON (2-space indent, keys in insertion order); NaN and ±inf are
written as ``null``; NumPy scalars and arrays become numbers and (nested) lists.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["FORMAT", "FORMAT_VERSION", "MARKER", "Results", "ResultsWriter", "prepare_output_dir", "provenance",
           "read_results", "read_summary", "to_jsonable", "write_summary"]

FORMAT = "gdflows-results"
FORMAT_VERSION = 1
MARKER = ".gdflows-output"
_JSON_PREFIX = "json:"


def _input_error(message: str) -> Exception:
    """``DeriveInputError`` (a ``ValueError``), imported only on the error path: ``derive`` pulls in SymPy."""
    from derive.errors import DeriveInputError

    return DeriveInputError(" ".join(message.split()))


# --------------------------------------------------------------------------------- output directory
def prepare_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Create (or, with ``overwrite``, replace) the output directory; see the module docstring.

    Returns:
        The directory as a ``Path``; it exists, is empty except for the marker file.

    Raises:
        DeriveInputError: one line naming ``--out`` if the path is a file, is a non-empty directory
            and ``overwrite`` is false, is a non-empty directory not written by gdflows, or cannot be
            created.
    """
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise _input_error(f"--out: {str(out)!r} exists and is not a directory")
    if out.is_dir():
        entries = [p.name for p in out.iterdir()]
        if entries:
            if not overwrite:
                raise _input_error(f"--out: directory {str(out)!r} already exists and is not empty; "
                                   "choose a new directory or pass --overwrite")
            if MARKER not in entries:
                raise _input_error(f"--out: directory {str(out)!r} was not written by gdflows (no {MARKER} file); "
                                   "refusing to delete it even with --overwrite")
            _replace_dir(out)
    else:
        try:
            out.mkdir(parents=True)
        except OSError as err:
            raise _input_error(f"--out: cannot create {str(out)!r}: {err.strerror or err}") from None
    (out / MARKER).write_text("written by gdflows; `gdflows run --overwrite` may replace this directory\n")
    return out


def _replace_dir(out: Path) -> None:
    """Move ``out`` aside atomically, recreate it empty, then delete the old contents."""
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old = aside / out.name
    try:
        os.replace(out, old)
    except OSError as err:
        aside.rmdir()
        raise _input_error(f"--out: cannot replace {str(out)!r}: {err.strerror or err}") from None
    try:
        out.mkdir()
    except OSError as err:
        os.replace(old, out)  # put the old directory back untouched
        aside.rmdir()
        raise _input_error(f"--out: cannot replace {str(out)!r}: {err.strerror or err}") from None
    shutil.rmtree(aside, ignore_errors=True)


# ------------------------------------------------------------------------------------------- JSON
def to_jsonable(obj: Any) -> Any:
    """``obj`` with NumPy/JAX scalars and arrays as Python numbers and lists, non-finite floats as None,
    tuples as lists, paths as strings and mapping keys as strings."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "__array__") or isinstance(obj, np.ndarray):
        arr = np.asarray(obj)
        if arr.dtype.kind == "c":
            raise TypeError(f"summary: complex values cannot be written to JSON (dtype {arr.dtype})")
        return to_jsonable(arr.item()) if arr.ndim == 0 else [to_jsonable(v) for v in arr.tolist()]
    raise TypeError(f"summary: cannot write a {type(obj).__name__} to JSON")


def write_summary(path: str | os.PathLike, summary: Mapping) -> Path:
    """Write ``summary`` as pretty, strict JSON (NaN/inf -> null); atomically (temp file + rename).

    Args:
        path: the file, or a directory (then ``path/summary.json``).
        summary: a mapping; values may hold NumPy scalars and arrays.

    Returns:
        The path written.
    """
    if not isinstance(summary, Mapping):
        raise TypeError(f"summary: expected a dict, got {type(summary).__name__}")
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    text = json.dumps(to_jsonable(summary), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    from .rundir import atomic_write
    atomic_write(path, text.encode("utf-8"))
    return path


def read_summary(path: str | os.PathLike) -> dict:
    """The dict written by :func:`write_summary` (``null`` reads as None)."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------- HDF5
def provenance() -> dict[str, str]:
    """``gdflows_version``, ``git_commit`` (``"unknown"`` outside a git checkout) and ``created``."""
    try:
        from importlib.metadata import version

        gv = version("gdflows")
    except Exception:  # not installed (running from a checkout)
        gv = "unknown"
    commit = "unknown"
    try:
        here = Path(__file__).resolve().parent
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if res.returncode == 0 and res.stdout.strip():
            commit = res.stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                   capture_output=True, text=True, timeout=5)
            if dirty.returncode == 0 and dirty.stdout.strip():
                commit += "+dirty"
    except (OSError, subprocess.SubprocessError):
        pass
    return {"gdflows_version": gv, "git_commit": commit,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _attr_value(key: str, value: Any):
    """A value h5py can store as an attribute (``(key, value)``; dicts/None become JSON text)."""
    import h5py

    if isinstance(value, (str, bool, np.bool_, int, np.integer, float, np.floating)):
        return key, value
    if isinstance(value, os.PathLike):
        return key, os.fspath(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return key, np.array(list(value), dtype=h5py.string_dtype())
    if isinstance(value, (list, tuple, np.ndarray)) and np.asarray(value).dtype.kind in "biuf":
        return key, np.asarray(value)
    return _JSON_PREFIX + key, json.dumps(to_jsonable(value))


def _read_attrs(attrs) -> dict:
    out = {}
    for key, value in attrs.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
            value = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value.tolist()]
        elif isinstance(value, np.generic):
            value = value.item()
        if key.startswith(_JSON_PREFIX):
            key, value = key[len(_JSON_PREFIX):], json.loads(value)
        out[key] = value
    return out


class ResultsWriter:
    """Write ``results.h5`` incrementally (layout in the module docstring).

    Args:
        path: the ``.h5`` file to create; an existing file is refused unless ``overwrite``.
        processes: ``{process: {series: shape_per_step}}``, e.g.
            ``{"gd": {"loss": (), "eigs": (3,)}, "cf": {"loss": (), "sigma_eigs": (3,)}}``.
        steps: rows per series (e.g. ``steps + 1`` to include the initial point).
        attrs: metadata for the root group (problem, lr, n_params, param_names, ...); provenance
            (version, git commit, time) is added unless given.

    Example:
        >>> with ResultsWriter(path, {"gd": {"loss": ()}}, 100, {"lr": 0.1}) as w:  # doctest: +SKIP
        ...     w.write("gd", {"loss": losses[:50]}, 0)
        ...     w.write("gd", {"loss": losses[50:]}, 50)
    """

    def __init__(self, path: str | os.PathLike, processes: Mapping[str, Mapping[str, Any]], steps: int,
                 attrs: Mapping[str, Any] | None = None, *, overwrite: bool = False):
        import h5py

        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps: expected a positive integer, got {steps!r}")
        if not isinstance(processes, Mapping) or not processes:
            raise ValueError("processes: expected a non-empty dict {process: {series: shape_per_step}}")
        self.path = Path(path)
        self.steps = int(steps)
        self.shapes: dict[str, dict[str, tuple[int, ...]]] = {}
        for proc, series in processes.items():
            if not isinstance(proc, str) or not proc or "/" in proc:
                raise ValueError(f"processes: bad process name {proc!r}")
            if not isinstance(series, Mapping):
                raise ValueError(f"processes[{proc!r}]: expected a dict {{series: shape_per_step}}, "
                                 f"got {type(series).__name__}")
            self.shapes[proc] = {}
            for name, shape in series.items():
                if not isinstance(name, str) or not name or "/" in name:
                    raise ValueError(f"processes[{proc!r}]: bad series name {name!r}")
                try:
                    shape = tuple(int(s) for s in shape)
                except TypeError:
                    raise ValueError(f"processes[{proc!r}][{name!r}]: expected a shape tuple, got {shape!r}") from None
                if any(s < 0 for s in shape):
                    raise ValueError(f"processes[{proc!r}][{name!r}]: negative dimension in {shape}")
                self.shapes[proc][name] = shape
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"path: {str(self.path)!r} already exists (pass overwrite=True to replace it)")
        self._n_written = {p: 0 for p in self.shapes}
        self._closed = False
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "rows": self.steps, "status": "running",
                **provenance(), **dict(attrs or {})}
        with self._open("w") as f:
            for key, value in meta.items():
                k, v = _attr_value(str(key), value)
                f.attrs[k] = v
            for proc, series in self.shapes.items():
                group = f.create_group(proc)
                group.attrs["n_written"] = 0
                for name, shape in series.items():
                    _preallocated(group, name, (self.steps, *shape))

    @classmethod
    def reopen(cls, path: str | os.PathLike) -> "ResultsWriter":
        """The writer of an existing results file (to resume a run): same processes, series, rows."""
        self = cls.__new__(cls)
        self.path, self._closed = Path(path), False
        with self._open("r+") as f:
            self.steps = int(f.attrs["rows"])
            self.shapes = {p: {k: ds.shape[1:] for k, ds in g.items()} for p, g in f.items()}
            self._n_written = {p: int(g.attrs["n_written"]) for p, g in f.items()}
            f.attrs.modify("status", "running")
        return self

    @contextlib.contextmanager
    def _open(self, mode: str):
        """The file, open only for one write: no lock is held between chunks, so a plain
        ``h5py.File(path, "r")`` can read it at any time while the run goes on. I/O errors become a
        one-line :class:`~numeric.rundir.WriteError`."""
        import h5py

        from .rundir import WriteError

        try:
            with h5py.File(self.path, mode, locking=False) as f:
                yield f
        except WriteError:
            raise
        except (OSError, RuntimeError, ValueError) as err:   # h5py reports a failed write as any of these
            raise WriteError(getattr(err, "errno", None) or 0,
                             f"writing {self.path} failed: {_io_reason(err)}") from None

    # context manager --------------------------------------------------------------------
    def __enter__(self) -> "ResultsWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(status="interrupted" if exc_type is not None else None)

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, process: str, series: Mapping[str, Any], start_index: int) -> None:
        """Write rows ``start_index, start_index + 1, ...`` of some series of ``process``; the file
        is closed again before this returns.

        Each value has shape ``(m, *shape_per_step)`` (m rows; all series of one call share m), or
        exactly ``shape_per_step`` for a single row. Series not mentioned are left as they are.
        """
        if self.closed:
            raise ValueError(f"process: the results file {str(self.path)!r} is closed")
        if process not in self.shapes:
            raise ValueError(f"process: unknown {process!r}; declared processes are {list(self.shapes)}")
        if isinstance(start_index, bool) or not isinstance(start_index, (int, np.integer)) or start_index < 0:
            raise ValueError(f"start_index: expected a non-negative integer, got {start_index!r}")
        if not isinstance(series, Mapping) or not series:
            raise ValueError(f"series: expected a non-empty dict {{series: array}} for {process!r}")
        rows, blocks = None, {}
        for name, value in series.items():
            if name not in self.shapes[process]:
                raise ValueError(f"series: {name!r} is not a declared series of {process!r} "
                                 f"(declared: {list(self.shapes[process])})")
            shape = self.shapes[process][name]
            arr = np.asarray(value, dtype=np.float64)
            if arr.shape == shape:
                arr = arr[None]
            if arr.shape[1:] != shape:
                raise ValueError(f"series: {process}/{name} expects rows of shape {shape}, got an array of "
                                 f"shape {np.shape(value)}")
            if rows is not None and arr.shape[0] != rows:
                raise ValueError(f"series: all series of one write need the same number of rows; {name!r} has "
                                 f"{arr.shape[0]}, others {rows}")
            rows = arr.shape[0]
            blocks[name] = arr
        end = int(start_index) + rows
        if end > self.steps:
            raise ValueError(f"start_index: rows {start_index}..{end - 1} do not fit in {self.steps} steps")
        with self._open("r+") as f:
            group = f[process]
            for name, arr in blocks.items():
                group[name][start_index:end] = arr
            if end > self._n_written[process]:
                self._n_written[process] = end
                group.attrs.modify("n_written", end)

    def close(self, status: str | None = None) -> None:
        """Record the status ("complete" if every process wrote every row, else "partial")."""
        if self.closed:
            return
        if status is None:
            status = "complete" if all(n == self.steps for n in self._n_written.values()) else "partial"
        self._closed = True
        with self._open("r+") as f:
            f.attrs.modify("status", status)


def _io_reason(err: Exception) -> str:
    """The operating system's words for a failed HDF5 write ("No space left on device", ...)."""
    import re

    found = re.search(r"error message = '([^']+)'", str(err))
    if found:
        return found.group(1)
    return getattr(err, "strerror", None) or str(err).split("(")[0].strip() or type(err).__name__


def _preallocated(group, name: str, shape: tuple[int, ...]) -> None:
    """A float64 dataset filled with NaN and allocated on disk now (contiguous): later writes change
    raw data only, never the file's structure, so a kill mid-write cannot damage what is there."""
    import h5py

    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)
    dcpl.set_fill_value(np.array(np.nan))
    group.create_dataset(name, shape=shape, dtype="f8", dcpl=dcpl)


class Results(dict):
    """``{process: {series: np.ndarray}}`` read from ``results.h5``, with metadata.

    Attributes:
        attrs: root attributes (problem, lr, steps, status, provenance, ...).
        process_attrs: ``{process: {"n_written": int, ...}}``.
    """

    def __init__(self, data, attrs, process_attrs):
        super().__init__(data)
        self.attrs = attrs
        self.process_attrs = process_attrs


def read_results(path: str | os.PathLike) -> Results:
    """Read a whole ``results.h5`` into memory (rows never written are NaN).

    Raises:
        ValueError: the file is not a gdflows results file.
    """
    import h5py

    with h5py.File(path, "r", locking=False) as f:   # readable while a run is still writing it
        attrs = _read_attrs(f.attrs)
        if attrs.get("format") != FORMAT:
            raise ValueError(f"path: {os.fspath(path)!r} is not a {FORMAT} file")
        if attrs.get("status") == "running":   # nobody holds the run directory's lock: the writer was killed
            from .rundir import run_status
            if run_status(Path(path).parent) == "killed":
                attrs["status"] = "killed"
        data, process_attrs = {}, {}
        for proc, group in f.items():
            data[proc] = {name: ds[()] for name, ds in group.items()}
            process_attrs[proc] = _read_attrs(group.attrs)
    return Results(data, attrs, process_attrs)
