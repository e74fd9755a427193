"""Data sets of the generative RBMs: bars-and-stripes counts and validity, the IDX
reader on files the test writes (plain, gzipped, corrupted), digits, mixture, split."""

import gzip
import struct

import numpy as np
import pytest

from parallel_vmc.config.fields import ConfigError
from parallel_vmc.generative import datasets as D


def _is_bas(image: np.ndarray) -> bool:
    """An n x n 0/1 image is a pattern of bars (every row equal) or of stripes (every
    column equal)."""
    return bool(np.all(image == image[0:1, :]) or np.all(image == image[:, 0:1]))


@pytest.mark.parametrize("n,count", [(1, 2), (2, 6), (3, 14), (4, 30), (5, 62)])
def test_bars_and_stripes_counts_and_validity(n, count):
    patterns, probs = D.bars_and_stripes(n)
    assert patterns.shape == (count, n * n)
    assert len(np.unique(patterns, axis=0)) == count  # distinct
    assert set(np.unique(patterns)) <= {0.0, 1.0}
    assert all(_is_bas(p.reshape(n, n)) for p in patterns)
    np.testing.assert_allclose(probs, 1.0 / count)


def test_bars_and_stripes_is_every_valid_pattern():
    """3x3 by brute force over all 512 images: the valid ones are exactly the set."""
    n = 3
    images = ((np.arange(2**9)[:, None] >> np.arange(9)) & 1).astype(float)
    valid = {tuple(im) for im in images if _is_bas(im.reshape(n, n))}
    assert valid == {tuple(p) for p in D.bars_and_stripes(n)[0]}


def test_sample_patterns_frequencies():
    patterns, probs = D.bars_and_stripes(3)
    x = D.sample_patterns(patterns, probs, 14_000, seed=1)
    index = {tuple(p): i for i, p in enumerate(patterns)}
    counts = np.bincount([index[tuple(r)] for r in x], minlength=len(patterns))
    # multinomial: each count ~ 1000 +- sqrt(1000 * 13/14); 5 sigma
    assert np.all(np.abs(counts - 1000) < 5 * np.sqrt(1000 * 13 / 14))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bars_and_stripes_bad_size(bad):
    with pytest.raises(D.DataError, match="bars-and-stripes"):
        D.bars_and_stripes(bad)


def _write_idx(path, array, type_code=0x08, gz=False, cut=0, magic=None):
    array = np.asarray(array)
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[type_code]
    magic = (type_code << 8) | array.ndim if magic is None else magic
    raw = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(dtype).tobytes()
    raw = raw[: len(raw) - cut]
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return str(path)


@pytest.fixture
def mnist_like(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5, dtype=np.uint8)
    return tmp_path, images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_read_mnist_roundtrip(mnist_like, gz):
    tmp, images, labels = mnist_like
    ipath = _write_idx(tmp / "img.idx", images, gz=gz)
    lpath = _write_idx(tmp / "lab.idx", labels, gz=gz)
    assert D.read_idx(ipath, D.IDX_IMAGES).tolist() == images.tolist()
    data, lab = D.read_mnist(ipath, lpath, threshold=None)
    np.testing.assert_allclose(data, images.reshape(5, 12) / 255.0)
    assert lab.tolist() == labels.tolist()
    binary, _ = D.read_mnist(ipath, threshold=0.5)
    assert binary.tolist() == (images.reshape(5, 12) > 127.5).astype(float).tolist()


def test_read_idx_other_types(tmp_path):
    x = np.arange(6, dtype=np.int32).reshape(2, 3) - 3
    assert D.read_idx(_write_idx(tmp_path / "i.idx", x, 0x0C)).tolist() == x.tolist()
    f = np.array([1.5, -2.25], dtype=np.float32)
    assert D.read_idx(_write_idx(tmp_path / "f.idx", f, 0x0D)).tolist() == f.tolist()


