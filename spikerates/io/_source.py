"""Where input bytes come from: a file, a folder, or standard input."""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from typing import IO

from spikerates.errors import SpikeDataError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass
class Source:
    """An input: ``name`` as the user gave it (``-`` for standard input), and
    either a filesystem ``path`` or the ``data`` read from standard input."""

    name: str
    path: str | None = None
    data: bytes | None = None

    @property
    def is_dir(self) -> bool:
        return self.path is not None and os.path.isdir(self.path)

    def open_binary(self) -> IO[bytes]:
        """A binary file object positioned at the start of the input."""
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise SpikeDataError(
                f"cannot read: {exc.strerror or exc}", path=self.name
            ) from exc

    def target(self) -> str | IO[bytes]:
        """What h5py / numpy / pandas should open: the path, or an in-memory
        buffer holding standard input."""
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return self.path

    def head(self, n: int = 8) -> bytes:
        """The first ``n`` bytes (empty for a folder)."""
        if self.data is not None:
            return self.data[:n]
        if self.is_dir:
            return b""
        with self.open_binary() as fh:
            return fh.read(n)


def open_source(path: str | os.PathLike) -> Source:
    """Resolve ``path`` (``"-"`` reads all of standard input into memory).

    Raises
    ------
    SpikeDataError
        For a missing path, an empty file, or empty standard input.
    """
    name = os.fspath(path)
    if name == "-":
        stdin = sys.stdin
        if stdin is None:
            raise SpikeDataError("there is no standard input", path="-")
        if stdin.isatty():
            raise SpikeDataError(
                "standard input is a terminal; pipe a file in or give a path",
                path="-",
            )
        buffer = getattr(stdin, "buffer", None)
        data = buffer.read() if buffer is not None else stdin.read().encode()
        if not data:
            raise SpikeDataError("standard input is empty", path="-")
        return Source(name, data=data)
    if not os.path.exists(name):
        raise SpikeDataError("no such file or directory", path=name)
    if os.path.isfile(name) and os.path.getsize(name) == 0:
        raise SpikeDataError("the file is empty", path=name)
    return Source(name, path=name)


def sniff(head: bytes) -> str:
    """Format name from the first bytes: HDF5 or zip signature, else text.

    Text whose first line holds tabs but no commas is ``tsv``, other text
    ``csv``.
    """
    if head.startswith(HDF5_SIGNATURE):
        return "hdf5"
    if head.startswith(ZIP_SIGNATURES):
        return "npz"
    for line in head.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        if b"\t" in stripped and b"," not in stripped:
            return "tsv"
        break
    return "csv"
