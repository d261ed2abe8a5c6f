"""Data sets for real-network experiments, as plain NumPy arrays.

Three classification sets, all returned as a :class:`Dataset` with float32 inputs ``X`` of shape
``(n, d)``, float32 one-hot targets ``Y`` of shape ``(n, classes)`` and integer ``labels``:

- :func:`digits`: scikit-learn's bundled 8x8 digits (``d = 64``; no download).
- :func:`cifar10`: a local copy of CIFAR-10 in its python-pickle batch format (``d = 3072``).
- :func:`synthetic_cifar`: CIFAR-shaped Gaussian classes from a seed (``d = 3072``), for machines
  without the real data.

Subsets follow the reference implementation: the first ``n / classes`` examples of each of the
first ``classes`` classes, in file order, so a subset is deterministic and class-balanced. Rows
keep their file order (classes interleaved as in the file).

Every set is scaled the same way (:func:`_standardize`): raw values are divided by their range
(16 for digits, 255 for CIFAR-10), then each feature is centred by its mean over the subset, then
all inputs are multiplied by one constant so that the average squared row norm
``mean_i ||x_i||^2`` is exactly 1 (up to float32 rounding).

Bad arguments raise ``derive.errors.DeriveInputError`` with a one-line message naming the argument
(``n``, ``classes``, ``--data``, ``--data-dir``); ``derive`` is imported lazily so importing this
module does not import SymPy.

References: Cohen et al., "Understanding Optimization in Deep Learning with Central Flows"
(ICLR 2025), experimental setup (CIFAR-10 subset, MSE on one-hot targets).
"""

from __future__ import annotations

import inspect
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DATASETS", "Dataset", "cifar10", "digits", "load_dataset", "sort_task", "synthetic_cifar"]

CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_DIM = 3 * 32 * 32


@dataclass(frozen=True)
class Dataset:
    """A scaled, class-balanced classification subset.

    Attributes:
        X: Inputs, float32 ``(n, d)``, scaled as described in the module docstring.
        Y: One-hot targets, float32 ``(n, classes)``.
        labels: Integer class labels ``(n,)`` in ``[0, classes)``; ``Y[i, labels[i]] == 1``.
        name: Short name (``"digits"``, ``"cifar10"``, ``"synthetic"``).
        classes: Number of classes.
        description: One line saying where the data came from and how it was chosen.
    """

    X: np.ndarray
    Y: np.ndarray
    labels: np.ndarray
    name: str
    classes: int
    description: str

    @property
    def n(self) -> int:
        """Number of examples."""
        return int(self.X.shape[0])

    @property
    def dim(self) -> int:
        """Input dimension ``d``."""
        return int(self.X.shape[1])


# ------------------------------------------------------------------------------------------ helpers
def _error(message: str) -> Exception:
    """A ``DeriveInputError`` (imported lazily: ``derive`` pulls in SymPy), on one line."""
    from derive.errors import DeriveInputError

    return DeriveInputError(" ".join(str(message).split()))


