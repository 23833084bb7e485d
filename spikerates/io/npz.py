"""NPZ archives: dense (``t``, ``spikes``, ``unit_ids``) and events
(``spike_times``, ``spike_times_index``, ``unit_ids``) layouts."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from spikerates import __version__
from spikerates.errors import SpikeDataError
from spikerates.io import safety
from spikerates.io._source import Source, is_zip
from spikerates.io._units import flat_trains
from spikerates.io.registry import Format, ReadOptions, register
from spikerates.names import format_spec
from spikerates.spiketrains import (
    DenseSpikes,
    SpikeTrains,
    normalize_unit_ids,
    ragged_to_trains,
    trains_to_ragged,
)

#: Entry holding the provenance (estimator, parameters, version) as JSON text.
ATTRS_ENTRY = "attrs"
#: Names of a scalar sample rate in Hz beside flat spike arrays.
SAMPLE_RATE_NAMES = ("sample_rate", "sampling_frequency", "sampling_rate", "fs")

_READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
)


def open_archive(src: Source) -> _Archive:
    """Open an input NPZ archive (the one place readers do)."""
    return _Archive(src)


class _Archive:
    """An open NPZ archive whose read errors name the file and array."""

    def __init__(self, src: Source) -> None:
        self.src = src
        # Member by member within the resource policy, never unpickling.
        self.npz = safety.open_npz(src.target(), name=src.name)
        self.names = list(self.npz.files)

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.npz[name]
        except SpikeDataError:
            raise
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise SpikeDataError(
                    "holds Python objects (pickled), which are not read; store "
                    "numbers or text",
                    path=self.src.name,
                    dataset=name,
                ) from exc
            raise SpikeDataError(
                f"cannot read ({exc})", path=self.src.name, dataset=name
            ) from exc
        except _READ_ERRORS as exc:
            raise SpikeDataError(
                f"cannot read ({exc or type(exc).__name__}); the archive may be "
                "truncated",
                path=self.src.name,
                dataset=name,
            ) from exc

    def error(self, message: str, dataset: str | None = None) -> SpikeDataError:
        return SpikeDataError(message, path=self.src.name, dataset=dataset)

    def close(self) -> None:
        self.npz.close()


def _scalar(archive: _Archive, name: str) -> float | None:
    if name not in archive:
        return None
    value = np.asarray(archive[name])
    if value.size != 1 or value.dtype.kind not in "iuf":
        raise archive.error(f"expected one number, got shape {value.shape}", name)
    return float(value.ravel()[0])


def _ids(archive: _Archive, name: str) -> np.ndarray | None:
    if name not in archive:
        return None
    raw = archive[name]
    if raw.ndim != 1:
        raise archive.error(f"expected a 1-D array, got shape {raw.shape}", name)
    return normalize_unit_ids(raw)


def _read_events(archive: _Archive, times_name: str) -> SpikeTrains:
    index_name = f"{times_name}_index"
    if index_name not in archive:
        raise archive.error(
            "missing; the events layout needs the end offset of each unit's "
            f"spikes beside {times_name}",
            index_name,
        )
    flat, index = archive[times_name], archive[index_name]
    safety.check_ragged(flat, index, path=archive.src.name, dataset=times_name)
    trains = ragged_to_trains(flat, index, source=archive.src.name, dataset=times_name)
    unit_ids = _ids(archive, "unit_ids")
    if unit_ids is not None and unit_ids.size != len(trains):
        raise archive.error(
            f"{unit_ids.size} ids for {len(trains)} units in {index_name}; "
            "expected one id per unit",
            "unit_ids",
        )
    labels = _ids(archive, "labels")
    label_column = _text(archive, "label_column")
    obs = None
    if "obs_intervals" in archive and "obs_intervals_index" in archive:
        flat = np.asarray(archive["obs_intervals"], dtype=np.float64).reshape(-1, 2)
        ends = np.asarray(archive["obs_intervals_index"]).astype(np.int64)
        bounds = np.r_[0, ends]
        obs = [flat[bounds[i] : bounds[i + 1]] for i in range(ends.size)]
    return SpikeTrains(
        trains,
        unit_ids=unit_ids,
        t_start=_scalar(archive, "t_start"),
        t_stop=_scalar(archive, "t_stop"),
        labels=None if labels is None else labels.astype(str),
        source=archive.src.name,
        obs_intervals=obs,
        label_column=label_column,
        info=_info("events", times_name, "unit_ids" if unit_ids is not None else ""),
    )


def _info(layout: str, table: str, id_column: str) -> dict[str, Any]:
    return {"format": "npz", "layout": layout, "table": table, "id_column": id_column}


def _text(archive: _Archive, name: str) -> str | None:
    if name not in archive:
        return None
    value = np.asarray(archive[name])
    if value.size != 1 or value.dtype.kind not in "US":
        raise archive.error(f"expected one text value, got {value.dtype}", name)
    text = value.ravel()[0]
    return text.decode("utf-8") if isinstance(text, bytes) else str(text)


def _read_flat(archive: _Archive) -> SpikeTrains:
    """Flat ``spike_times`` with ``spike_clusters`` (seconds, or samples with a
    sample rate)."""
    rate = None
    for name in SAMPLE_RATE_NAMES:
        rate = _scalar(archive, name)
        if rate is not None:
            break
    ids, trains = flat_trains(
        archive["spike_times"],
        archive["spike_clusters"],
        sample_rate=rate,
        source=archive.src.name,
        times_name="spike_times",
        clusters_name="spike_clusters",
    )
    return SpikeTrains(
        trains,
        unit_ids=ids,
        source=archive.src.name,
        info=_info("flat", "spike_times", "spike_clusters"),
    )


def _read_spikeinterface(archive: _Archive, segment: int | None) -> SpikeTrains:
    from spikerates.io.spikeinterface import read_single_npz

    unit_ids, trains, info = read_single_npz(
        archive, archive.names, archive.src.name, segment
    )
    return SpikeTrains(trains, unit_ids=unit_ids, source=archive.src.name, info=info)


def _read_tsgroup(archive: _Archive) -> SpikeTrains:
    """pynapple's ``TsGroup.save``: ``t`` (s), ``index`` (the key of each
    spike), ``keys``, and the time support ``start``/``end``. Its pickled
    ``_metadata`` is not read."""
    keys = _ids(archive, "keys")
    assert keys is not None
    times = np.asarray(archive["t"])
    index = normalize_unit_ids(archive["index"])
    if times.ndim != 1 or times.shape != index.shape:
        raise archive.error(
            f"expected one key in index per time in t, got {index.shape} and "
            f"{times.shape}",
            "index",
        )
    lookup = {str(k): i for i, k in enumerate(keys.tolist())}
    try:
        unit_of_spike = np.array([lookup[str(v)] for v in index.tolist()], np.int64)
    except KeyError as exc:
        raise archive.error(f"key {exc.args[0]} is not one of keys", "index") from None
    seconds = times.astype(np.float64)
    order = np.lexsort((seconds, unit_of_spike))
    counts = np.bincount(unit_of_spike, minlength=keys.size)
    trains = list(np.split(seconds[order], np.cumsum(counts)[:-1]))
    obs = None
    start, end = archive["start"] if "start" in archive else None, None
    if start is not None and "end" in archive:
        end = archive["end"]
        support = np.column_stack(
            [np.asarray(start, float).ravel(), np.asarray(end, float).ravel()]
        )
        obs = [support] * keys.size if support.size else None
    t_start = float(obs[0][:, 0].min()) if obs else None
    t_stop = float(obs[0][:, 1].max()) if obs else None
    return SpikeTrains(
        trains,
        unit_ids=keys,
        t_start=t_start,
        t_stop=t_stop,
        source=archive.src.name,
        obs_intervals=obs,
        info=_info("pynapple TsGroup", "t", "keys"),
    )


def _read_dense(
    archive: _Archive, name: str, values: str, dt: float | None
) -> DenseSpikes:
    if "t" not in archive:
        raise archive.error(f"missing; the time axis of {name!r} is needed", "t")
    t = archive["t"]
    safety.check_times(t, path=archive.src.name, dataset="t")
    try:
        return DenseSpikes(
            t,
            archive[name],
            unit_ids=_ids(archive, "unit_ids"),
            values=values,
            source=archive.src.name,
            dt=dt,
        )
    except SpikeDataError as exc:
        if exc.dataset == "spikes" and name != "spikes":
            raise archive.error(exc.message, name) from None
        raise


def read(src: Source, options: ReadOptions) -> SpikeTrains | DenseSpikes:
    """Read spikes from an NPZ archive (see :func:`spikerates.io.read_spikes`).

    ``dataset`` names the array to read when the archive holds both layouts,
    or a dense matrix stored under another name than ``spikes``.
    """
    dataset, values, dt = options.dataset, options.values, options.dt
    archive = open_archive(src)
    try:
        if dataset is not None:
            name = dataset.strip().strip("/")
            if name.endswith("_index") and name[: -len("_index")] in archive:
                name = name[: -len("_index")]
            if name not in archive:
                raise archive.error(
                    f"no such array; the archive holds {', '.join(archive.names)}",
                    name,
                )
            if f"{name}_index" in archive:
                return _read_events(archive, name)
            return _read_dense(archive, name, values, dt)
        dense = "t" in archive and "spikes" in archive
        events = "spike_times" in archive and "spike_times_index" in archive
        if "spike_times" in archive and "spike_clusters" in archive and not events:
            return _read_flat(archive)
        events = events or "spike_times" in archive
        if dense and events:
            raise archive.error(
                "holds both dense spikes (t, spikes) and events (spike_times); "
                "choose one with --dataset spikes or --dataset spike_times"
            )
        if dense:
            return _read_dense(archive, "spikes", values, dt)
        if events:
            return _read_events(archive, "spike_times")
        if (
            "unit_ids" in archive
            and "sampling_frequency" in archive
            and any(n.startswith("spike_indexes_seg") for n in archive.names)
        ):
            return _read_spikeinterface(archive, options.segment)
        if {"t", "index", "keys"} <= set(archive.names):
            return _read_tsgroup(archive)
        raise archive.error(
            "no spike data: expected arrays t and spikes (dense) or spike_times "
            "and spike_times_index (events); the archive holds "
            f"{', '.join(archive.names) or 'nothing'}"
        )
    finally:
        archive.close()


def read_table(src: Source) -> dict[str, np.ndarray]:
    """Numeric 1-D arrays of the archive, as float64 arrays by name."""
    archive = _Archive(src)
    try:
        out = {}
        for name in archive.names:
            data = archive[name]
            if data.dtype.kind not in "iufb":
                continue
            if data.ndim == 2 and 1 in data.shape:
                data = data.ravel()
            if data.ndim == 1:
                out[name] = data.astype(np.float64)
        return out
    finally:
        archive.close()


def _storable(arr: Any) -> np.ndarray:
    """An array np.load reads without pickle (text as fixed-width unicode)."""
    arr = np.asarray(arr)
    if arr.dtype.kind == "O":
        return np.array([str(x) for x in arr.ravel()], dtype=str).reshape(arr.shape)
    return arr


def provenance(attrs: Mapping[str, Any] | None) -> np.ndarray:
    """``attrs`` plus the spikerates version as a JSON text array (the NPZ
    counterpart of HDF5 attributes)."""
    plain = {k: v for k, v in (attrs or {}).items() if v is not None}
    plain["spikerates_version"] = __version__
    return np.array(json.dumps(plain, default=_plain, sort_keys=True))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _save(
    path: str, arrays: Mapping[str, Any], attrs: Mapping[str, Any] | None = None
) -> None:
    """Write ``arrays`` and, as the JSON text entry ``attrs``, the provenance."""
    entries = {k: _storable(v) for k, v in arrays.items()}
    if ATTRS_ENTRY in entries:
        raise ValueError(f"array name {ATTRS_ENTRY!r} is reserved for provenance")
    entries[ATTRS_ENTRY] = provenance(attrs)
    # Through a file object: np.savez would add ".npz" to a path without it.
    with open(path, "wb") as fh:
        np.savez(fh, **entries)


def _merge(base: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    for key, value in (extra or {}).items():
        if key in base:
            raise ValueError(f"extra array {key!r} clashes with a spike array")
        base[key] = value
    return base


def write_events(
    path: str,
    trains: SpikeTrains,
    *,
    extra: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write ``spike_times``, ``spike_times_index``, ``unit_ids`` (and
    ``labels``, ``t_start``, ``t_stop`` when known)."""
    flat, ends = trains_to_ragged(trains)
    arrays: dict[str, Any] = {
        "spike_times": flat,
        "spike_times_index": ends,
        "unit_ids": trains.unit_ids,
    }
    if trains.labels is not None:
        arrays["labels"] = trains.labels
        if trains.label_column:
            arrays["label_column"] = np.str_(trains.label_column)
    if trains.obs_intervals is not None:
        counts = [len(iv) for iv in trains.obs_intervals]
        arrays["obs_intervals"] = (
            np.concatenate(trains.obs_intervals) if sum(counts) else np.zeros((0, 2))
        )
        arrays["obs_intervals_index"] = np.cumsum(counts, dtype=np.int64)
    if trains.t_start is not None:
        arrays["t_start"] = np.float64(trains.t_start)
    if trains.t_stop is not None:
        arrays["t_stop"] = np.float64(trains.t_stop)
    _save(path, _merge(arrays, extra), attrs)


