"""Coverage-guided fuzzing of the NPZ reader (atheris).

    python tests/fuzz/fuzz_npz.py -atheris_runs=100000 -max_len=200000 \
        -rss_limit_mb=1024 -timeout=10 tests/fuzz/corpus/npz

Each input is written as ``input.npz`` and read with
:func:`spikerates.io.read_spikes` or (odd lengths)
:func:`spikerates.io.read_table`;
anything but a :class:`spikerates.errors.SpikeratesError` is a finding.
"""

from __future__ import annotations

import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(__file__))
from _target import quiet, scratch_dir, write  # noqa: E402

with atheris.instrument_imports(include=["spikerates"]):
    from spikerates import io
    from spikerates.errors import SpikeratesError

FOLDER = scratch_dir()
PATH = os.path.join(FOLDER, "input.npz")


def test_one_input(data: bytes) -> None:
    write(PATH, data)
    read = io.read_table if len(data) % 2 else io.read_spikes
    try:
        read(PATH)
    except SpikeratesError:
        pass


if __name__ == "__main__":
    quiet()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