def _short(value: Any, limit: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_int(value: Any, name: str, lo: int, hi: int | None = None) -> int:
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    if not ok or value < lo or (hi is not None and value > hi):
        bounds = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise _error(f"{name}: expected an integer {bounds}, got {_short(value)}")
    return int(value)


def _check_sizes(n: Any, classes: Any, max_classes: int | None) -> tuple[int, int, int]:
    """Validate ``n`` and ``classes``; return ``(n, classes, n // classes)``."""
    classes = _check_int(classes, "classes", 2, max_classes)
    n = _check_int(n, "n", classes)
    if n % classes:
        raise _error(f"n: expected a multiple of classes={classes} (the subset is class-balanced), got {n}")
    return n, classes, n // classes


def _first_per_class(labels: np.ndarray, classes: int, per_class: int) -> np.ndarray:
    """Indices (sorted, i.e. file order) of the first ``per_class`` examples of classes ``0..classes-1``.

    Returns fewer than ``classes * per_class`` indices when some class is short.
    """
    picks = [np.flatnonzero(labels == k)[:per_class] for k in range(classes)]
    return np.sort(np.concatenate(picks))


def _standardize(raw: np.ndarray) -> np.ndarray:
    """Centre each feature over the rows, then scale so that ``mean_i ||x_i||^2 == 1``.

    Computed in float64 and returned as float32. A subset whose centred inputs are all zero
    (identical rows) is returned centred but unscaled.
    """
    x = np.asarray(raw, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    mean_sq_norm = float(np.mean(np.sum(x * x, axis=1)))
    if mean_sq_norm > 0:
        x = x / np.sqrt(mean_sq_norm)
    return x.astype(np.float32)


def _make(raw_scaled: np.ndarray, labels: np.ndarray, name: str, classes: int, description: str) -> Dataset:
    labels = np.asarray(labels, dtype=np.int64)
    Y = np.zeros((labels.shape[0], classes), dtype=np.float32)
    Y[np.arange(labels.shape[0]), labels] = 1.0
    return Dataset(X=_standardize(raw_scaled), Y=Y, labels=labels, name=name, classes=classes,
                   description=" ".join(description.split()))


# ------------------------------------------------------------------------------------------- digits
def digits(n: int = 1000, classes: int = 10, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, no download).

    The subset is the first ``n / classes`` images of each of the digits ``0..classes-1`` in the
    order of the bundled file; rows keep that file order. Pixels (0..16) are divided by 16, then
    centred and scaled as in the module docstring.

    Args:
        n: Number of examples; a multiple of ``classes``, at most ``classes`` times the size of the
            smallest chosen class (174 images for digit 8, so ``n <= 1740`` with 10 classes).
        classes: Number of classes, 2..10 (digits ``0..classes-1``).
        seed: Unused: the subset is fully determined by the file order, so there are no ties to
            break. Accepted so that every data set takes the same arguments.

    Returns:
        A :class:`Dataset` with ``d = 64``.

    Raises:
        DeriveInputError: One line naming ``n`` or ``classes``.
    """
    del seed
    n, classes, per_class = _check_sizes(n, classes, 10)
    pixels, target = _bundled_digits()
    available = min(int(np.sum(target == k)) for k in range(classes))
    if per_class > available:
        raise _error(f"n: {n} needs {per_class} images per class but the digits data has only {available} "
                     f"for some of the first {classes} classes; use n <= {available * classes}")
    idx = _first_per_class(target, classes, per_class)
    return _make(pixels[idx] / 16.0, target[idx], "digits", classes,
                 f"scikit-learn digits (8x8): first {per_class} images of each digit 0..{classes - 1} in file "
                 f"order; pixels/16, centred per feature, scaled to mean squared norm 1")


def _bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """(pixels (1797, 64) float64, labels) from the file scikit-learn bundles, read directly: importing
    scikit-learn itself takes about 2 s, more than the rest of a small run's start-up."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")   # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise _error("data: the digits need scikit-learn installed (pip install scikit-learn)")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    return table[:, :-1], table[:, -1].astype(np.int64)


# ------------------------------------------------------------------------------------------ cifar10
_NUMPY_GLOBALS = frozenset(
    (module, name)
    for core in ("numpy.core", "numpy._core")
    for module, name in ((f"{core}.multiarray", "_reconstruct"),)
) | {("numpy", "ndarray"), ("numpy", "dtype")}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves no globals except numpy's array reconstruction.

    A CIFAR-10 batch holds only dicts, lists, bytes, ints and numpy arrays. Plain containers need no
    globals at all; a numpy array needs ``numpy.core.multiarray._reconstruct`` (``numpy._core`` in
    NumPy 2), ``numpy.ndarray`` and ``numpy.dtype``. Those are the only names allowed; any other
    global (``os.system``, ``builtins.eval``, ...) raises ``pickle.UnpicklingError`` before anything
    is called. Arrays pickled with protocol 5 (``numpy._core.numeric._frombuffer``) are refused too:
    the official files use protocol 2.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def _find_cifar_dir(data_dir: Any) -> Path:
    expected = ("expected data_batch_1..data_batch_5 (python pickle format) "
                f"or a {CIFAR_FOLDER}/ folder containing them")
    if data_dir is None or not isinstance(data_dir, (str, os.PathLike)) or not str(data_dir):
        raise _error(f"--data-dir: expected a directory with the CIFAR-10 batches, got {_short(data_dir)}; "
                     f"{expected}")
    root = Path(data_dir).expanduser()
    for candidate in (root, root / CIFAR_FOLDER):
        if all((candidate / b).is_file() for b in CIFAR_BATCHES):
            return candidate
    missing = "" if root.is_dir() else " (no such directory)"
    raise _error(f"--data-dir: no CIFAR-10 batches in {str(root)!r}{missing}; {expected}")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(data uint8 (N, 3072), labels int64 (N,))`` from one batch file, unpickled safely."""
    try:
        with open(path, "rb") as f:
            batch = _RestrictedUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, OSError) as exc:
        raise _error(f"--data-dir: cannot read CIFAR-10 batch {str(path)!r}: "
                     f"{type(exc).__name__}: {exc}") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise _error(f"--data-dir: {str(path)!r} is not a CIFAR-10 batch (expected a dict with keys "
                     f"b'data' and b'labels')")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
            or data.shape[1] != CIFAR_DIM or labels.shape != (data.shape[0],)
            or not np.issubdtype(labels.dtype, np.integer)):
        raise _error(f"--data-dir: {str(path)!r} has malformed data: expected b'data' uint8 (N, {CIFAR_DIM}) "
                     f"and N integer b'labels', got data {getattr(data, 'dtype', type(data).__name__)} "
                     f"{getattr(data, 'shape', '')} and labels {labels.shape}")
    return data, labels.astype(np.int64)


def cifar10(data_dir: str | os.PathLike, n: int = 1000, classes: int = 4) -> Dataset:
    """A subset of a local CIFAR-10 copy in the standard python-pickle batch format.

    ``data_dir`` is either the ``cifar-10-batches-py`` folder itself (holding ``data_batch_1`` ..
    ``data_batch_5``) or its parent. Batches are read in order (and only as many as needed); the
    subset is the first ``n / classes`` images of each of the classes ``0..classes-1`` (airplane,
    automobile, bird, cat, ...), rows in file order. Each row is the 3072 bytes R, G, B planes of a
    32x32 image, divided by 255, then centred and scaled as in the module docstring.

    The batches are unpickled with :class:`_RestrictedUnpickler`, which refuses every global except
    numpy's array reconstruction, so a tampered file cannot run code.

    Args:
        data_dir: Directory as above.
        n: Number of examples; a multiple of ``classes`` (the full training set has 5000 per class).
        classes: Number of classes, 2..10.

    Returns:
        A :class:`Dataset` with ``d = 3072``.

    Raises:
        DeriveInputError: One line naming ``--data-dir`` (missing or unreadable files), ``n`` or
            ``classes``.
    """
    n, classes, per_class = _check_sizes(n, classes, 10)
    folder = _find_cifar_dir(data_dir)
    rows: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    counts = np.zeros(classes, dtype=np.int64)
    for name in CIFAR_BATCHES:
        data, batch_labels = _read_batch(folder / name)
        keep = []
        for i, k in enumerate(batch_labels):
            if 0 <= k < classes and counts[k] < per_class:
                counts[k] += 1
                keep.append(i)
        rows.append(data[keep])
        labels.append(batch_labels[keep])
        if np.all(counts == per_class):
            break
    else:
        raise _error(f"n: {n} needs {per_class} images of each of the first {classes} classes but the batches "
                     f"in {str(folder)!r} have only {counts.tolist()}")
    raw = np.concatenate(rows).astype(np.float64) / 255.0
    return _make(raw, np.concatenate(labels), "cifar10", classes,
                 f"CIFAR-10 ({folder}): first {per_class} training images of each class 0..{classes - 1} in "
                 f"file order; pixels/255, centred per feature, scaled to mean squared norm 1")


# ---------------------------------------------------------------------------------------- synthetic
def synthetic_cifar(n: int = 1000, classes: int = 4, seed: int = 0) -> Dataset:
    """CIFAR-shaped synthetic classes: Gaussian clusters in 3072 dimensions.

    With ``rng = numpy.random.default_rng(seed)``: class means ``m_k = 0.5 * z_k`` with
    ``z_k ~ N(0, I)``, so the means are well separated relative to the noise on average but each
    pixel is noisy; example ``i`` has label ``i mod classes`` (balanced, interleaved) and input
    ``m_label + N(0, I)``. Inputs are then centred and scaled as in the module docstring.

    Args:
        n: Number of examples; a multiple of ``classes``.
        classes: Number of classes, >= 2.
        seed: Seed of the generator; the same seed gives the same data set.

    Returns:
        A :class:`Dataset` with ``d = 3072``.

    Raises:
        DeriveInputError: One line naming ``n``, ``classes`` or ``seed``.
    """
    n, classes, per_class = _check_sizes(n, classes, None)
    seed = _check_int(seed, "seed", 0, 2**32 - 1)   # the CLI's rule for every seed
    rng = np.random.default_rng(seed)
    means = 0.5 * rng.standard_normal((classes, CIFAR_DIM))
    labels = np.arange(n) % classes
    raw = means[labels] + rng.standard_normal((n, CIFAR_DIM))
    return _make(raw, labels, "synthetic", classes,
                 f"synthetic CIFAR-shaped data (seed {seed}): {per_class} Gaussian examples per class around "
                 f"random means, centred per feature, scaled to mean squared norm 1")


# ----------------------------------------------------------------------------------------- registry
def sort_task(n: int = 500, classes: int = 6, seed: int = 0, length: int = 6) -> Dataset:
    """The sequence-sorting task of the paper's Transformer experiments, generated here (no download).

    Each example is ``length`` tokens drawn uniformly (with repeats) from a vocabulary of ``classes``
    symbols; the target is the same tokens in increasing order, one-hot per position.

    Returns:
        A :class:`Dataset` whose ``X`` holds the token ids as numbers, shape ``(n, length)``; ``Y``
        the one-hot sorted sequence flattened to ``(n, length·classes)`` (position-major);
        ``labels`` the sorted ids ``(n, length)``. The same ``seed`` gives the same data.

    Raises:
        DeriveInputError: One line naming ``n``, ``classes`` or ``length``.
    """
    for name, value, low in (("n", n, 1), ("classes", classes, 2), ("length", length, 2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise _error(f"{name}: expected an integer >= {low}, got {value!r}")
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, classes, size=(n, length))
    ordered = np.sort(tokens, axis=1)
    Y = np.eye(classes, dtype=np.float32)[ordered].reshape(n, length * classes)
    return Dataset(tokens.astype(np.float32), Y, ordered, "sort", int(classes),
                   f"sequence sorting: {n} sequences of {length} tokens from {classes} symbols (seed {seed}), "
                   f"target the sorted sequence")


DATASETS = {"digits": digits, "cifar10": cifar10, "synthetic": synthetic_cifar, "sort": sort_task}


def load_dataset(name: str, **kwargs: Any) -> Dataset:
    """Build a data set by name: ``"digits"``, ``"cifar10"`` or ``"synthetic"``.

    Args:
        name: Data set name (the CLI's ``--data``).
        **kwargs: Passed on, e.g. ``n``, ``classes``, ``seed``, ``data_dir`` (cifar10).

    Raises:
        DeriveInputError: ``"data: unknown value 'x'; expected one of [...]"``, or the builder's error;
            unexpected keyword arguments also give one line naming ``--data``.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise _error(f"data: unknown value {_short(name)}; expected one of {list(DATASETS)}")
    builder = DATASETS[name]
    accepted = set(inspect.signature(builder).parameters)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise _error(f"data: {name!r} takes no argument(s) {unknown}; accepted: {sorted(accepted)}")
    if name == "cifar10" and "data_dir" not in kwargs:
        raise _error("--data-dir: the cifar10 data set needs a directory with the CIFAR-10 batches")
    return builder(**kwargs)
