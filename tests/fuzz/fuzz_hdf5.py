"""Coverage-guided fuzzing of the HDF5 and NWB readers (atheris).

    python tests/fuzz/fuzz_hdf5.py -atheris_runs=100000 -max_len=200000 \
        -rss_limit_mb=1024 -timeout=10 tests/fuzz/corpus/hdf5

Each input is written as ``input.h5`` or ``input.nwb`` (by the parity of
its length) and read with :func:`spikerates.io.read_spikes` (whole, and
lazily as the streamed commands do) and :func:`spikerates.io.read_table`;
anything but a :class:`spikerates.errors.SpikeratesError` is a finding.
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


def test_one_input(data: bytes) -> None:
    path = os.path.join(FOLDER, "input.nwb" if len(data) % 2 else "input.h5")
    write(path, data)
    try:
        dense = io.read_spikes(path, lazy=True)
    except SpikeratesError:
        pass
    else:
        try:
            spikes = getattr(dense, "spikes", None)
            if spikes is not None and getattr(spikes, "shape", (0,))[0]:
                np.asarray(spikes[:1])
        except SpikeratesError:
            pass
        finally:
            close = getattr(dense, "close", None)
            if close is not None:
                close()
    for read in (io.read_spikes, io.read_table):
        try:
            read(path)
        except SpikeratesError:
            pass


if __name__ == "__main__":
    quiet()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
