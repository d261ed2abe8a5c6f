"""Tests for numeric.data: subsets, scaling, the CIFAR-10 reader (on a tiny generated fixture in the
real format) and its refusal to unpickle anything but plain data and numpy arrays."""

from __future__ import annotations

import os
import pickle
import shlex
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits

from derive.errors import DeriveInputError
from numeric import data

ATOL = 1e-5   # float32 outputs against float64 oracles


def _oracle_scale(raw: np.ndarray) -> np.ndarray:
    """Independent float64 version of the documented scaling: centre each column, then divide by
    sqrt(mean squared row norm)."""
    centred = raw - raw.mean(axis=0)
    return centred / np.sqrt((centred ** 2).sum(axis=1).mean())


def _check_common(ds: data.Dataset, n: int, classes: int, dim: int) -> None:
    assert ds.X.shape == (n, dim) and ds.X.dtype == np.float32
    assert ds.Y.shape == (n, classes) and ds.Y.dtype == np.float32
    assert ds.labels.shape == (n,) and np.issubdtype(ds.labels.dtype, np.integer)
    assert ds.classes == classes and ds.n == n and ds.dim == dim
    np.testing.assert_array_equal(ds.Y.sum(axis=1), np.ones(n))
    np.testing.assert_array_equal(ds.Y.argmax(axis=1), ds.labels)
    np.testing.assert_array_equal(np.bincount(ds.labels, minlength=classes), np.full(classes, n // classes))
    x = ds.X.astype(np.float64)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=ATOL)
    np.testing.assert_allclose((x ** 2).sum(axis=1).mean(), 1.0, rtol=1e-5)
    assert "\n" not in ds.description


def _one_line(excinfo, *words: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)
    return msg


# ------------------------------------------------------------------------------------------- digits
@pytest.mark.parametrize("n,classes", [(1000, 10), (60, 3)])
def test_digits_subset_and_scaling(n, classes):
    ds = data.digits(n=n, classes=classes)
    _check_common(ds, n, classes, 64)
    assert ds.name == "digits"
    # The first n/classes examples of each class in file order, straight from scikit-learn.
    ref = load_digits()
    per_class = n // classes
    expected = []
    counts = [0] * classes
    for i, k in enumerate(ref.target):
        if k < classes and counts[k] < per_class:
            counts[k] += 1
            expected.append(i)
    np.testing.assert_array_equal(ds.labels, ref.target[expected])
    np.testing.assert_allclose(ds.X, _oracle_scale(ref.data[expected] / 16.0), atol=ATOL)


def test_digits_deterministic():
    a, b = data.digits(n=100, classes=5), data.digits(n=100, classes=5, seed=7)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.labels, b.labels)


@pytest.mark.parametrize("kwargs,word", [
    (dict(n=1001, classes=10), "n:"), (dict(n=1750, classes=10), "n:"), (dict(n=0), "n:"),
    (dict(n=True), "n:"), (dict(classes=11), "classes:"), (dict(classes=1), "classes:"),
    (dict(n=10.0), "n:"),
])
def test_digits_errors(kwargs, word):
    with pytest.raises(DeriveInputError) as excinfo:
        data.digits(**kwargs)
    assert _one_line(excinfo).startswith(word)


# ------------------------------------------------------------------------------------------ cifar10
PER_BATCH = 20
# Global positions (batch b, row i -> 20*b + i) of the classes that matter; every other image has
# label 9. With n=8, classes=4 the picks are the first two of each class 0..3.
PLACED = {0: [3, 7, 30], 1: [0, 45, 50], 2: [21, 61], 3: [62, 79, 99], 4: [1, 2], 5: [4]}
EXPECTED_PICKS = [0, 3, 7, 21, 45, 61, 62, 79]


def _write_cifar(folder, seed: int = 0):
    """Five batches of PER_BATCH random images in the CIFAR-10 python format; returns (images, labels)."""
    rng = np.random.default_rng(seed)
    total = 5 * PER_BATCH
    images = rng.integers(0, 256, size=(total, 3072), dtype=np.uint8)
    labels = np.full(total, 9)
    for k, positions in PLACED.items():
        labels[positions] = k
    folder.mkdir(parents=True, exist_ok=True)
    for b in range(5):
        rows = slice(b * PER_BATCH, (b + 1) * PER_BATCH)
        batch = {b"batch_label": f"training batch {b + 1} of 5".encode(), b"labels": labels[rows].tolist(),
                 b"data": images[rows], b"filenames": [b"img.png"] * PER_BATCH}
        with open(folder / f"data_batch_{b + 1}", "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"labels": [0], b"data": images[:1]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{k}".encode() for k in range(10)], b"num_vis": 3072}, f)
    return images, labels


