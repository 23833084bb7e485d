"""Exception types that users see.

Each kind of user mistake has one type. The command line turns any of them
into a single line on standard error and exit status 1.
"""

from __future__ import annotations

import os


class SpikeratesError(Exception):
    """Base class of every error spikerates reports to a user."""


class SpikeDataError(SpikeratesError, ValueError):
    """Input data that cannot be read or does not have the expected layout.

    Parameters
    ----------
    message : str
        What was expected and what was found.
    path : str or os.PathLike, optional
        The file (or ``-`` for standard input) the data came from.
    dataset : str, optional
        The dataset, array or column inside the file.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        dataset: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else os.fspath(path)
        self.dataset = dataset
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.path is not None:
            where.append("<stdin>" if self.path == "-" else self.path)
        if self.dataset is not None:
            where.append(self.dataset)
        return ": ".join([*where, self.message])


class ParameterError(SpikeratesError, ValueError):
    """A parameter with a value outside its valid range.

    Parameters
    ----------
    name : str
        The offending parameter, e.g. ``"tau_rc"``.
    message : str
        What was expected, e.g. ``"must be > 0, got -1"``.
    """

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message
        super().__init__(f"{name}: {message}")


class ResourceLimitError(SpikeratesError):
    """Work or output larger than a stated limit (output size, array size...).

    The message names the size found, the limit and how to raise it or
    shrink the work, e.g. ``--max-output-size`` or a coarser ``--dt``.
    """


def format_bytes(n: float) -> str:
    """A size for messages: ``512 bytes``, ``3.5 MiB``, ``87.3 TiB``."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.3g} KiB"
    return f"{int(n)} bytes"
