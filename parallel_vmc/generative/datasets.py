"""Data sets for the generative RBMs that need no download, and an MNIST IDX reader.

* :func:`bars_and_stripes` - the n x n bars-and-stripes patterns with their exact
  distribution (every distinct pattern equally likely), so KL(data || model) is exact;
* :func:`digits` - scikit-learn's bundled 8x8 digits, binarised (optional extra);
* :func:`gaussian_mixture` - a seeded 2D mixture of Gaussians for the Gaussian-binary RBM;
* :func:`read_idx` / :func:`read_mnist` - the standard MNIST IDX files at a user's path;
* :func:`split` - a seeded train / held-out split.

Every data set is a float64 array of shape (n_samples, n_visible), one row per sample.
Bad input raises :class:`DataError`, a :class:`~parallel_vmc.config.ConfigError`, so the
command line reports it in one line with exit code 2 before any work.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

from ..config.fields import ConfigError

__all__ = [
    "DataError",
    "bars_and_stripes",
    "sample_patterns",
    "digits",
    "gaussian_mixture",
    "read_idx",
    "read_mnist",
    "split",
    "check_data",
    "IDX_IMAGES",
    "IDX_LABELS",
]

IDX_IMAGES, IDX_LABELS = 0x00000803, 0x00000801  # MNIST's magic numbers (ubyte, 3D / 1D)
# IDX type byte -> big-endian numpy dtype
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
DIGITS_MAX = 16.0  # the bundled digits' pixels are integers 0..16


class DataError(ConfigError):
    """Unusable data (missing or damaged file, wrong shape, non-binary values for a
    binary model, missing optional package); the message names the file or what is
    wrong. A ConfigError, so ``pvmc`` exits with code 2."""


# --------------------------------------------------------------------------- bars and stripes
def bars_and_stripes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """All distinct n x n bars-and-stripes patterns and their exact probabilities.

    A pattern is a set of whole columns on (bars) or of whole rows on (stripes). The
    empty and the full image are both, so for n >= 2 there are 2^(n+1) - 2 distinct
    patterns (14 for 3x3, 30 for 4x4); for n = 1 there are 2. The data distribution
    puts equal weight on each distinct pattern.

    Returns ``patterns`` (K, n*n) float64 of 0/1 (row-major images) and ``probs`` (K,).
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise DataError(f"bars-and-stripes size n = {n!r}: must be an integer >= 1")
    n = int(n)
    subsets = (np.arange(2**n)[:, None] >> np.arange(n)) & 1  # (2^n, n)
    bars = np.repeat(subsets[:, None, :], n, axis=1)  # columns on
    stripes = np.repeat(subsets[:, :, None], n, axis=2)  # rows on
    images = np.concatenate([bars, stripes]).reshape(-1, n * n)
    patterns = np.unique(images, axis=0).astype(np.float64)
    return patterns, np.full(len(patterns), 1.0 / len(patterns))


def sample_patterns(patterns: np.ndarray, probs: np.ndarray, size: int, seed) -> np.ndarray:
    """``size`` rows drawn independently from a discrete distribution over ``patterns``
    (K, n) with probabilities ``probs`` (K,); returns (size, n) float64."""
    rng = np.random.default_rng(seed)
    return patterns[rng.choice(len(patterns), size=size, p=probs)].astype(np.float64)


