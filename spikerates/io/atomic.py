"""Atomic output: a file appears complete or not at all.

Data is written to a hidden temporary file beside the target and renamed onto
it with :func:`os.replace` once everything succeeded; on any failure the
temporary file is removed. For standard output (``-``) the temporary file
lives in the system's temporary directory and its bytes are copied to
``sys.stdout.buffer`` only after success, so a failed run prints nothing --
except for text formats written with ``stream=True`` to a pipe or a
terminal, which go straight there as they are produced (a failed run then
leaves a truncated table, and its exit status says so).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from spikerates.errors import SpikeDataError

__all__ = [
    "AtomicFile",
    "atomic_output",
    "check_free_space",
    "copy_to_stdout",
    "write_failure",
]

_COPY_BYTES = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_path(target: str) -> str:
    """Create an empty hidden temporary file beside ``target`` (in the
    system's temporary folder for ``"-"``); return its path.

    Raises
    ------
    SpikeDataError
        Naming ``target`` when its folder is missing or not writable.
    """
    if target == "-":
        directory, base = None, "stdout"
    else:
        directory = os.path.dirname(os.path.abspath(target))
        base = os.path.basename(target)
    # Keep the target's suffix last, for writers that pick a format by it.
    suffix = os.path.splitext(base)[1]
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{base}.", suffix=f".tmp{suffix}", dir=directory
        )
    except FileNotFoundError:
        raise SpikeDataError(
            f"cannot write: the folder {directory} does not exist", path=target
        ) from None
    except PermissionError:
        raise SpikeDataError(
            f"cannot write: permission denied in the folder {directory}", path=target
        ) from None
    except OSError as exc:
        raise SpikeDataError(
            f"cannot write: {exc.strerror or exc}", path=target
        ) from None
    os.close(fd)
    return tmp


def _stdout_pipe() -> str | None:
    """A path writing straight to standard output when that is a pipe or a
    terminal, else None (a regular file could be clobbered by reopening it,
    a captured stream has no file)."""
    try:
        fd = sys.stdout.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):
        return None
    path = f"/dev/fd/{fd}"
    if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)) or not os.path.exists(path):
        return None
    return path


def copy_to_stdout(path: str) -> None:
    """Copy the bytes of ``path`` to standard output."""
    sys.stdout.flush()
    out = getattr(sys.stdout, "buffer", None)
    with open(path, "rb") as src:
        if out is not None:
            shutil.copyfileobj(src, out, _COPY_BYTES)
            out.flush()
        else:
            # A text-only stream (e.g. a captured stdout) still gets the data.
            while block := src.read(_COPY_BYTES):
                sys.stdout.write(block.decode("utf-8", errors="surrogateescape"))
            sys.stdout.flush()


#: Room kept free beyond what an output still needs (its metadata, rounding).
FREE_SPACE_MARGIN = 1 << 20


def free_bytes(path: str) -> int | None:
    """Bytes that may still be written on the file system holding ``path``
    (None when unknown or when ``path`` is not a regular file)."""
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        vfs = os.statvfs(path)
    except (OSError, AttributeError):
        return None
    root = getattr(os, "geteuid", lambda: -1)() == 0
    return int((vfs.f_bfree if root else vfs.f_bavail) * vfs.f_frsize)


def check_free_space(path: str, n_bytes: float, *, target: str) -> None:
    """Refuse to write ``n_bytes`` more into ``path`` when its file system
    has less room (plus a margin).

    Checked before an output is written and again while it is streamed, so a
    full disk ends the run with one line instead of a failed write deep in a
    library (which libhdf5 does not survive).

    Raises
    ------
    SpikeDataError
        Naming ``target``, the bytes still needed and the bytes free.
    """
    if n_bytes <= 0:
        return
    free = free_bytes(path)
    if free is None:
        return
    if n_bytes * 1.01 + FREE_SPACE_MARGIN > free:
        from spikerates.errors import format_bytes

        raise SpikeDataError(
            f"cannot write: no space left on the device (the output needs about "
            f"{format_bytes(n_bytes)} more, {format_bytes(free)} is free)",
            path=target,
        )


def write_failure(exc: OSError, target: str) -> SpikeDataError:
    """The one line for an output that could not be written: the system's
    reason (also when a library wrapped it in a long message) and the
    output's path."""
    import re

    code = exc.errno
    if code is None:
        found = re.search(r"errno = (\d+)", str(exc))
        code = int(found.group(1)) if found else None
    reason = os.strerror(code) if code else (exc.strerror or str(exc))
    return SpikeDataError(f"cannot write: {reason}", path=target)


def is_pipe_error(exc: BaseException) -> bool:
    """A write to a reader that went away (left to the caller to handle)."""
    import errno

    return isinstance(exc, BrokenPipeError) or (
        isinstance(exc, OSError) and exc.errno == errno.EPIPE
    )


class AtomicFile:
    """A temporary file for ``target``: :meth:`commit` puts it in place,
    :meth:`discard` removes it.

    Parameters
    ----------
    target : str
        Output path, or ``"-"`` for standard output.
    stream : bool
        For ``"-"``: when standard output is a pipe or a terminal, write
        straight to it (:attr:`path` then names it) instead of a temporary
        file; for text formats.
    """

    def __init__(self, target: str, *, stream: bool = False) -> None:
        self.target = target
        self._done = False
        self.streaming = False
        pipe = _stdout_pipe() if target == "-" and stream else None
        if pipe is not None:
            sys.stdout.flush()
            self.path = pipe
            self.streaming = True
        else:
            self.path = temp_path(target)

    def commit(self) -> None:
        """Rename the temporary file onto the target (or copy it to stdout)."""
        if self._done:
            return
        self._done = True
        if self.streaming:
            return
        if self.target == "-":
            try:
                copy_to_stdout(self.path)
            finally:
                _discard(self.path)
            return
        # mkstemp creates files readable by the owner only; give the output
        # the permissions any newly created file would have.
        try:
            os.chmod(self.path, 0o666 & ~_umask())
            os.replace(self.path, self.target)
        except OSError as exc:
            _discard(self.path)
            raise SpikeDataError(
                f"cannot write: {exc.strerror or exc}", path=self.target
            ) from exc

    def check_space(self, n_bytes: float) -> None:
        """Refuse to go on when ``n_bytes`` more would not fit on the disk
        (see :func:`check_free_space`); nothing to check for a pipe."""
        if not self.streaming:
            check_free_space(self.path, n_bytes, target=self.target)

    def discard(self) -> None:
        """Remove the temporary file; the target is left untouched."""
        self._done = True
        if not self.streaming:
            _discard(self.path)


def _discard(tmp: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


@contextlib.contextmanager
def atomic_output(
    target: str | os.PathLike,
    binary: bool = True,
    *,
    as_path: bool = False,
    stream: bool = False,
) -> Iterator[Any]:
    """Write ``target`` atomically.

    Parameters
    ----------
    target : str or PathLike
        Output path, or ``"-"`` for standard output.
    binary : bool
        Open the temporary file in binary (``"wb"``) or text mode (``"w"``,
        UTF-8, newline ``"\\n"``). Ignored with ``as_path``.
    as_path : bool
        Yield the temporary file's path (it exists, empty, and ends with the
        target's suffix) instead of an open file, for writers that open files
        themselves (h5py, matplotlib).
    stream : bool
        Text written to ``"-"`` goes straight to a pipe or terminal (see
        :class:`AtomicFile`).

    Yields
    ------
    file object or str
        Where to write. On a clean exit the data replaces ``target`` (or is
        copied to standard output); on an exception the temporary file is
        removed and the exception propagates.
    """
    out = AtomicFile(os.fspath(target), stream=stream)
    try:
        if as_path:
            yield out.path
        else:
            mode = "wb" if binary else "w"
            kwargs: dict[str, Any] = (
                {} if binary else {"encoding": "utf-8", "newline": "\n"}
            )
            fh: IO[Any]
            with open(out.path, mode, **kwargs) as fh:
                yield fh
        out.commit()
    except BaseException:
        out.discard()
        raise
