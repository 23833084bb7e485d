"""Coverage-guided fuzzing of the HDF5 and NWB readers (atheris).

    python tests/fuzz/fuzz_hdf5.py -atheris_runs=100000 -max_len=200000 \
        -rss_limit_mb=1024 -timeout=10 tests/fuzz/corpus/hdf5

Each input is written as ``input.h5`` or ``input.nwb`` (by the parity of
its length) and read one of three ways (by its length modulo 3):
:func:`spikerates.io.read_spikes` whole, lazily as the streamed commands do,
or :func:`spikerates.io.read_table`; anything but a
:class:`spikerates.errors.SpikeratesError` is a finding.
"""

from __future__ import annotations

import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(__file__))
from _target import quiet, scratch_dir, write  # noqa: E402

with atheris.instrument_imports(include=["spikerates"]):
    import numpy as np

    from spikerates import io
    from spikerates.errors import SpikeratesError

FOLDER = scratch_dir()


def _read_lazily(path: str) -> None:
    dense = io.read_spikes(path, lazy=True)
    try:
        spikes = getattr(dense, "spikes", None)
        if spikes is not None and getattr(spikes, "shape", (0,))[0]:
            np.asarray(spikes[:1])
    finally:
        close = getattr(dense, "close", None)
        if close is not None:
            close()


#: One way of reading per input, chosen by its length (each opens the file).
READS = (io.read_spikes, _read_lazily, io.read_table)


def test_one_input(data: bytes) -> None:
    path = os.path.join(FOLDER, "input.nwb" if len(data) % 2 else "input.h5")
    write(path, data)
    try:
        READS[len(data) % 3](path)
    except SpikeratesError:
        pass


if __name__ == "__main__":
    quiet()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