# ---------------------------------------------------------------------------------- digits
def digits(threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1797 images), binarised: a pixel is 1 where
    its intensity, scaled to [0, 1], exceeds ``threshold``.

    Returns ``data`` (1797, 64) float64 of 0/1 and ``labels`` (1797,) int. Needs
    scikit-learn (``pip install 'parallel_vmc[data]'``)."""
    if not 0.0 <= threshold < 1.0:
        raise DataError(f"digits threshold = {threshold!r}: must be in [0, 1)")
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError(
            "the 8x8 digits come with scikit-learn, which is not installed "
            "(pip install scikit-learn, or pip install 'parallel_vmc[data]')"
        ) from None
    bunch = load_digits()
    data = np.asarray(bunch.data, dtype=np.float64) / DIGITS_MAX > threshold
    return data.astype(np.float64), np.asarray(bunch.target, dtype=np.int64)


# ------------------------------------------------------------------------ Gaussian mixture
def gaussian_mixture(
    n_samples: int, seed, centers=((-1.5, 0.0), (1.5, 0.0)), std: float = 0.5, weights=None
) -> np.ndarray:
    """``n_samples`` points of a 2D (or len(centers[0])-D) mixture of isotropic Gaussians
    with standard deviation ``std`` around ``centers`` (K, d), drawn with ``weights`` (K,)
    (equal by default), from the seed. Returns (n_samples, d) float64."""
    centers = np.asarray(centers, dtype=np.float64)
    if centers.ndim != 2 or len(centers) < 1:
        raise DataError(f"mixture centers: need a (K, d) array, got shape {centers.shape}")
    if not std > 0:
        raise DataError(f"mixture std = {std!r}: must be > 0")
    if n_samples < 1:
        raise DataError(f"mixture n_samples = {n_samples!r}: must be >= 1")
    w = (
        np.full(len(centers), 1.0 / len(centers))
        if weights is None
        else np.asarray(weights, dtype=np.float64)
    )
    if w.shape != (len(centers),) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
        raise DataError(f"mixture weights: need {len(centers)} non-negative numbers summing to 1")
    rng = np.random.default_rng(seed)
    which = rng.choice(len(centers), size=n_samples, p=w)
    return centers[which] + std * rng.standard_normal((n_samples, centers.shape[1]))


# ------------------------------------------------------------------------------ IDX files
def _read_bytes(path: str) -> bytes:
    """The file's content, gunzipped when it starts with gzip's magic bytes."""
    if not os.path.exists(path):
        raise DataError(f"IDX file {path}: no such file")
    if not os.path.isfile(path):  # a directory, a FIFO (reading could block)
        raise DataError(f"IDX file {path}: not a regular file")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:  # zlib: damaged gzip
        raise DataError(f"IDX file {path}: cannot read it ({exc})") from None


def read_idx(path: str, expect_magic: int | None = None) -> np.ndarray:
    """One IDX array (the MNIST file format): a 4-byte big-endian magic number
    ``0x0000TTDD`` (type code TT, number of dimensions DD), DD big-endian uint32 sizes,
    then the data, big-endian, row-major. Plain or gzipped.

    ``expect_magic`` (e.g. :data:`IDX_IMAGES`) refuses any other magic number. Returns
    the array in native byte order with the file's shape."""
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"IDX file {path}: truncated ({len(raw)} bytes, no header)")
    (magic,) = struct.unpack(">I", raw[:4])
    type_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if magic >> 16 != 0 or type_code not in _IDX_TYPES or ndim == 0:
        raise DataError(f"IDX file {path}: bad magic number 0x{magic:08x} (not an IDX file)")
    if expect_magic is not None and magic != expect_magic:
        raise DataError(
            f"IDX file {path}: magic number 0x{magic:08x}, expected 0x{expect_magic:08x}"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"IDX file {path}: truncated header ({len(raw)} bytes, {ndim} dimensions need {header})"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[type_code])
    need = header + math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if len(raw) != need:
        what = "truncated" if len(raw) < need else "trailing bytes"
        raise DataError(
            f"IDX file {path}: {what} ({len(raw)} bytes, shape {shape} of "
            f"{dtype.itemsize}-byte values needs {need})"
        )
    if math.prod(d for d in shape if d) * dtype.itemsize > np.iinfo(np.intp).max:
        # a size 0 besides sizes no array can have (numpy refuses even the empty one)
        raise DataError(f"IDX file {path}: shape {shape} is beyond any array (no data)")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def read_mnist(
    images_path: str, labels_path: str | None = None, threshold: float | None = 0.5
) -> tuple[np.ndarray, np.ndarray | None]:
    """MNIST images (magic 0x00000803, n x rows x cols unsigned bytes) and optionally
    labels (0x00000801, n unsigned bytes) from the user's files.

    Returns ``data`` (n, rows*cols) float64 - binarised (intensity/255 > threshold) unless
    ``threshold`` is None, then scaled to [0, 1] - and ``labels`` (n,) int64 or None."""
    images = read_idx(images_path, expect_magic=IDX_IMAGES)
    n, rows, cols = images.shape
    if n == 0:
        raise DataError(
            f"IDX file {images_path}: no images (its header gives 0 images of "
            f"{rows} x {cols} pixels); allowed: a file of at least one image"
        )
    if rows * cols == 0:
        raise DataError(
            f"IDX file {images_path}: images of {rows} x {cols} pixels, no pixels; "
            "allowed: images of at least 1 x 1 pixels"
        )
    data = images.reshape(n, rows * cols).astype(np.float64) / 255.0
    if threshold is not None:
        data = (data > threshold).astype(np.float64)
    labels = None
    if labels_path is not None:
        labels = read_idx(labels_path, expect_magic=IDX_LABELS).astype(np.int64)
        if len(labels) != len(data):
            raise DataError(
                f"MNIST labels {labels_path}: {len(labels)} labels for "
                f"{len(data)} images in {images_path}"
            )
    return data, labels


# ----------------------------------------------------------------------- split and checks
def split(data: np.ndarray, held_out: float, seed) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of the rows of ``data`` (n, d) into (train, held-out);
    ``held_out`` is the held-out fraction in (0, 1), at least one row on each side."""
    n = len(data)
    if not 0.0 < held_out < 1.0:
        raise DataError(f"held-out fraction = {held_out!r}: must be in (0, 1)")
    n_held = int(round(held_out * n))
    if n_held < 1 or n_held > n - 1:
        raise DataError(f"held-out fraction {held_out} of {n} samples leaves an empty side")
    order = np.random.default_rng(seed).permutation(n)
    return data[order[n_held:]], data[order[:n_held]]


def check_data(
    data, n_visible: int | None = None, binary: bool = False, name: str = "data"
) -> np.ndarray:
    """``data`` as a float64 (n, n_visible) array, or a DataError naming what is wrong:
    not 2D, no rows, wrong number of columns, non-finite values, or (``binary``) values
    other than 0 and 1."""
    x = np.asarray(data, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataError(
            f"{name}: need a (n_samples, n_visible) array with n_samples >= 1, got shape {x.shape}"
        )
    if n_visible is not None and x.shape[1] != n_visible:
        raise DataError(f"{name}: {x.shape[1]} columns, the model has {n_visible} visible units")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{name}: contains NaN or infinite values")
    if binary and not np.all((x == 0.0) | (x == 1.0)):
        bad = x[(x != 0.0) & (x != 1.0)][0]
        raise DataError(f"{name}: a binary model needs 0/1 data, found the value {float(bad)!r}")
    return x