def write_dense(
    path: str,
    t: np.ndarray,
    spikes: np.ndarray,
    unit_ids: np.ndarray,
    *,
    name: str = "spikes",
    extra: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write ``t``, ``<name>``, ``unit_ids`` and the provenance ``attrs``."""
    _save(path, _merge({"t": t, name: spikes, "unit_ids": unit_ids}, extra), attrs)


def write_arrays(
    path: str,
    arrays: Mapping[str, Any],
    *,
    attrs: Mapping[str, Any] | None = None,
    columns: Mapping[str, Any] | None = None,
) -> None:
    """Write each array under its name, and the provenance ``attrs``
    (``columns`` are for text formats)."""
    _save(path, arrays, attrs)


def _header(entry: IO[bytes], dtype: np.dtype, shape: tuple[int, ...]) -> None:
    np.lib.format.write_array_header_1_0(
        entry,
        {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": shape,
        },
    )


class MatrixBackend:
    """Rows of a (n_rows, N) matrix streamed into an NPZ entry.

    The ``.npy`` header is written first (the shape is known), then the raw
    bytes of each chunk, so memory stays bounded. ``t`` is spooled to a
    temporary file and copied into its own entry at the end.
    """

    def __init__(
        self,
        path: str,
        *,
        name: str,
        n_rows: int,
        unit_ids: np.ndarray,
        dtype: np.dtype,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.n_rows = n_rows
        self.zip = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.t_spool = tempfile.TemporaryFile()
        try:
            with self.zip.open("unit_ids.npy", "w") as entry:
                np.lib.format.write_array(
                    entry, _storable(unit_ids), allow_pickle=False
                )
            with self.zip.open(f"{ATTRS_ENTRY}.npy", "w") as entry:
                np.lib.format.write_array(entry, provenance(attrs), allow_pickle=False)
            self.entry = self.zip.open(f"{name}.npy", "w", force_zip64=True)
            _header(self.entry, self.dtype, (n_rows, len(unit_ids)))
        except BaseException:
            self.close()
            raise

    def write(self, row: int, t_chunk: np.ndarray, values: np.ndarray) -> None:
        block = np.ascontiguousarray(values, dtype=self.dtype)
        if block.size:
            self.entry.write(memoryview(block.reshape(-1)).cast("B"))
        t_block = np.ascontiguousarray(t_chunk, dtype="<f8")
        if t_block.size:
            self.t_spool.write(memoryview(t_block).cast("B"))

    def close(self) -> None:
        try:
            entry = getattr(self, "entry", None)
            if entry is not None and not entry.closed:
                entry.close()
                with self.zip.open("t.npy", "w", force_zip64=True) as t_entry:
                    _header(t_entry, np.dtype("<f8"), (self.n_rows,))
                    self.t_spool.seek(0)
                    shutil.copyfileobj(self.t_spool, t_entry, 1 << 20)
        finally:
            self.t_spool.close()
            self.zip.close()


FORMAT = register(
    Format(
        spec=format_spec("npz"),
        sniff=lambda src: is_zip(src.head()),
        read=read,
        read_table=read_table,
        write_events=write_events,
        write_dense=write_dense,
        write_arrays=write_arrays,
        matrix_backend=MatrixBackend,
    )
)
