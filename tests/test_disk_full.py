"""A disk that is full, or fills up while an output is written.

The outcome is one line naming the output, exit status 1, no temporary
file left, and the previous output intact; never a crash in libhdf5, which
does not survive a failed write of a file it is closing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import numpy as np
import pytest

import spikerates.io.atomic as atomic
from spikerates import io
from spikerates.errors import SpikeDataError
from spikerates.spiketrains import SpikeTrains

FORMATS = ["h5", "nwb", "npz", "csv"]


def _spikerates(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "spikerates", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB file system (a tmpfs mounted for the test), when allowed."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        pytest.skip("cannot mount a small file system here")
    if done.returncode != 0:
        pytest.skip("cannot mount a small file system here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


def _one_error_line(done, *fragments):
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert len(lines) == 1, lines
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("ext", FORMATS)
def test_rates_onto_a_full_disk_end_in_one_line(small_disk, ext):
    previous = small_disk / f"rates.{ext}"
    previous.write_bytes(b"previous result")
    done = _spikerates(
        "rates", "kernel", "sample_data/recording.nwb", "--dt", "0.0001",
        "--tau", "0.02", "-o", previous,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )  # fmt: skip
    _one_error_line(done, str(previous), "no space left")
    assert previous.read_bytes() == b"previous result"
    assert sorted(os.listdir(small_disk)) == [previous.name]


def test_a_batch_onto_a_full_disk_names_each_output(small_disk, tmp_path):
    import shutil

    root = os.path.dirname(os.path.dirname(__file__))
    inputs = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.nwb"
        shutil.copyfile(os.path.join(root, "sample_data", "recording.nwb"), path)
        inputs.append(path)
    done = _spikerates(
        "rates", "kernel", *inputs, "--dt", "0.0001", "--tau", "0.02",
        "--jobs", "2", "-o", small_disk,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "BrokenProcessPool" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, lines
    for name in ("a", "b"):
        assert any(str(small_disk / f"{name}.npz") in line for line in lines), lines
    assert os.listdir(small_disk) == []


def test_a_small_output_still_fits(small_disk):
    out = small_disk / "rates.h5"
    done = _spikerates(
        "rates", "kernel", "sample_data/recording.nwb", "--dt", "0.001",
        "--tau", "0.02", "-o", out, cwd=os.path.dirname(os.path.dirname(__file__)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert os.listdir(small_disk) == ["rates.h5"]


# ----------------------------------------------------------------------------
# The disk fills up while the output is streamed (another program writes)


@pytest.mark.parametrize("ext", FORMATS)
def test_a_disk_that_fills_up_while_streaming_stops_the_writer(
    tmp_path, monkeypatch, ext
):
    free = iter([1 << 40, 1 << 40, 1 << 40])
    monkeypatch.setattr(atomic, "free_bytes", lambda path: next(free, 1 << 10))
    target = tmp_path / f"out.{ext}"
    target.write_bytes(b"previous result")
    writer = io.open_matrix_writer(target, None, n_rows=4000, unit_ids=np.arange(50))
    t = np.arange(4000) * 1e-3
    values = np.ones((4000, 50))
    with pytest.raises(SpikeDataError) as caught:
        with writer:
            for start in range(0, 4000, 500):
                writer.append(t[start : start + 500], values[start : start + 500])
    message = str(caught.value)
    assert message.startswith(f"{target}: ") and "no space left" in message
    assert target.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == [target.name]


def test_the_check_counts_what_is_still_to_come(tmp_path, monkeypatch):
    seen = []

    def free(path):
        seen.append(path)
        return 1 << 40

    monkeypatch.setattr(atomic, "free_bytes", free)
    target = tmp_path / "out.h5"
    with io.open_matrix_writer(target, None, n_rows=10, unit_ids=[0, 1]) as writer:
        writer.append(np.arange(5) * 0.1, np.zeros((5, 2)))
        writer.append(np.arange(5, 10) * 0.1, np.zeros((5, 2)))
    # Once when the file is created and once before each chunk.
    assert len(seen) == 3
    assert all(os.path.dirname(p) == str(tmp_path) for p in seen)


@pytest.mark.parametrize("ext", FORMATS)
def test_events_onto_a_full_disk_are_refused_before_writing(tmp_path, monkeypatch, ext):
    monkeypatch.setattr(atomic, "free_bytes", lambda path: 1 << 20)
    trains = SpikeTrains([np.arange(100_000) * 1e-3], unit_ids=[0])
    target = tmp_path / f"events.{ext}"
    with pytest.raises(SpikeDataError, match="no space left") as caught:
        io.write_events(target, trains)
    assert str(caught.value).startswith(f"{target}: ")
    assert os.listdir(tmp_path) == []


def test_check_free_space_keeps_a_margin(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_bytes(b"")
    monkeypatch.setattr(atomic, "free_bytes", lambda p: 10 << 20)
    atomic.check_free_space(str(path), 8 << 20, target="out.h5")
    with pytest.raises(SpikeDataError, match=r"^out\.h5: .*9\.5 MiB more, 10 MiB"):
        atomic.check_free_space(str(path), 9.5 * (1 << 20), target="out.h5")


def test_free_space_of_a_pipe_is_not_checked():
    read, write = os.pipe()
    try:
        assert atomic.free_bytes(f"/proc/self/fd/{write}") is None
    finally:
        os.close(read)
        os.close(write)
