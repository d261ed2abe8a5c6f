"""What a run will need, estimated before anything is created, and refused in one line if the
machine does not have it.

Memory: the data (host and device copies), the parameters times the vectors every process keeps
(iterate, gradient, eigenvectors and the eigensolver's blocks), the activations of one
forward-and-backward pass, and the series kept in memory for the summary and figures. Disk: the
results file (allocated in full when the run starts), GD's trajectory and the checkpoint. The
estimates are deliberately rough (within a factor of about two); they exist to refuse the
impossible (a 10¹⁰-parameter MLP, 10¹² steps) up front, not to plan tight runs.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["LIMITS", "check_compare", "check_run", "machine_memory"]

LIMITS = {
    "k_max": 8,           # eigenvalues tracked: the central flow compiles one program per count ≤ k_max
    "cf_substeps": 1000,  # Euler substeps per step
}

_SERIES = 12              # scalar series per process (loss, grad_norm2, distance, ...)
_PER_EIG = 4              # series per tracked eigenvalue (eigs, gd_offset, sigma_eigs, sigma_diag)
_VECTORS = 12             # parameter-sized vectors a process keeps besides its eigen blocks
_DATA_DIM = {"digits": 64, "cifar10": 3072, "synthetic": 3072, "sort": 6}   # sort: tokens per sequence


def machine_memory() -> int:
    """Bytes of physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def _free_disk(out) -> int:
    path = Path(out).expanduser().resolve() if out is not None else Path.cwd()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.3g} GB"


def _refuse(argument: str, what: str, need: float, have: float, detail: str):
    from derive.errors import DeriveInputError

    raise DeriveInputError(f"{argument}: this run needs about {_gb(need)} of {what} ({detail}); "
                           f"the machine has {_gb(have)}")


def _series_bytes(rows: int, processes: int, k: int, kept_params: int) -> int:
    return rows * processes * (_SERIES + _PER_EIG * k + kept_params) * 8


def check_compare(cfg, out) -> None:
    """Refuse a ``gdflows compare`` configuration that cannot fit, naming the argument to change."""
    if cfg.problem is not None or cfg.expression is not None:   # a toy problem: a handful of parameters
        return check_run(0, cfg.steps, len(cfg.flows), cfg.k_max, False, out)
    import jax

    from .models import make_model

    dim = _DATA_DIM.get(cfg.data, 3072)
    itemsize = 8 if cfg.float64 else 4
    model_kw = {"activation": cfg.activation}
    if cfg.model == "mlp":
        model_kw["widths"] = tuple(cfg.widths)
    outputs = cfg.classes * dim if cfg.data == "sort" else cfg.classes   # sorting: one prediction per token
    model = make_model(cfg.model, dim, outputs, **model_kw)
    dtype = jax.numpy.float64 if cfg.float64 else jax.numpy.float32
    shapes = jax.eval_shape(lambda key: model.init(key, dtype), jax.random.PRNGKey(0))
    n_params = sum(int(x.size) for x in jax.tree_util.tree_leaves(shapes))
    widest = max([dim, cfg.classes, *(cfg.widths if cfg.model == "mlp" else (dim,))])
    data = cfg.n * (dim + cfg.classes) * (4 + itemsize)
    params = n_params * itemsize * (_VECTORS + 4 * cfg.k_max)
    activations = cfg.n * widest * itemsize * 6 * (1 + cfg.k_max)
    from .driver import KEEP_W_LIMIT
    nu_rows = n_params if cfg.optimizer == "rmsprop-diag" and n_params <= KEEP_W_LIMIT else 0   # the ν vector
    series = _series_bytes(cfg.steps + 1, len(cfg.flows), cfg.k_max, nu_rows)
    parts = {"--n": data + activations, "--widths": params, "--steps": series}
    need, have = sum(parts.values()), machine_memory()
    if need > have:
        arg = max(parts, key=parts.get)
        _refuse(arg, "memory", need, have, f"{n_params:,} parameters, {cfg.n:,} examples of {dim} features, "
                                           f"{cfg.steps + 1:,} rows of series")
    disk = series + (cfg.steps + 1) * n_params * itemsize + n_params * itemsize * (_VECTORS + 4 * cfg.k_max)
    free = _free_disk(out)
    if disk > free:
        _refuse("--steps", "disk for --out", disk, free,
                f"results, GD's trajectory of {cfg.steps + 1:,} × {n_params:,} and the checkpoint")


def check_run(n_params: int, steps: int, processes: int, k_max: int, keep_w: bool, out) -> None:
    """Refuse a ``gdflows run`` (small problem) that cannot fit: its series are kept in memory and,
    with ``--out``, written to disk."""
    kept = n_params if keep_w else 0
    series = _series_bytes(steps + 1, processes, k_max, kept)
    need, have = series + (steps + 1) * n_params * 8, machine_memory()
    if need > have:
        _refuse("--steps", "memory", need, have, f"{steps + 1:,} rows of {processes} processes' series")
    if out is not None:
        free = _free_disk(out)
        if series > free:
            _refuse("--steps", "disk for --out", series, free, f"{steps + 1:,} rows of {processes} processes' series")
