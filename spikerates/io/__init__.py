"""Reading and writing spike data in every supported format.

Formats (names for ``--from/--to``), one entry each in
:mod:`spikerates.io.registry`, named in :mod:`spikerates.names`:

========  ==========================  =========================================
name      extensions                  layouts
========  ==========================  =========================================
hdf5      .h5 .hdf5 .hdf              dense ``/t``, ``/spikes``; events as a
          (aliases ``h5``, ``hdf``)   Units table ``/units/spike_times``...
nwb       .nwb                        NWB: events as the Units table ``/units``
npz       .npz                        dense ``t``, ``spikes``; events
                                      ``spike_times``, ``spike_times_index``
csv, tsv  .csv, .tsv .tab             dense ``t,<unit>,...``; events ``unit,time``
phy       a folder (read only)        Phy/Kilosort ``spike_times.npy``...
========  ==========================  =========================================

``-`` is standard input or output for every format: binary formats go
through memory (input) or a temporary file (output), and on a pipe the
format is sniffed from the first bytes. Every problem with the data raises
:class:`spikerates.errors.SpikeDataError` naming the file and the dataset or
column. Outputs are written atomically (see :func:`atomic_output`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from spikerates.errors import ParameterError, SpikeDataError

# The format modules register their entries when imported.
from spikerates.io import (  # noqa: F401
    csv,
    hdf5,
    nix,
    npz,
    nwb,
    phy,
    safety,
    spikeinterface,
)
from spikerates.io._source import SNIFF_BYTES, Source, open_source
from spikerates.io.atomic import (
    AtomicFile,
    atomic_output,
    check_free_space,
    is_pipe_error,
    write_failure,
)
from spikerates.io.intervals import read_intervals, read_time_intervals_table
from spikerates.io.registry import Format, ReadOptions, get, registered
from spikerates.names import (
    FORMAT_ALIASES,
    FORMAT_EXTENSIONS,
    FORMAT_NAMES,
    STDOUT_FORMAT,
    VALUE_MODES,
    format_for_extension,
)
from spikerates.spiketrains import (
    DenseSpikes,
    SpikeTrains,
    normalize_unit_ids,
)

__all__ = [
    "FORMATS",
    "FORMAT_ALIASES",
    "FORMAT_EXTENSIONS",
    "STDOUT_FORMAT",
    "MatrixWriter",
    "atomic_output",
    "detect_format",
    "extension_for",
    "open_matrix_writer",
    "read_intervals",
    "read_spikes",
    "read_table",
    "read_time_intervals_table",
    "write_arrays",
    "write_dense",
    "write_events",
]

#: Canonical format names.
FORMATS = FORMAT_NAMES
#: Format of content that no sniffing rule recognises (text).
_CONTENT_FALLBACK = "csv"
#: Format of a folder that no folder format recognises; its reader says what
#: a folder must hold.
_FOLDER_FALLBACK = "phy"


def extension_for(fmt: str) -> str:
    """The file extension written for a format name (``hdf5`` -> ``.h5``,
    ``nwb`` -> ``.nwb``)."""
    entry = get(fmt)
    if not entry.spec.writable:
        raise ParameterError("format", f"{entry.name} is read only")
    return entry.extension


def _sniff(src: Source) -> Format:
    """The format recognised by the content of ``src``."""
    for entry in registered():
        if entry.spec.folder != src.is_dir or entry.sniff is None:
            continue
        if entry.sniff(src):
            return entry
    return get(_FOLDER_FALLBACK if src.is_dir else _CONTENT_FALLBACK)


def _writable_extensions() -> str:
    exts = [e.extension for e in registered() if e.spec.writable]
    return ", ".join(exts[:-1]) + " or " + exts[-1]


def detect_format(
    path: str | os.PathLike,
    explicit: str | None = None,
    *,
    for_writing: bool = False,
    head: bytes | None = None,
) -> str:
    """The format of ``path``.

    Parameters
    ----------
    path : str or PathLike
        File, folder (Phy), or ``"-"`` for standard input/output.
    explicit : str, optional
        A format name or alias given by the user (``--from``/``--to``); wins.
    for_writing : bool
        Decide for an output: by extension; ``"-"`` defaults to ``csv``.
    head : bytes, optional
        First bytes of the input, to sniff (HDF5 signature, zip signature,
        else text) when the extension does not tell; required for ``"-"``
        when reading without ``explicit``.

    Returns
    -------
    str
        One of :data:`FORMATS`.
    """
    name = os.fspath(path)
    if explicit is not None:
        entry = get(explicit)
        if for_writing and not entry.spec.writable:
            raise ParameterError("format", f"{entry.name} can be read but not written")
        return entry.name
    if name == "-":
        if for_writing:
            return STDOUT_FORMAT
        if head is None:
            raise SpikeDataError(
                "cannot tell the format of standard input; give --from", path=name
            )
        return _sniff(Source(name, data=head)).name
    if for_writing:
        return _output_format(name)
    if head is not None:
        src = Source(name, path=name, _head=head[:SNIFF_BYTES])
    elif os.path.isdir(name) or format_for_extension(_extension(name)):
        src = Source(name, path=name)
    else:
        src = open_source(name)
    return _input_format(src, None).name


def _extension(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _output_format(name: str) -> str:
    """The format of the output file ``name``, by its extension."""
    if os.path.isdir(name):
        raise SpikeDataError("is a folder; give an output file name", path=name)
    ext = _extension(name)
    fmt = format_for_extension(ext) if ext else None
    if fmt is None or not get(fmt).spec.writable:
        raise SpikeDataError(
            "cannot tell the output format from the extension "
            f"{ext or '(none)'!r}; use {_writable_extensions()}, or give --to",
            path=name,
        )
    return fmt


#: Files that mark a folder as a Zarr store.
_ZARR_MARKERS = (".zgroup", ".zattrs", "zarr.json")


def _refuse_zarr(src: Source) -> None:
    """One clear line for an NWB Zarr store, which spikerates does not read."""
    if not src.is_dir or src.path is None:
        return
    if any(os.path.exists(os.path.join(src.path, m)) for m in _ZARR_MARKERS):
        raise SpikeDataError(
            "is a Zarr store (NWB Zarr), which spikerates does not read; convert "
            "it to an NWB HDF5 file with hdmf-zarr: NWBHDF5IO('out.nwb', 'w')"
            ".export(src_io=NWBZarrIO(path, 'r')), then read out.nwb",
            path=src.name,
        )


def _input_format(src: Source, explicit: str | None) -> Format:
    """The format of the input ``src``: ``explicit`` if given, else by the
    extension of a file, else by content (folders by what they hold)."""
    if explicit is not None:
        return get(explicit)
    if src.data is None and not src.is_dir:
        fmt = format_for_extension(_extension(src.name))
        if fmt is not None:
            return get(fmt)
    return _sniff(src)


def read_spikes(
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    dataset: str | None = None,
    values: str = "auto",
    dt: float | None = None,
    lazy: bool = False,
    id_column: str | None = None,
    segment: int | None = None,
    allow_external_data: bool = False,
) -> SpikeTrains | DenseSpikes:
    """Read spikes from a file, folder or standard input.

    Parameters
    ----------
    path : str or PathLike
        Input path, a Phy/Kilosort folder, or ``"-"`` for standard input.
    fmt : str, optional
        Format name (``--from``); default from the extension or content.
    dataset : str, optional
        HDF5 path of a group (Units table or group with ``t``/``spikes``) or
        dataset; NPZ array name. Needed when a file holds several.
    values : {"auto", "counts", "amplitude"}
        Meaning of dense values; ignored for events.
    dt : float, optional
        Time step in seconds; with dense input it must agree with ``t``
        (rtol 1e-6). Ignored for events (they are binned later).
    lazy : bool
        For HDF5 dense input, keep the file open and return the h5py Dataset
        as ``DenseSpikes.spikes`` (read by row blocks); call ``close()``.
    id_column : str, optional
        The column of the units table whose values name the units. Default:
        ``unit_name`` (SpikeInterface, neuroconv) or ``_name`` (neo) when
        present with unique values, else the table's row ``id``.
    segment : int, optional
        Segment to read from a multi-segment SpikeInterface sorting.
    allow_external_data : bool
        Follow HDF5 external links, external storage and virtual datasets,
        which read other files than ``path``; refused by default (see
        :mod:`spikerates.io.safety`).

    Returns
    -------
    SpikeTrains or DenseSpikes
        Events (per-unit sorted times, seconds) or the dense layout. Events
        carry ``info`` with ``format``, ``layout``, ``table`` (where the
        units came from), ``id_column`` (the column naming them), ``choice``
        (when the file held several spike tables: which one was used) and
        the session metadata of NWB files.

    Raises
    ------
    SpikeDataError
        For a missing, unreadable or malformed input, naming the file and
        the dataset or column.
    """
    if values not in VALUE_MODES:
        raise ParameterError(
            "values", f"must be one of {', '.join(VALUE_MODES)}, got {values!r}"
        )
    src = open_source(path)
    _refuse_zarr(src)
    entry = _input_format(src, fmt)
    if src.is_dir and not entry.spec.folder:
        raise SpikeDataError(
            f"is a folder, not a {entry.name} file (folders are read as "
            "Phy/Kilosort output)",
            path=src.name,
        )
    assert entry.read is not None  # every format is readable
    options = ReadOptions(
        dataset=dataset,
        values=values,
        dt=dt,
        lazy=lazy,
        id_column=id_column,
        segment=segment,
    )
    with safety.allow_external_data(allow_external_data):
        return entry.read(src, options)


def read_table(
    path: str | os.PathLike, fmt: str | None = None
) -> dict[str, np.ndarray]:
    """Named 1-D numeric columns of a small table (``--neurons``, ``--input``).

    CSV/TSV: every column by header name (all must be numeric); NPZ: the
    numeric 1-D arrays; HDF5: the numeric 1-D datasets at the root.

    Returns
    -------
    dict of str to ndarray
        float64 arrays.
    """
    src = open_source(path)
    entry = None if src.is_dir else _input_format(src, fmt)
    if entry is None or entry.read_table is None:
        raise SpikeDataError(
            "expected a table file (CSV, TSV, NPZ or HDF5), not a folder",
            path=src.name,
        )
    table = entry.read_table(src)
    if not table:
        raise SpikeDataError("holds no numeric columns", path=src.name)
    return table


def _write(target: str, fmt: str | None, kind: str, *args: Any, **kwargs: Any) -> None:
    """Run the writer ``kind`` of the format of ``target`` on a temporary
    file that replaces ``target`` once it is complete."""
    entry = get(detect_format(target, fmt, for_writing=True))
    writer = entry.writer(kind)
    with atomic_output(target, as_path=True, stream=not entry.spec.binary) as tmp:
        if target != "-":
            scale = 1 if entry.spec.binary else 3  # about 24 characters a value
            check_free_space(tmp, scale * _payload_bytes((args, kwargs)), target=target)
        try:
            writer(tmp, *args, **kwargs)
        except OSError as exc:
            if is_pipe_error(exc):
                raise
            raise write_failure(exc, target) from None


def _payload_bytes(value: Any) -> int:
    """The bytes of the arrays in ``value`` (nested in lists and mappings)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, SpikeTrains):
        return 8 * int(value.n_spikes) + 16 * int(value.n_units)
    if isinstance(value, Mapping):
        return sum(_payload_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_payload_bytes(v) for v in value)
    return 0