def test_idx_errors(mnist_like):
    tmp, images, labels = mnist_like
    with pytest.raises(D.DataError, match="no such file"):
        D.read_mnist(str(tmp / "missing.idx"))
    with pytest.raises(D.DataError, match="not a regular file"):
        D.read_mnist(str(tmp))
    bad = _write_idx(tmp / "bad.idx", images, magic=0x12345678)
    with pytest.raises(D.DataError, match="bad magic"):
        D.read_mnist(bad)
    wrong = _write_idx(tmp / "lab_as_img.idx", labels)  # 0x801 given as images
    with pytest.raises(D.DataError, match="expected 0x00000803"):
        D.read_mnist(wrong)
    for cut, what in [
        (1, "truncated"),
        (60, "truncated"),
        (62, "truncated header"),
        (73, "no header"),
    ]:
        path = _write_idx(tmp / f"cut{cut}.idx", images, cut=cut)
        with pytest.raises(D.DataError, match=what):
            D.read_mnist(path)
    longer = tmp / "long.idx"
    longer.write_bytes(open(_write_idx(tmp / "ok.idx", images), "rb").read() + b"\0")
    with pytest.raises(D.DataError, match="trailing bytes"):
        D.read_mnist(str(longer))
    short_labels = _write_idx(tmp / "lab3.idx", labels[:3])
    with pytest.raises(D.DataError, match="3 labels for 5 images"):
        D.read_mnist(_write_idx(tmp / "img.idx", images), short_labels)
    broken_gz = tmp / "broken.gz"
    broken_gz.write_bytes(gzip.compress(b"x" * 100)[:20])
    with pytest.raises(D.DataError, match="cannot read"):
        D.read_idx(str(broken_gz))


def test_data_error_is_a_config_error():
    """The command line maps ConfigError to exit code 2; DataError rides on it."""
    assert issubclass(D.DataError, ConfigError)


def test_digits_binarised():
    pytest.importorskip("sklearn")
    data, labels = D.digits()
    assert data.shape == (1797, 64) and labels.shape == (1797,)
    assert set(np.unique(data)) == {0.0, 1.0}
    assert 0.2 < data.mean() < 0.5  # about a third of the pixels are on


def test_digits_without_sklearn(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(D.DataError, match="scikit-learn"):
        D.digits()


def test_gaussian_mixture_seeded_and_moments():
    a = D.gaussian_mixture(20_000, seed=5, centers=((-2, 0), (2, 1)), std=0.3)
    assert np.array_equal(a, D.gaussian_mixture(20_000, seed=5, centers=((-2, 0), (2, 1)), std=0.3))
    left = a[a[:, 0] < 0]
    assert abs(len(left) / len(a) - 0.5) < 5 * 0.5 / np.sqrt(len(a))
    np.testing.assert_allclose(left.mean(axis=0), [-2, 0], atol=5 * 0.3 / np.sqrt(len(left)))
    np.testing.assert_allclose(left.std(axis=0), 0.3, rtol=0.05)
    with pytest.raises(D.DataError, match="weights"):
        D.gaussian_mixture(10, 0, weights=[0.2, 0.2])


def test_split_and_check():
    x = np.arange(20.0).reshape(10, 2)
    train, held = D.split(x, 0.3, seed=2)
    assert len(train) == 7 and len(held) == 3
    assert sorted(np.concatenate([train, held])[:, 0]) == list(x[:, 0])
    assert np.array_equal(D.split(x, 0.3, seed=2)[1], held)
    with pytest.raises(D.DataError, match="held-out"):
        D.split(x, 1.0, seed=0)
    with pytest.raises(D.DataError, match="empty side"):
        D.split(x[:1], 0.5, seed=0)
    with pytest.raises(D.DataError, match="0/1 data, found the value 0.5"):
        D.check_data([[0, 0.5]], binary=True)
    with pytest.raises(D.DataError, match="3 columns, the model has 2"):
        D.check_data(np.zeros((4, 3)), n_visible=2)
    with pytest.raises(D.DataError, match="shape"):
        D.check_data(np.zeros(4))
