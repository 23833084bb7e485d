"""Coverage-guided fuzzing of the Phy/Kilosort folder reader (atheris).

    python tests/fuzz/fuzz_phy.py -atheris_runs=100000 -max_len=20000 \
        -rss_limit_mb=1024 -timeout=10 tests/fuzz/corpus/phy

An input holds the folder's files one after the other, separated by the
line ``--8<--``: ``spike_times.npy``, ``spike_clusters.npy``, ``params.py``,
``cluster_group.tsv``, ``cluster_KSLabel.tsv`` (missing parts: no file).
The folder is read with :func:`spikerates.io.read_spikes`; anything but a
:class:`spikerates.errors.SpikeratesError` is a finding.
"""

from __future__ import annotations

import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(__file__))
from _target import SEPARATOR, quiet, reset, scratch_dir, write  # noqa: E402

with atheris.instrument_imports(include=["spikerates"]):
    from spikerates import io
    from spikerates.errors import SpikeratesError

FILES = (
    "spike_times.npy",
    "spike_clusters.npy",
    "params.py",
    "cluster_group.tsv",
    "cluster_KSLabel.tsv",
)
FOLDER = os.path.join(scratch_dir(), "phy")
os.makedirs(FOLDER)


def test_one_input(data: bytes) -> None:
    reset(FOLDER)
    for name, part in zip(FILES, data.split(SEPARATOR), strict=False):
        write(os.path.join(FOLDER, name), part)
    try:
        io.read_spikes(FOLDER)
    except SpikeratesError:
        pass


if __name__ == "__main__":
    quiet()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
