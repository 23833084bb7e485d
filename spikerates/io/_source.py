"""Where input bytes come from: a file, a folder, or standard input."""

from __future__ import annotations

import io
import os
import stat
import sys
from dataclasses import dataclass, field
from typing import IO

from spikerates.errors import SpikeDataError
from spikerates.io import safety

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
#: Bytes read from the start of an input to recognise its format.
SNIFF_BYTES = 4096


@dataclass
class Source:
    """An input: ``name`` as the user gave it (``-`` for standard input), and
    either a filesystem ``path`` or the ``data`` read from standard input."""

    name: str
    path: str | None = None
    data: bytes | None = None
    _head: bytes | None = field(default=None, repr=False, compare=False)

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

    def head(self, n: int = SNIFF_BYTES) -> bytes:
        """The first ``n`` bytes (empty for a folder)."""
        if self.data is not None:
            return self.data[:n]
        if self.is_dir:
            return b""
        if n > SNIFF_BYTES:
            with self.open_binary() as fh:
                return fh.read(n)
        if self._head is None:
            # Read once: every format's sniffing rule looks at the same bytes.
            with self.open_binary() as fh:
                self._head = fh.read(SNIFF_BYTES)
        return self._head[:n]


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
        if buffer is not None:
            # Bounded, and binary noise (< /dev/zero) refused at once.
            data = safety.read_stdin(buffer)
        else:
            data = stdin.read().encode()
        if not data:
            raise SpikeDataError("standard input is empty", path="-")
        return Source(name, data=data)
    try:
        info = os.stat(name)
    except (FileNotFoundError, NotADirectoryError):
        raise SpikeDataError("no such file or directory", path=name) from None
    except PermissionError:
        raise SpikeDataError("permission denied", path=name) from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpikeDataError(f"cannot read: {reason}", path=name) from None
    if stat.S_ISREG(info.st_mode) and info.st_size == 0:
        raise SpikeDataError("the file is empty", path=name)
    return Source(name, path=name)


def is_hdf5(head: bytes) -> bool:
    """Whether ``head`` starts with the HDF5 signature."""
    return head.startswith(HDF5_SIGNATURE)


def is_zip(head: bytes) -> bool:
    """Whether ``head`` starts with a zip signature (NPZ archives are zips)."""
    return head.startswith(ZIP_SIGNATURES)


def first_line_is_tab_separated(head: bytes) -> bool:
    """Whether the first line of text (after blank and ``#`` lines) holds tabs
    but no commas."""
    for line in head.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        return b"\t" in stripped and b"," not in stripped
    return False
