"""Damaged run files: every failure to read becomes one `error:` line naming the object
(exit 2), never a traceback, a crash or a hang; a number that still comes out is the
file's own or carries the summary-mismatch warning."""

import json
import os
import signal
import time

import h5py
import numpy as np
import pytest
from analysis_fixtures import write_run_file

import analysis.runfile as runfile
from analysis.cli import main
from analysis.runfile import RunFileError, read_run

LE = "/production/local_energy"


def _exit_2(capsys, path, *more) -> str:
    """Run the CLI on path: exit 2, nothing on stdout, one error line; returns it."""
    assert main([str(path), *more]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), captured.err
    return lines[0]


@pytest.fixture
def small(tmp_path):
    """A small format 3 run file (4 chains x 256 samples)."""
    path = tmp_path / "small.h5"
    write_run_file(path, format_version=3, n_samples=256, n_iter=8)
    return path


# ----------------------------------------------------------------------------- the mechanism
@pytest.mark.parametrize(
    "exc",
    [
        OSError("Can't synchronously read data (bad heap)"),
        RuntimeError("Unable to get object info"),
        KeyError("message type"),
        ValueError("bad shape"),
        TypeError("no conversion path"),
        IndexError("index 3"),
        AttributeError("'NoneType' object"),
        NotImplementedError("unsupported type"),
    ],
)
def test_any_exception_while_reading_names_the_dataset(small, monkeypatch, capsys, exc):
    """Whatever h5py raises while a dataset is read becomes a RunFileError naming it
    (also in the guard's forked child, which inherits the patch)."""
    original = h5py.Dataset.__getitem__

    def damaged(self, selection):
        if self.name == LE:
            raise exc
        return original(self, selection)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", damaged)
    with pytest.raises(RunFileError, match=f"{LE}: cannot be read, the file is damaged"):
        read_run(small)
    line = _exit_2(capsys, small)
    assert f"{LE}: cannot be read, the file is damaged (" in line


def test_a_failed_checksum_is_named_as_such(small, monkeypatch):
    """HDF5 1.x names the Fletcher32 checksum in its message (2.0 does not: see the
    on-disk test below)."""

    def damaged(self, selection):
        raise OSError("Can't read data (data error detected by Fletcher32 checksum)")

    monkeypatch.setattr(h5py.Dataset, "__getitem__", damaged)
    with pytest.raises(RunFileError, match="failed its checksum: the file is damaged"):
        read_run(small)


@pytest.mark.parametrize(
    "name", ["production/local_energy", "production/trap", "optimization/params"]
)
def test_flipped_bytes_in_checksummed_data(tmp_path, capsys, name):
    """Chunked datasets with the Fletcher32 filter (pvmc's layout to come): a byte
    flipped inside a chunk's data fails the checksum on reading, in any chunk."""
    path = tmp_path / "ck.h5"
    write_run_file(path, format_version=3, n_samples=512, checksums=True)
    with h5py.File(path, "r") as h5:
        ds = h5[name]
        assert ds.fletcher32 and ds.chunks
        chunk = ds.id.get_chunk_info(ds.id.get_num_chunks() - 1)
    data = bytearray(path.read_bytes())
    data[chunk.byte_offset + chunk.size // 2] ^= 0x04
    path.write_bytes(bytes(data))
    line = _exit_2(capsys, path)
    assert line.endswith(f"/{name}: failed its checksum: the file is damaged")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the guard needs fork")
def test_a_crash_inside_hdf5_is_an_error_naming_the_object(small, monkeypatch, capsys):
    """HDF5 can crash on damaged metadata (seen: a garbled string in its global heap).
    The structure is read in a child process first: its death is reported."""
    original = h5py.AttributeManager.__getitem__

    def crashing(self, name):
        if name == "created":
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, name)

    monkeypatch.setattr(h5py.AttributeManager, "__getitem__", crashing)
    line = _exit_2(capsys, small)
    assert "root attribute created: reading it crashed the HDF5 library (SIGKILL)" in line


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the guard needs fork")
def test_a_hang_inside_hdf5_is_an_error_naming_the_object(small, monkeypatch, capsys):
    original = h5py.AttributeManager.__getitem__

    def hanging(self, name):
        if name == "hostname":
            time.sleep(30)
        return original(self, name)

    monkeypatch.setattr(h5py.AttributeManager, "__getitem__", hanging)
    monkeypatch.setattr(runfile, "CHILD_TIMEOUT", 0.5)
    start = time.monotonic()
    line = _exit_2(capsys, small)
    assert time.monotonic() - start < 10
    assert "root attribute hostname: reading it does not finish" in line


