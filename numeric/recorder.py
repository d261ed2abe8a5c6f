"""One writer for every command: results written as they go, checkpoints, signals, resume.

``gdflows run`` and ``gdflows compare`` both hand the driver a :class:`Recorder`. After every chunk
it writes the chunk's rows to ``results.h5`` (opened and closed per chunk: readable at any time),
GD's iterates to the trajectory file and the process's state to ``checkpoint.npz``; on resume it
gives each process back its rows and state. :class:`StopOnSignal` turns SIGINT/SIGTERM into a stop
at the next chunk boundary. File layout: :mod:`numeric.rundir` and :mod:`numeric.results`.
"""
from __future__ import annotations

import signal
from pathlib import Path

from .rundir import TRAJECTORY, Checkpoint, RunDirectory, Trajectory, leaves_of

__all__ = ["Finished", "Interrupted", "Recorder", "StopOnSignal", "check_resumable", "open_run_directory"]

# options that change how a run is shown, not what it computes: free to differ on --resume
PRESENTATION = frozenset({"out", "overwrite", "resume", "no_progress", "no_figures", "command"})


class Interrupted(Exception):
    """The run stopped on a signal after writing everything; ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + signum


class StopOnSignal:
    """While active, SIGINT and SIGTERM ask the run to stop at the next chunk boundary (a second
    signal stops at once, as ``KeyboardInterrupt``). Call the object to ask whether to stop."""

    def __init__(self):
        self.signum = None
        self._old: dict = {}

    def __call__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "StopOnSignal":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def open_run_directory(out, *, command: str, options: dict, overwrite: bool, resume: bool) -> RunDirectory:
    """The run directory, locked: a new one (``prepare_output_dir``, ``options`` stored in
    ``run.json``), or, with ``resume``, the interrupted or killed run in ``out``, whose stored
    options must agree with ``options`` (:func:`check_resumable`).

    Raises:
        DeriveInputError: one line naming ``--out`` or ``--resume``.
        Finished: the run to resume has completed.
    """
    from .results import prepare_output_dir

    if resume:
        check_resumable(out, command, options)
        directory = RunDirectory(Path(out).expanduser())
        directory.acquire()
        directory.write_manifest(status="running")
        return directory
    directory = RunDirectory(prepare_output_dir(out, overwrite=overwrite))
    directory.acquire()
    directory.write_manifest(format="gdflows-run", format_version=1, command=command,
                             options={k: v for k, v in options.items() if k not in PRESENTATION},
                             status="running")
    return directory


def check_resumable(out, command: str, given: dict) -> dict:
    """The options stored in the run directory ``out``, after checking that it holds a ``command``
    run that has not completed and that every option in ``given`` agrees with the stored one."""
    from derive.errors import DeriveInputError

    from .rundir import run_status

    path = Path(out).expanduser()
    manifest = RunDirectory(path).manifest() if path.is_dir() else {}
    if manifest.get("command") is None:
        raise DeriveInputError(f"--resume: {str(path)!r} is not a gdflows run directory (no run.json)")
    if manifest["command"] != command:
        raise DeriveInputError(f"--resume: {str(path)!r} holds a `gdflows {manifest['command']}` run; "
                               f"resume it with `gdflows {manifest['command']} --resume`")
    stored = dict(manifest.get("options", {}))
    differ = [k for k, v in given.items() if k not in PRESENTATION and k in stored and _differs(v, stored[k])]
    if differ:
        k = differ[0]
        raise DeriveInputError(f"--resume: {str(path)!r} was run with --{k.replace('_', '-')} {_show(stored[k])}, "
                               f"not {_show(given[k])}; resuming with different arguments is refused "
                               "(start a new --out instead)")
    status = run_status(path)
    if status == "complete":
        raise Finished(f"{path}: this run is complete; nothing to resume")
    if status == "running":
        raise DeriveInputError(f"--resume: {str(path)!r} is being written by another running gdflows process")
    return stored


class Finished(Exception):
    """``--resume`` of a run that already completed (not an error: exit 0)."""


def _differs(a, b) -> bool:
    norm = (lambda v: list(v) if isinstance(v, tuple) else v)
    return norm(a) != norm(b)


def _show(v) -> str:
    if v is None:
        return "(its default)"
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


class Recorder:
    """The driver's sink for a run directory (see :func:`numeric.driver.run`).

    Args:
        directory: the locked run directory.
        rows: rows per series (steps + 1).
        attrs: metadata for ``results.h5``.
        resume: continue the files already there.
    """

    def __init__(self, directory: RunDirectory, rows: int, attrs: dict, resume: bool = False):
        self.directory, self.rows, self.attrs, self.resume = directory, rows, attrs, resume
        self.writer = None
        self.ckpt = directory.load_checkpoint() if resume else Checkpoint()
        self.results_path = directory.path / "results.h5"
        self._stored = None   # the series already in results.h5, read once on resume

    # the sink protocol --------------------------------------------------------------------
    def start(self, shapes) -> None:
        from derive.errors import DeriveInputError

        from .results import ResultsWriter

        if self.resume and self.results_path.exists():
            self.writer = ResultsWriter.reopen(self.results_path)
            want = {p: {k: tuple(v) for k, v in s.items()} for p, s in shapes.items()}
            if self.writer.shapes != want or self.writer.steps != self.rows:
                raise DeriveInputError("--resume: results.h5 holds different series than this run would write")
        else:
            self.ckpt = Checkpoint()   # nothing written yet: start from scratch
            self.writer = ResultsWriter(self.results_path, shapes, self.rows, self.attrs)

    def trajectory(self, rows: int, n: int, dtype) -> Trajectory:
        path = self.directory.path / TRAJECTORY
        gd = self.ckpt.progress.get("gd")
        traj = Trajectory(rows, n, dtype, path=path, resume=gd is not None and path.exists())
        if gd is not None and path.exists():
            traj.valid = int(gd["done"]) + 1
        return traj

    def write(self, process: str, rows: dict, start: int) -> None:
        self.writer.write(process, rows, start)

    def checkpoint(self, process: str, entry: dict, state) -> None:
        self.ckpt.progress[process] = entry
        self.ckpt.states = {process: leaves_of(state)} if state is not None else {}
        self.directory.save_checkpoint(self.ckpt)

    def restored(self, process: str):
        """``(entry, state leaves, stored series)`` of a process the checkpoint knows, else None."""
        entry = self.ckpt.progress.get(process)
        if entry is None:
            return None
        leaves = self.ckpt.states.get(process)
        if entry["status"] == "running" and leaves is None:
            return None   # its state was not kept: run it again from the start
        if self._stored is None:
            from .results import read_results
            self._stored = read_results(self.results_path)
        return entry, leaves, self._stored.get(process, {})

    # the end ----------------------------------------------------------------------------------
    def abort(self, err: BaseException) -> None:
        """After an error or a second signal: record "failed" (I/O) or "interrupted" where the
        files can still be written; never raise over ``err``."""
        from .rundir import WriteError

        try:
            self.close("failed" if isinstance(err, WriteError) else "interrupted")
        except Exception:
            self.directory.release()

    def close(self, status: str) -> None:
        """Record ``status`` in ``results.h5`` and ``run.json``; release the directory."""
        try:
            if self.writer is not None:
                self.writer.close(status if status != "complete" else None)
        finally:
            self.directory.finish(status)

