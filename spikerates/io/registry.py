"""The format registry: one entry per file format.

An entry joins the names of a format (:class:`spikerates.names.FormatSpec`:
name, aliases, extensions) with the code that handles it: a sniffing rule
that recognises its content, a reader, a table reader and its writers. The
public functions of :mod:`spikerates.io` look formats up here instead of
branching on their names.

Reader and writer signatures
----------------------------
``read(src, options)``
    ``src`` a :class:`~spikerates.io._source.Source`, ``options`` a
    :class:`ReadOptions`; returns ``SpikeTrains`` or ``DenseSpikes``.
``read_table(src)``
    Named numeric 1-D columns as float64 arrays.
``write_events(path, trains, *, extra, attrs)``
``write_dense(path, t, spikes, unit_ids, *, name, extra, attrs)``
``write_arrays(path, arrays, *, attrs, csv_columns)``
    Write the complete file ``path`` (a temporary file that then replaces
    the target).
``matrix_backend(path, *, name, n_rows, unit_ids, dtype, attrs)``
    An object with ``write(row, t_chunk, values)`` and ``close()`` that
    streams the rows of a matrix into ``path``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spikerates.errors import ParameterError
from spikerates.io._source import Source
from spikerates.names import FORMAT_ALIASES, FORMAT_SPECS, FormatSpec

__all__ = ["Format", "ReadOptions", "get", "register", "registered"]


@dataclass(frozen=True)
class ReadOptions:
    """What a reader is asked for (see :func:`spikerates.io.read_spikes`).

    Parameters
    ----------
    dataset : str, optional
        HDF5 path or NPZ array name of the spike data, when a file holds several.
    values : {"auto", "counts", "amplitude"}
        Meaning of dense values.
    dt : float, optional
        Time step in seconds of dense input (must agree with ``t``).
    lazy : bool
        Keep an HDF5 dense matrix on disk and read it by row blocks.
    id_column : str, optional
        The column of a units table that names the units (default: the
        rule of :func:`spikerates.io._units.choose_unit_ids`).
    segment : int, optional
        Segment of a multi-segment SpikeInterface sorting.
    """

    dataset: str | None = None
    values: str = "auto"
    dt: float | None = None
    lazy: bool = False
    id_column: str | None = None
    segment: int | None = None


@dataclass(frozen=True)
class Format:
    """A file format: its names (``spec``) and the functions that handle it.

    Any function may be None: the format then cannot do that (``phy`` has no
    writers). See the module docstring for the signatures.
    """

    spec: FormatSpec
    sniff: Callable[[Source], bool] | None = None
    read: Callable[[Source, ReadOptions], Any] | None = None
    read_table: Callable[[Source], dict[str, Any]] | None = None
    write_events: Callable[..., None] | None = None
    write_dense: Callable[..., None] | None = None
    write_arrays: Callable[..., None] | None = None
    matrix_backend: Callable[..., Any] | None = None

    @property
    def name(self) -> str:
        """Canonical name."""
        return self.spec.name

    @property
    def extension(self) -> str:
        """The extension written (``.h5``)."""
        if not self.spec.extensions:
            raise ParameterError("format", f"{self.name} is read only")
        return self.spec.extensions[0]

    def writer(self, kind: str) -> Callable[..., Any]:
        """The writer ``kind`` (``write_events``, ``write_dense``,
        ``write_arrays`` or ``matrix_backend``), or a ParameterError."""
        function = getattr(self, kind)
        if function is None:
            raise ParameterError("format", f"{self.name} can be read but not written")
        return function


_REGISTRY: dict[str, Format] = {}


def register(entry: Format) -> Format:
    """Add (or replace) the entry of a format named in :mod:`spikerates.names`."""
    if entry.spec not in FORMAT_SPECS:
        raise ValueError(f"format {entry.name!r} is not declared in spikerates.names")
    writers = [
        w is not None
        for w in (entry.write_events, entry.write_dense, entry.matrix_backend)
    ]
    if not all(writers) if entry.spec.writable else any(writers):
        raise ValueError(f"format {entry.name!r}: writers disagree with its spec")
    if entry.spec.readable != (entry.read is not None):
        raise ValueError(f"format {entry.name!r}: reader disagrees with its spec")
    _REGISTRY[entry.name] = entry
    return entry


def registered() -> list[Format]:
    """Every registered format, in the order of ``names.FORMAT_SPECS``."""
    order = [spec.name for spec in FORMAT_SPECS]
    return sorted(_REGISTRY.values(), key=lambda f: order.index(f.name))


def get(name: str) -> Format:
    """The entry of a format name or alias (any case, optional leading dot).

    Raises
    ------
    ParameterError
        For a name that is no format.
    """
    key = name.strip().lower().lstrip(".")
    key = FORMAT_ALIASES.get(key, key)
    if key not in _REGISTRY:
        names = ", ".join([*(f.name for f in registered()), *FORMAT_ALIASES])
        raise ParameterError("format", f"unknown format {name!r}; expected {names}")
    return _REGISTRY[key]