def write_events(
    target: str | os.PathLike,
    trains: SpikeTrains,
    fmt: str | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write spike times per unit (the events layout), atomically.

    Parameters
    ----------
    target : str or PathLike
        Output path or ``"-"``.
    trains : SpikeTrains
    fmt : str, optional
        Format name; default from the extension (``csv`` for ``"-"``).
    extra : dict of str to ndarray, optional
        More arrays to store (NPZ, HDF5 root); not written to CSV.
    attrs : dict, optional
        HDF5 root attributes (the spikerates version is added); not written
        to NPZ or CSV.
    """
    _write(os.fspath(target), fmt, "write_events", trains, extra=extra, attrs=attrs)


def _dense_arrays(
    t: Any, spikes: Any, unit_ids: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.asarray(t)
    spikes = np.asarray(spikes)
    if spikes.ndim == 1:
        spikes = spikes.reshape(-1, 1)
    if t.ndim != 1 or spikes.ndim != 2 or spikes.shape[0] != t.shape[0]:
        raise ValueError(
            f"t {t.shape} and spikes {spikes.shape} disagree; expected (M,) and (M, N)"
        )
    ids = normalize_unit_ids(unit_ids, spikes.shape[1])
    if ids.shape != (spikes.shape[1],):
        raise ValueError(f"{ids.size} unit ids for {spikes.shape[1]} columns")
    return t, spikes, ids


def write_dense(
    target: str | os.PathLike,
    t: Any,
    spikes: Any,
    unit_ids: Any = None,
    fmt: str | None = None,
    *,
    name: str = "spikes",
    extra: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write the dense layout (``t`` (M,), ``<name>`` (M, N), ``unit_ids``).

    Parameters
    ----------
    target : str or PathLike
        Output path or ``"-"``.
    t : ndarray, shape (M,)
        Times in seconds.
    spikes : ndarray, shape (M, N)
        Values as given (dtype kept); e.g. spikes or rates in Hz.
    unit_ids : ndarray, shape (N,), optional
        Default ``0..N-1``.
    fmt : str, optional
        Format name; default from the extension (``csv`` for ``"-"``).
    name : str
        Name of the matrix (``spikes``, ``rates``); CSV ignores it.
    extra, attrs
        As in :func:`write_events`; HDF5 attributes go on the file and on the
        matrix dataset.
    """
    t, spikes, ids = _dense_arrays(t, spikes, unit_ids)
    _write(
        os.fspath(target),
        fmt,
        "write_dense",
        t,
        spikes,
        ids,
        name=name,
        extra=extra,
        attrs=attrs,
    )


def write_arrays(
    target: str | os.PathLike,
    arrays: Mapping[str, Any],
    fmt: str | None = None,
    *,
    attrs: Mapping[str, Any] | None = None,
    csv_columns: Mapping[str, Any] | None = None,
) -> None:
    """Write named arrays: NPZ entries or HDF5 root datasets (``attrs`` on the
    HDF5 root); for CSV/TSV the 1-D ``csv_columns`` (default: ``arrays``, which
    must then all be 1-D of one length)."""
    _write(
        os.fspath(target),
        fmt,
        "write_arrays",
        arrays,
        attrs=attrs,
        columns=csv_columns,
    )


#: Bytes a streamed writer may hold in memory before they reach the disk
#: (the HDF5 chunk cache).
_CACHED_BYTES = 8 << 20


class MatrixWriter:
    """Streams the rows of a (n_rows, N) matrix and its times to a file.

    Use as a context manager (or call :meth:`close` / :meth:`abort`): rows
    go to a temporary file beside the target, which replaces the target on a
    clean exit and is removed on an exception. Memory use does not grow with
    ``n_rows``.

    Layouts: HDF5 ``/t`` (n_rows,), ``/<name>`` (n_rows, N) chunked (about
    1024 rows per chunk), ``/unit_ids``, with ``attrs`` (plus
    ``spikerates_version``) on the file and on ``/<name>``; NPZ ``t``,
    ``<name>``, ``unit_ids``; CSV/TSV ``t,<unit>,...`` rows.
    """

    def __init__(
        self,
        target: str | os.PathLike,
        fmt: str | None,
        *,
        name: str = "rates",
        n_rows: int,
        unit_ids: Any,
        dtype: Any = np.float64,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.target = os.fspath(target)
        self.fmt = detect_format(self.target, fmt, for_writing=True)
        self._backend_factory = get(self.fmt).writer("matrix_backend")
        self._stream = not get(self.fmt).spec.binary
        self.name = name
        self.n_rows = int(n_rows)
        if self.n_rows < 0:
            raise ValueError(f"n_rows must be >= 0, got {n_rows}")
        self.unit_ids = normalize_unit_ids(unit_ids)
        self.dtype = np.dtype(dtype)
        self.attrs = dict(attrs or {})
        self.rows_written = 0
        self._out: AtomicFile | None = None
        self._backend: Any = None
        self._closed = False

    @property
    def n_units(self) -> int:
        """Number of columns N."""
        return int(self.unit_ids.size)

    def _row_bytes(self) -> int:
        """About how many bytes one row takes in the file (its time too)."""
        if self._stream:  # text: about 25 characters per value
            return 25 * (self.n_units + 1)
        return self.n_units * self.dtype.itemsize + 8

    def open(self) -> MatrixWriter:
        """Create the temporary file (done by ``with`` or the first append)."""
        if self._closed:
            raise ValueError("the writer is closed")
        if self._backend is not None:
            return self
        self._out = AtomicFile(self.target, stream=self._stream)
        try:
            self._out.check_space(self.n_rows * self._row_bytes())
        except BaseException:
            self._out.discard()
            self._closed = True
            raise
        kwargs = {
            "name": self.name,
            "n_rows": self.n_rows,
            "unit_ids": self.unit_ids,
            "dtype": self.dtype,
            "attrs": self.attrs,
        }
        try:
            with self._writing():
                self._backend = self._backend_factory(self._out.path, **kwargs)
        except BaseException:
            self._out.discard()
            self._closed = True
            raise
        return self

    @contextlib.contextmanager
    def _writing(self) -> Any:
        """Turn a failed write into one line naming the output."""
        try:
            yield
        except OSError as exc:
            if is_pipe_error(exc):
                raise
            raise write_failure(exc, self.target) from None

    def append(self, t_chunk: Any, values: Any) -> None:
        """Append rows.

        Parameters
        ----------
        t_chunk : array_like, shape (L,)
            Times of the rows in seconds.
        values : array_like, shape (L, N)
            Row values (cast to the writer's dtype).
        """
        self.open()
        t_chunk = np.asarray(t_chunk, dtype=np.float64).reshape(-1)
        values = np.asarray(values)
        if values.ndim != 2 or values.shape != (t_chunk.size, self.n_units):
            raise ValueError(
                f"values of shape {values.shape} do not match {t_chunk.size} times "
                f"and {self.n_units} units"
            )
        if self.rows_written + t_chunk.size > self.n_rows:
            raise ValueError(
                f"{self.rows_written + t_chunk.size} rows appended; the writer was "
                f"opened for {self.n_rows}"
            )
        assert self._out is not None
        # What is still to come, and what may still sit in a write cache.
        row_bytes = self._row_bytes()
        self._out.check_space(
            (self.n_rows - self.rows_written) * row_bytes
            + min(self.rows_written * row_bytes, _CACHED_BYTES)
        )
        with self._writing():
            self._backend.write(
                self.rows_written, t_chunk, np.asarray(values, dtype=self.dtype)
            )
        self.rows_written += t_chunk.size

    def close(self) -> None:
        """Finish the file and put it in place (or on standard output)."""
        if self._closed:
            return
        self.open()
        if self.rows_written != self.n_rows:
            self.abort()
            raise ValueError(
                f"{self.rows_written} rows written of the {self.n_rows} announced; "
                "no output written"
            )
        try:
            with self._writing():
                self._backend.close()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        assert self._out is not None
        self._out.commit()

    def abort(self) -> None:
        """Drop everything written; the target is left untouched."""
        self._closed = True
        try:
            # The file is discarded, so an error while closing it is moot.
            with contextlib.suppress(Exception):
                if self._backend is not None:
                    self._backend.close()
        finally:
            if self._out is not None:
                self._out.discard()

    def __enter__(self) -> MatrixWriter:
        return self.open()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def open_matrix_writer(
    target: str | os.PathLike,
    fmt: str | None,
    *,
    name: str = "rates",
    n_rows: int,
    unit_ids: Any,
    dtype: Any = np.float64,
    attrs: Mapping[str, Any] | None = None,
) -> MatrixWriter:
    """A :class:`MatrixWriter` for ``target`` (``"-"`` = standard output).

    Parameters
    ----------
    target : str or PathLike
    fmt : str or None
        Format name; None decides from the extension (``csv`` for ``"-"``).
    name : str
        Name of the matrix dataset/array (``rates``).
    n_rows : int
        Number of rows M that will be appended.
    unit_ids : array_like, shape (N,)
    dtype : numpy dtype
        Stored dtype of the matrix (float64 or float32).
    attrs : dict, optional
        HDF5 attributes (estimator, parameters, dt, units, source...).
    """
    return MatrixWriter(
        target,
        fmt,
        name=name,
        n_rows=n_rows,
        unit_ids=unit_ids,
        dtype=dtype,
        attrs=attrs,
    )
