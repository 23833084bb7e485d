"""Coverage-guided fuzzing of the CSV and TSV readers (atheris).

    python tests/fuzz/fuzz_csv.py -atheris_runs=100000 -max_len=4096 \
        -rss_limit_mb=1024 -timeout=10 tests/fuzz/corpus/csv

Each input is written as ``input.csv`` or ``input.tsv`` (by the parity of
its length) and read with :func:`spikerates.io.read_spikes` (and, for half
of the inputs, :func:`spikerates.io.read_table`); anything but a
:class:`spikerates.errors.SpikeratesError` is a finding.
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


def test_one_input(data: bytes) -> None:
    path = os.path.join(FOLDER, "input.tsv" if len(data) % 2 else "input.csv")
    write(path, data)
    # read_table shares the parsing with read_spikes; half of the inputs
    # takes that path too, so the costly text parser runs less often.
    reads = (io.read_spikes, io.read_table) if len(data) % 4 < 2 else (io.read_spikes,)
    for read in reads:
        try:
            read(path)
        except SpikeratesError:
            pass


if __name__ == "__main__":
    quiet()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