# ----------------------------------------------------------------------------- what is read
def _replace(group, name, data, **kw):
    del group[name]
    group.create_dataset(name, data=data, **kw)


def _set_root(h5, name, value):
    h5.attrs[name] = value


@pytest.mark.parametrize(
    "damage,named",
    [
        (
            lambda h5: (h5.__delitem__("production"), h5.create_dataset("production", data=[1.0])),
            "/production is a dataset, not a group",
        ),
        (
            lambda h5: (
                h5["production"].__delitem__("local_energy"),
                h5["production"].create_group("local_energy"),
            ),
            f"{LE} is a group, not a dataset",
        ),
        (
            lambda h5: _replace(h5["optimization"], "rows_written", np.array([99])),
            "/optimization/rows_written is 99, not a whole number from 0 to 13",
        ),
        (
            lambda h5: _replace(h5["optimization"], "rows_written", np.array([-1])),
            "/optimization/rows_written is -1, not a whole number",
        ),
        (
            lambda h5: _replace(h5["optimization"], "rows_written", np.array([2.5])),
            "/optimization/rows_written is 2.5, not a whole number",
        ),
        (
            lambda h5: _replace(h5["production"], "samples_written", np.array([257])),
            "/production/samples_written is 257, not a whole number from 0 to 256",
        ),
        (
            lambda h5: _replace(h5["production"], "samples_written", np.array([-3])),
            "/production/samples_written is -3",
        ),
        (
            lambda h5: _replace(h5["production"], "samples_written", np.array([100])),
            "/production/samples_written (100) and the attribute samples_per_chain (256) disagree",
        ),
        (
            lambda h5: h5["production"].attrs.__setitem__("samples_per_chain", "abc"),
            "/production attribute samples_per_chain is 'abc', not a whole number",
        ),
        (
            lambda h5: _set_root(h5, "format_version", "abc"),
            "format_version 'abc' is not an integer",
        ),
        (lambda h5: _set_root(h5, "format_version", 3.5), "format_version 3.5 is not an integer"),
        (
            lambda h5: h5.attrs.create("status", np.bytes_(b"compl\xffted")),
            "root attribute status: is not valid UTF-8 text: the file is damaged",
        ),
        (
            lambda h5: h5.attrs.create("config", np.bytes_(b"system: {omega: \xc3}")),
            "root attribute config: is not valid UTF-8 text",
        ),
        (
            lambda h5: _replace(h5["segments"], "hostname", np.array([b"node\xfe01"], "S512")),
            "/segments/hostname: is not valid UTF-8 text",
        ),
        (
            lambda h5: h5["summary"].attrs.__setitem__("energy", "3.0"),
            "/summary attribute energy is '3.0', not a number",
        ),
        (
            lambda h5: _replace(h5["wavefunction"], "sigma", np.ones(3)),
            "/wavefunction/sigma is not a single number",
        ),
        (
            lambda h5: _replace(h5["production"], "trap", np.ones((4, 100))),
            "/production/trap has shape (4, 100), /production/local_energy (4, 256)",
        ),
        (
            lambda h5: _replace(h5["optimization"], "energy", np.array([b"x"] * 13)),
            "/optimization/energy is not numeric",
        ),
        (
            lambda h5: _set_root(h5, "config", "system: [1, 2]\n"),
            "root attribute config: section system is not a mapping",
        ),
    ],
)
def test_inconsistent_contents_exit_2_naming_them(tmp_path, capsys, damage, named):
    path = tmp_path / "bad.h5"
    write_run_file(path, format_version=3, n_samples=256, n_iter=8)
    with h5py.File(path, "r+") as h5:
        damage(h5)
    assert named in _exit_2(capsys, path)


