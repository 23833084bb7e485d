"""HDF5 files: the dense layout (``/t``, ``/spikes``) and the NWB Units table.

NWB files are read with plain h5py: a Units table is a group holding
``spike_times`` (flat, seconds), ``spike_times_index`` (end offset of each
unit, any integer type), ``id`` and optionally ``obs_intervals`` (with
``obs_intervals_index``) and a per-unit string column such as ``quality``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from spikerates import __version__
from spikerates.errors import SpikeDataError
from spikerates.io import safety
from spikerates.io._source import Source, is_hdf5
from spikerates.io.registry import Format, ReadOptions, register
from spikerates.names import format_spec
from spikerates.spiketrains import (
    DenseSpikes,
    SpikeTrains,
    normalize_unit_ids,
    ragged_to_trains,
    trains_to_ragged,
)

#: Columns of a Units table read as per-unit labels (compared lower-case).
LABEL_COLUMNS = ("label", "labels", "quality", "group", "kslabel")

# A streamed matrix is stored in chunks of whole rows: 1024 rows, more for
# narrow matrices (about 1 MiB per chunk), so per-chunk overhead stays small
# next to the write itself and the file reads back well by time blocks.
_CHUNK_BYTES = 1 << 20
_CHUNK_ROWS = 1024
# Chunk cache of a streamed file: holds the chunks an append leaves partly
# written, so they are completed in memory rather than re-read.
_CACHE_BYTES = 4 << 20


def _error(src: Source | str, message: str, dataset: str | None = None) -> Exception:
    name = src.name if isinstance(src, Source) else src
    return SpikeDataError(message, path=name, dataset=dataset)


def _open(src: Source) -> h5py.File:
    # Read-only, and scanned for data in other files before anything is read.
    return safety.open_hdf5_readonly(src.target(), name=src.name)


def _datasets_in(f: h5py.File, limit: int = 8) -> str:
    names: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            names.append("/" + name)

    f.visititems(visit)
    if not names:
        return "nothing"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _is_dataset(group: h5py.Group, name: str) -> bool:
    return isinstance(group.get(name, getlink=False), h5py.Dataset)


def _candidates(f: h5py.File) -> list[tuple[str, str]]:
    """(group path, layout) of every place holding spike data."""
    found: list[tuple[str, str]] = []

    def check(path: str, group: h5py.Group) -> None:
        if _is_dataset(group, "t") and _is_dataset(group, "spikes"):
            found.append((path, "dense"))
        if _is_dataset(group, "spike_times"):
            found.append((path, "events"))

    check("/", f)

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group):
            check("/" + name, obj)

    f.visititems(visit)
    return found


def _locate(f: h5py.File, src: Source, dataset: str | None) -> tuple[str, str, str]:
    """Find the spike data: (layout, group path, name of the data dataset)."""
    if dataset is not None:
        path = "/" + dataset.strip().strip("/")
        obj = f.get(path)
        if obj is None:
            raise _error(
                src,
                f"no such dataset or group; the file holds {_datasets_in(f)}",
                path,
            )
        if isinstance(obj, h5py.Group):
            if _is_dataset(obj, "spike_times"):
                return "events", obj.name, "spike_times"
            if _is_dataset(obj, "t") and _is_dataset(obj, "spikes"):
                return "dense", obj.name, "spikes"
            raise _error(
                src,
                "this group holds neither a Units table (spike_times, "
                "spike_times_index) nor dense spikes (t, spikes)",
                path,
            )
        parent = obj.parent.name
        base = obj.name.rsplit("/", 1)[-1]
        if base.endswith("_index") and _is_dataset(obj.parent, base[: -len("_index")]):
            return "events", parent, base[: -len("_index")]
        if _is_dataset(obj.parent, f"{base}_index"):
            return "events", parent, base
        if obj.ndim in (1, 2) and _is_dataset(obj.parent, "t") and base != "t":
            return "dense", parent, base
        raise _error(
            src,
            f"cannot read a dataset of shape {obj.shape} as spikes: expected a "
            f"matrix beside a time axis {parent.rstrip('/')}/t, or spike times "
            f"beside {obj.name}_index",
            path,
        )
    found = _candidates(f)
    if len(found) == 1:
        layout, group = found[0][1], found[0][0]
    else:
        standard = [c for c in found if c in (("/", "dense"), ("/units", "events"))]
        if len(found) > 1 and len(standard) != 1:
            listed = ", ".join(
                ("/spikes" if g == "/" else g + "/spikes")
                if kind == "dense"
                else g.rstrip("/") + "/spike_times"
                for g, kind in found
            )
            raise _error(
                src,
                f"the file holds several spike datasets ({listed}); "
                "choose one with --dataset",
            )
        if not found:
            raise _error(
                src,
                "no spike data: expected /t and /spikes (dense) or a Units table "
                "/units with spike_times and spike_times_index (events); the file "
                f"holds {_datasets_in(f)}",
            )
        group, layout = standard[0]
    return layout, group, "spikes" if layout == "dense" else "spike_times"


def _member(group: h5py.Group, name: str) -> str:
    return f"{group.name.rstrip('/')}/{name}"


def _rename(exc: SpikeDataError, names: Mapping[str, str]) -> SpikeDataError:
    """The same error naming the HDF5 dataset instead of the generic array."""
    dataset = names.get(exc.dataset or "", exc.dataset)
    return SpikeDataError(exc.message, path=exc.path, dataset=dataset)


def _read_all(src: Source, ds: h5py.Dataset) -> np.ndarray:
    safety.check_dataset(ds, path=src.name)
    try:
        return ds[()]
    except (OSError, ValueError, TypeError) as exc:
        raise _error(src, f"cannot read ({exc})", ds.name) from exc


def _read_ids(src: Source, group: h5py.Group, name: str) -> np.ndarray | None:
    if not _is_dataset(group, name):
        return None
    ds = group[name]
    raw = _read_all(src, ds)
    if np.ndim(raw) != 1:
        raise _error(src, f"expected a 1-D array of ids, got shape {ds.shape}", ds.name)
    return normalize_unit_ids(raw)


def _read_dense(
    f: h5py.File,
    src: Source,
    group_path: str,
    name: str,
    values: str,
    dt: float | None,
    lazy: bool,
) -> DenseSpikes:
    group = f[group_path]
    ds = group[name]
    if ds.dtype.kind not in "iufb":
        raise _error(src, f"spike values must be numbers, got {ds.dtype}", ds.name)
    t = _read_all(src, group["t"])
    safety.check_times(t, path=src.name, dataset=_member(group, "t"))
    unit_ids = _read_ids(src, group, "unit_ids")
    if lazy and ds.ndim == 2:
        safety.check_dataset(ds, path=src.name, whole=False)
    spikes: Any = ds if lazy and ds.ndim == 2 else _read_all(src, ds)
    names = {
        "t": _member(group, "t"),
        "spikes": ds.name,
        "unit_ids": _member(group, "unit_ids"),
    }
    try:
        return DenseSpikes(
            t,
            spikes,
            unit_ids=unit_ids,
            values=values,
            source=src.name,
            dt=dt,
            _file=f if spikes is ds else None,
        )
    except SpikeDataError as exc:
        raise _rename(exc, names) from None


def _string_column(src: Source, group: h5py.Group, n_units: int) -> np.ndarray | None:
    for key in group:
        if key.lower() not in LABEL_COLUMNS or not _is_dataset(group, key):
            continue
        ds = group[key]
        if h5py.check_string_dtype(ds.dtype) is None and ds.dtype.kind != "S":
            continue
        if _is_dataset(group, f"{key}_index"):
            continue  # a ragged column: several values per unit
        if ds.ndim != 1 or ds.shape[0] != n_units:
            raise _error(
                src,
                f"a label column of shape {ds.shape} for {n_units} units; "
                "expected one label per unit",
                ds.name,
            )
        return normalize_unit_ids(_read_all(src, ds)).astype(str)
    return None


def _window(src: Source, group: h5py.Group) -> tuple[float | None, float | None]:
    """Recording window hints: our t_start/t_stop attributes, else the span of
    NWB ``obs_intervals``."""
    t_start = safety.read_attr_scalar(group, "t_start", path=src.name, kind="time")
    t_stop = safety.read_attr_scalar(group, "t_stop", path=src.name, kind="time")
    if t_start is None and t_stop is None and _is_dataset(group, "obs_intervals"):
        ds = group["obs_intervals"]
        intervals = np.asarray(_read_all(src, ds), dtype=np.float64)
        if intervals.size:
            if intervals.ndim != 2 or intervals.shape[1] != 2:
                raise _error(
                    src,
                    f"expected (n, 2) start/stop pairs, got shape {intervals.shape}",
                    ds.name,
                )
            if not np.all(np.isfinite(intervals)):
                raise _error(src, "intervals must be finite", ds.name)
            t_start, t_stop = intervals[:, 0].min(), intervals[:, 1].max()
    return (
        None if t_start is None else float(t_start),
        None if t_stop is None else float(t_stop),
    )


def _read_units(
    f: h5py.File, src: Source, group_path: str, times_name: str
) -> SpikeTrains:
    group = f[group_path]
    times_ds = group[times_name]
    index_name = f"{times_name}_index"
    if not _is_dataset(group, index_name):
        raise _error(
            src,
            "missing; a Units table needs the end offset of each unit's spikes",
            _member(group, index_name),
        )
    index_ds = group[index_name]
    flat, index = _read_all(src, times_ds), _read_all(src, index_ds)
    safety.check_ragged(flat, index, path=src.name, dataset=times_ds.name)
    trains = ragged_to_trains(flat, index, source=src.name, dataset=times_ds.name)
    ids_name = "id" if _is_dataset(group, "id") else "unit_ids"
    unit_ids = _read_ids(src, group, ids_name)
    if unit_ids is not None and unit_ids.size != len(trains):
        raise _error(
            src,
            f"{unit_ids.size} ids for {len(trains)} units in {index_ds.name}; "
            "expected one id per unit",
            _member(group, ids_name),
        )
    t_start, t_stop = _window(src, group)
    try:
        return SpikeTrains(
            trains,
            unit_ids=unit_ids,
            t_start=t_start,
            t_stop=t_stop,
            labels=_string_column(src, group, len(trains)),
            source=src.name,
        )
    except SpikeDataError as exc:
        raise _rename(
            exc, {"spike_times": times_ds.name, "unit_ids": _member(group, ids_name)}
        ) from None


def read(src: Source, options: ReadOptions) -> SpikeTrains | DenseSpikes:
    """Read spikes from an HDF5 file (see :func:`spikerates.io.read_spikes`)."""
    f = _open(src)
    keep_open = False
    try:
        layout, group, name = _locate(f, src, options.dataset)
        if layout == "dense":
            result: SpikeTrains | DenseSpikes = _read_dense(
                f, src, group, name, options.values, options.dt, options.lazy
            )
            keep_open = result._file is not None
        else:
            result = _read_units(f, src, group, name)
        return result
    except (KeyError, RuntimeError, OSError) as exc:
        raise _error(src, f"cannot read ({exc})") from exc
    finally:
        if not keep_open:
            f.close()


def read_table(src: Source) -> dict[str, np.ndarray]:
    """Numeric 1-D datasets at the file's root, as float64 arrays by name."""
    f = _open(src)
    try:
        out = {}
        for key in f:
            if not _is_dataset(f, key):
                continue
            ds = f[key]
            if ds.dtype.kind not in "iufb":
                continue
            data = np.asarray(_read_all(src, ds))
            if data.ndim == 2 and 1 in data.shape:
                data = data.ravel()
            if data.ndim == 1:
                out[key] = data.astype(np.float64)
        return out
    except (KeyError, RuntimeError, OSError) as exc:
        raise _error(src, f"cannot read ({exc})") from exc
    finally:
        f.close()