@pytest.mark.parametrize("layout", ["batches", "parent"])
def test_cifar10_subset_and_scaling(tmp_path, layout):
    images, labels = _write_cifar(tmp_path / "cifar-10-batches-py")
    where = tmp_path / "cifar-10-batches-py" if layout == "batches" else tmp_path
    ds = data.cifar10(str(where), n=8, classes=4)
    _check_common(ds, 8, 4, 3072)
    assert ds.name == "cifar10"
    np.testing.assert_array_equal(ds.labels, labels[EXPECTED_PICKS])
    np.testing.assert_array_equal(ds.labels, [1, 0, 0, 2, 1, 2, 3, 3])
    np.testing.assert_allclose(ds.X, _oracle_scale(images[EXPECTED_PICKS] / 255.0), atol=ATOL)
    again = data.load_dataset("cifar10", data_dir=where, n=8, classes=4)
    np.testing.assert_array_equal(ds.X, again.X)


def test_cifar10_stops_reading_when_complete(tmp_path):
    folder = tmp_path / "c"
    _write_cifar(folder)
    (folder / "data_batch_5").write_bytes(b"not a pickle")   # every pick lies in batches 1..4
    ds = data.cifar10(folder, n=8, classes=4)
    assert ds.n == 8
    with pytest.raises(DeriveInputError) as excinfo:   # but a class short of images reads on into it
        data.cifar10(folder, n=12, classes=4)
    _one_line(excinfo, "--data-dir", "data_batch_5")


def test_cifar10_not_enough_images(tmp_path):
    _write_cifar(tmp_path)
    with pytest.raises(DeriveInputError) as excinfo:
        data.cifar10(tmp_path, n=12, classes=4)   # class 2 has only two images
    assert _one_line(excinfo).startswith("n:")


def test_cifar10_missing_directory(tmp_path):
    for where in (tmp_path / "nope", tmp_path):
        with pytest.raises(DeriveInputError) as excinfo:
            data.cifar10(where, n=8)
        msg = _one_line(excinfo, "--data-dir", "data_batch_1", "cifar-10-batches-py")
        assert msg.startswith("--data-dir:")
    _write_cifar(tmp_path)
    os.remove(tmp_path / "data_batch_3")
    with pytest.raises(DeriveInputError) as excinfo:
        data.cifar10(tmp_path, n=8)
    _one_line(excinfo, "--data-dir")
    with pytest.raises(DeriveInputError) as excinfo:
        data.load_dataset("cifar10", n=8)
    _one_line(excinfo, "--data-dir")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def test_cifar10_refuses_malicious_pickle(tmp_path):
    # The payload is live: an ordinary unpickler runs it.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps({b"data": _Evil(probe)}))
    assert probe.exists()

    folder = tmp_path / "evil"
    _write_cifar(folder)
    marker = tmp_path / "pwned"
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"labels": [0], b"data": _Evil(marker)}, f)
    with pytest.raises(DeriveInputError) as excinfo:
        data.cifar10(folder, n=8, classes=4)
    _one_line(excinfo, "--data-dir", "data_batch_1", "system")
    assert not marker.exists()


def test_restricted_unpickler_allows_only_numpy_reconstruction():
    import io

    u = data._RestrictedUnpickler(io.BytesIO(b""))
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        assert callable(u.find_class(module, "_reconstruct"))
    assert u.find_class("numpy", "ndarray") is np.ndarray
    assert u.find_class("numpy", "dtype") is np.dtype
    for module, name in [("builtins", "eval"), ("os", "system"), ("numpy", "load"),
                         ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode")]:
        with pytest.raises(pickle.UnpicklingError):
            u.find_class(module, name)


# ---------------------------------------------------------------------------------------- synthetic
def test_synthetic():
    ds = data.synthetic_cifar(n=40, classes=4, seed=3)
    _check_common(ds, 40, 4, 3072)
    again = data.load_dataset("synthetic", n=40, classes=4, seed=3)
    np.testing.assert_array_equal(ds.X, again.X)
    np.testing.assert_array_equal(ds.labels, again.labels)
    other = data.synthetic_cifar(n=40, classes=4, seed=4)
    assert not np.allclose(ds.X, other.X)
    # The classes are separable: each example is nearer its own class centroid than any other.
    centroids = np.stack([ds.X[ds.labels == k].mean(axis=0) for k in range(4)])
    dists = ((ds.X[:, None, :] - centroids[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(dists.argmin(axis=1), ds.labels)


# ----------------------------------------------------------------------------------------- registry
def test_load_dataset_errors():
    with pytest.raises(DeriveInputError) as excinfo:
        data.load_dataset("mnist")
    msg = _one_line(excinfo, "'mnist'", "digits", "cifar10", "synthetic")
    assert msg.startswith("data: unknown value")
    with pytest.raises(DeriveInputError) as excinfo:
        data.load_dataset("digits", n=100, colour=True)
    _one_line(excinfo, "colour")
    with pytest.raises(DeriveInputError) as excinfo:
        data.load_dataset("synthetic", n=10, classes=4)
    assert _one_line(excinfo).startswith("n:")


def test_import_does_not_pull_sympy_or_sklearn():
    code = "import sys, numeric.data; print('sympy' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_digits_are_read_without_importing_sklearn():
    """The bundled file is read directly (importing scikit-learn costs seconds per run); the pixels
    are scikit-learn's own (``test_digits_subset_and_scaling``)."""
    code = "import sys, numeric.data as d; d.digits(n=100); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