def test_text_cut_by_its_fixed_length_field_is_kept(tmp_path, capsys):
    """pvmc stores the status in 512-byte fixed-length text, cut at 511 bytes: a
    character cut in two at the end of a full field is the writer's cut, not damage."""
    path = tmp_path / "cut.h5"
    write_run_file(path, format_version=3, n_samples=256, n_iter=8)
    status = b"failed: " + b"x" * 502 + "\u00e9".encode()[:1]  # 511 bytes
    with h5py.File(path, "r+") as h5:
        h5.attrs.create("status", np.array(status, dtype="S512"))
    assert read_run(path).status == "failed: " + "x" * 502
    short = status[:20] + "\u00e9".encode()[:1]  # not a full field
    with h5py.File(path, "r+") as h5:
        h5.attrs.create("status", np.array(short, dtype="S512"))
    assert "root attribute status: is not valid UTF-8 text" in _exit_2(capsys, path)


# ----------------------------------------------------------------------------- generated
def _cases(size: int, seed: int, truncations: int, flips: int) -> list:
    """Truncations at evenly spread offsets and random single-byte flips (fixed seed)."""
    rng = np.random.default_rng(seed)
    cut = [("truncate", int(o), 0) for o in np.linspace(0, size - 1, truncations)]
    flip = [
        ("flip", int(o), int(v))
        for o, v in zip(rng.integers(0, size, flips), rng.integers(1, 256, flips))
    ]
    return cut + flip


@pytest.mark.parametrize("checksums", [False, True])
def test_truncated_and_flipped_files(tmp_path, capsys, checksums):
    """The property, on 10 truncations and 15 random byte flips of a run file per layout
    (contiguous as pvmc writes now; chunked with checksums as it is to): exit 2 with one
    error line, or exit 0 with the file's energy, or with the summary-mismatch warning.
    Never a traceback, never another energy without a warning."""
    base = tmp_path / "base.h5"
    write_run_file(base, format_version=3, n_samples=256, n_iter=8, checksums=checksums, seed=4)
    assert main([str(base), "--json", "--n-boot", "2"]) == 0
    energy = json.loads(capsys.readouterr().out)["production"]["mean"]
    original = base.read_bytes()
    path = tmp_path / "case.h5"
    outcomes = set()
    for kind, offset, value in _cases(len(original), 20260 + checksums, 10, 15):
        data = bytearray(original[:offset] if kind == "truncate" else original)
        if kind == "flip":
            data[offset] ^= value
        path.write_bytes(bytes(data))
        code = main([str(path), "--json", "--n-boot", "2"])
        captured = capsys.readouterr()
        case = (kind, offset, value, captured.err)
        if code == 2:
            lines = captured.err.strip().splitlines()
            assert captured.out == "" and len(lines) == 1, case
            assert lines[0].startswith(f"error: {path}: "), case
            outcomes.add("error")
            continue
        assert code == 0, case
        report = json.loads(captured.out)
        mean = (report["production"] or {}).get("mean")
        if report["summary_mismatch"] is not None:
            outcomes.add("mismatch")
        else:
            assert mean == pytest.approx(energy, rel=1e-9), case
            outcomes.add("same")
    assert "error" in outcomes and "same" in outcomes


def test_a_checksum_failure_in_a_running_file_may_be_a_write_in_progress(tmp_path, capsys):
    """A live run rewrites chunks while it is being looked at: the message says that
    a failed checksum may be that, not damage."""
    path = tmp_path / "live.h5"
    write_run_file(
        path,
        format_version=3,
        status="running",
        n_samples=512,
        samples_per_chain=300,
        checksums=True,
    )
    with h5py.File(path, "r") as h5:
        chunk = h5[LE].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[chunk.byte_offset + 8] ^= 0x10
    path.write_bytes(bytes(data))
    line = _exit_2(capsys, path)
    assert line.endswith(
        f"{LE}: failed its checksum: the file is damaged (or it was read "
        "while the running run wrote it: try again)"
    )