def _data(arr: Any) -> np.ndarray:
    """An array h5py can store (text as UTF-8 variable-length strings)."""
    arr = np.asarray(arr)
    if arr.dtype.kind in "UO":
        return np.array([str(x) for x in arr.ravel()], dtype=object).reshape(arr.shape)
    return arr


def _create(group: h5py.Group, name: str, arr: Any, **kwargs: Any) -> h5py.Dataset:
    data = _data(arr)
    if data.dtype == object:
        kwargs["dtype"] = h5py.string_dtype()
    return group.create_dataset(name, data=data, **kwargs)


def _attr_value(value: Any) -> Any:
    if isinstance(value, str | bytes | bool | int | float | np.generic):
        return value
    if isinstance(value, Mapping):
        return json.dumps(value, default=str)
    arr = np.asarray(value)
    if arr.dtype.kind in "UO":
        return np.array([str(x) for x in arr.ravel()], dtype=h5py.string_dtype())
    return arr


def set_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any] | None) -> None:
    """Store ``attrs`` (None values skipped) plus the spikerates version."""
    for key, value in (attrs or {}).items():
        if value is not None:
            obj.attrs[key] = _attr_value(value)
    obj.attrs["spikerates_version"] = __version__


def _create_file(path: str, **kwargs: Any) -> h5py.File:
    """Create the HDF5 file ``path`` in place of an empty placeholder.

    The placeholder reserved the name; h5py creates the file anew rather
    than truncating it, because closing a truncated-and-rewritten file makes
    some filesystems (ext4) write all of its data back at once.
    """
    with contextlib.suppress(FileNotFoundError):
        if os.path.getsize(path) == 0:
            os.unlink(path)
    return h5py.File(path, "w", **kwargs)


