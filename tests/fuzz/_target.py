"""What every fuzz target shares: a scratch folder in memory-backed storage,
and the rule that only spikerates' own errors may escape a reader."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings

#: Parts of a multi-file input (a Phy folder) are separated by this line.
SEPARATOR = b"\n--8<--\n"


def scratch_dir() -> str:
    """A private folder for the inputs, in /dev/shm when there is one."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return tempfile.mkdtemp(prefix="spikerates-fuzz-", dir=base)


def write(path: str, data: bytes) -> str:
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def reset(folder: str) -> None:
    """Empty ``folder`` (inputs of the previous run)."""
    for name in os.listdir(folder):
        full = os.path.join(folder, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


def quiet() -> None:
    """Silence warnings: a fuzzer reads broken files on purpose."""
    warnings.simplefilter("ignore")
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
