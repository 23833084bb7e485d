"""Variable-length columns whose heap references are damaged.

libhdf5 follows a variable-length value's reference (length, heap
collection address, object index) without bounds: a damaged one makes it
loop in native code or allocate what the reference declares. The heap walk
of :func:`spikerates.io.safety.check_vlen_heap` refuses such a dataset
before it is read, whatever its layout.
"""

from __future__ import annotations

import struct
import zlib

import h5py
import numpy as np
import pytest

from spikerates import io
from spikerates.errors import SpikeDataError
from spikerates.io import safety

LABELS = np.array(["good", "mua", "noise", "good", "good"], dtype=object)

LAYOUTS = {
    "contiguous": {},
    "chunked": {"chunks": (2,)},
    "deflated": {"chunks": (2,), "compression": "gzip"},
}


def units_file(path, **layout) -> None:
    """A Units table whose ``quality`` column is stored with ``layout``."""
    with h5py.File(path, "w") as f:
        units = f.create_group("units")
        units["spike_times"] = np.arange(10) * 0.1
        units["spike_times_index"] = np.array([2, 4, 6, 8, 10])
        quality = units.create_dataset(
            "quality", shape=(5,), dtype=h5py.string_dtype(), **layout
        )
        quality[:] = LABELS


def patch_reference(path, element: int, *, length=None, address=None) -> None:
    """Overwrite fields of the stored reference of ``quality[element]``."""

    def patched(refs: bytes, at: int) -> bytes:
        old_length, old_address, index = struct.unpack_from("<IQI", refs, at)
        new = struct.pack(
            "<IQI",
            old_length if length is None else length,
            old_address if address is None else address,
            index,
        )
        return refs[:at] + new + refs[at + 16 :]

    with h5py.File(path, "r+") as f:
        ds = f["units/quality"]
        if ds.chunks is None:
            offset = ds.id.get_offset()
            f.flush()
            raw_path = f.filename
        else:
            rows = ds.chunks[0]
            start = (element // rows) * rows
            _, raw = ds.id.read_direct_chunk((start,))
            deflated = ds.compression == "gzip"
            refs = zlib.decompress(raw) if deflated else raw
            refs = patched(refs, 16 * (element - start))
            ds.id.write_direct_chunk(
                (start,), zlib.compress(refs) if deflated else refs
            )
            return
    with open(raw_path, "r+b") as fh:
        fh.seek(offset)
        refs = fh.read(16 * 5)
        fh.seek(offset)
        fh.write(patched(refs, 16 * element))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_sound_columns_pass_the_walk(tmp_path, layout):
    path = tmp_path / "u.h5"
    units_file(path, **LAYOUTS[layout])
    with h5py.File(path, "r") as f:
        safety.check_vlen_heap(f["units/quality"], path=str(path))
    trains = io.read_spikes(path)
    assert trains.labels.tolist() == LABELS.tolist()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "damage, why",
    [
        (dict(address=2**40), "beyond the end of the file"),
        (dict(address=8), "no heap collection"),
        (dict(length=2**31), "missing heap object"),
    ],
)
def test_damaged_references_are_refused_before_reading(tmp_path, layout, damage, why):
    path = tmp_path / "u.h5"
    units_file(path, **LAYOUTS[layout])
    patch_reference(path, 3, **damage)
    with pytest.raises(SpikeDataError, match=f"quality: damaged .*{why}"):
        io.read_spikes(path)


def test_a_reference_outside_the_extent_is_not_checked(tmp_path):
    """The padding of an edge chunk is never read, so it may hold anything."""
    path = tmp_path / "u.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("q", shape=(3,), dtype=h5py.string_dtype(), chunks=(2,))
        ds[:] = LABELS[:3]
        _, raw = ds.id.read_direct_chunk((2,))
        garbage = struct.pack("<IQI", 7, 2**40, 1)
        ds.id.write_direct_chunk((2,), raw[:16] + garbage)
    with h5py.File(path, "r") as f:
        safety.check_vlen_heap(f["q"], path=str(path))
        assert f["q"][2] == b"noise"


def test_an_empty_free_space_record_is_refused(tmp_path):
    """A free-space record of size 0 would never move libhdf5's walk on."""
    path = tmp_path / "u.h5"
    units_file(path)
    data = bytearray(path.read_bytes())
    at = data.index(b"GCOL")
    (extent,) = struct.unpack_from("<Q", data, at + 8)
    pos = at + 16
    while True:  # the objects, then the free-space record (object 0)
        obj, _, size = struct.unpack_from("<HHxxxxQ", data, pos)
        if obj == 0:
            break
        pos += 16 + (size + 7) // 8 * 8
    struct.pack_into("<Q", data, pos + 8, 0)
    path.write_bytes(bytes(data))
    with pytest.raises(SpikeDataError, match="empty free space record"):
        io.read_spikes(path)


def test_references_that_repeat_a_large_value_are_refused(tmp_path):
    """Thousands of references to one 60 kB heap object: a 0.2 MB file that
    would read as 300 MB of text."""
    path = tmp_path / "u.h5"
    n = 5000
    with h5py.File(path, "w") as f:
        units = f.create_group("units")
        units["spike_times"] = np.arange(n) * 0.1
        units["spike_times_index"] = np.arange(1, n + 1)
        quality = units.create_dataset("quality", shape=(n,), dtype=h5py.string_dtype())
        quality[0] = "x" * 60_000
        offset = quality.id.get_offset()
    data = bytearray(path.read_bytes())
    first = bytes(data[offset : offset + 16])
    data[offset : offset + 16 * n] = first * n
    path.write_bytes(bytes(data))
    assert path.stat().st_size < 300_000
    with pytest.raises(SpikeDataError, match="variable-length values would take"):
        io.read_spikes(path)