def _write_extra(f: h5py.File, extra: Mapping[str, Any] | None) -> None:
    for key, value in (extra or {}).items():
        if key in f:
            raise ValueError(f"extra array {key!r} clashes with a spike dataset")
        _create(f, key, value)


def write_events(
    path: str,
    trains: SpikeTrains,
    *,
    extra: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write a Units table ``/units`` (spike_times, spike_times_index, id)."""
    flat, ends = trains_to_ragged(trains)
    with _create_file(path) as f:
        units = f.create_group("units")
        _create(units, "spike_times", flat)
        _create(units, "spike_times_index", ends)
        _create(units, "id", trains.unit_ids)
        if trains.labels is not None:
            _create(units, "label", trains.labels)
        if trains.t_start is not None:
            units.attrs["t_start"] = trains.t_start
        if trains.t_stop is not None:
            units.attrs["t_stop"] = trains.t_stop
        units.attrs["description"] = "spike times in seconds per unit"
        _write_extra(f, extra)
        set_attrs(f, attrs)


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
    """Write ``/t``, ``/<name>`` and ``/unit_ids`` (attributes on the file and
    on ``/<name>``)."""
    with _create_file(path) as f:
        _create(f, "t", t)
        data = _create(f, name, spikes)
        _create(f, "unit_ids", unit_ids)
        _write_extra(f, extra)
        set_attrs(f, attrs)
        set_attrs(data, attrs)


def write_arrays(
    path: str,
    arrays: Mapping[str, Any],
    *,
    attrs: Mapping[str, Any] | None = None,
    columns: Mapping[str, Any] | None = None,
) -> None:
    """Write each array as a dataset at the file's root (``columns`` are for
    text formats and not used)."""
    with _create_file(path) as f:
        for key, value in arrays.items():
            _create(f, key, value)
        set_attrs(f, attrs)


class MatrixBackend:
    """Rows of a (n_rows, N) matrix streamed into a preallocated chunked dataset."""

    def __init__(
        self,
        path: str,
        *,
        name: str,
        n_rows: int,
        unit_ids: np.ndarray,
        dtype: np.dtype,
        attrs: Mapping[str, Any] | None,
    ) -> None:
        n_units = len(unit_ids)
        self.file = _create_file(path, rdcc_nbytes=_CACHE_BYTES, rdcc_w0=1.0)
        try:
            row_bytes = max(1, n_units * dtype.itemsize)
            rows = max(1, min(n_rows, max(_CHUNK_ROWS, _CHUNK_BYTES // row_bytes)))
            # Keep a chunk within the cache (very wide matrices).
            rows = max(1, min(rows, _CACHE_BYTES // (4 * row_bytes)))
            chunks = (rows, n_units) if n_rows and n_units else None
            self.t = self.file.create_dataset("t", shape=(n_rows,), dtype=np.float64)
            self.data = self.file.create_dataset(
                name, shape=(n_rows, n_units), dtype=dtype, chunks=chunks
            )
            _create(self.file, "unit_ids", unit_ids)
            set_attrs(self.file, attrs)
            set_attrs(self.data, attrs)
        except BaseException:
            self.file.close()
            raise

    def write(self, row: int, t_chunk: np.ndarray, values: np.ndarray) -> None:
        stop = row + t_chunk.shape[0]
        self.t[row:stop] = t_chunk
        self.data[row:stop] = values

    def close(self) -> None:
        self.file.close()


FORMAT = register(
    Format(
        spec=format_spec("hdf5"),
        sniff=lambda src: is_hdf5(src.head()),
        read=read,
        read_table=read_table,
        write_events=write_events,
        write_dense=write_dense,
        write_arrays=write_arrays,
        matrix_backend=MatrixBackend,
    )
)
