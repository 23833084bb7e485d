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
from collections.abc import Iterator, Mapping
from typing import Any

import h5py
import numpy as np

from spikerates import __version__
from spikerates.errors import SpikeDataError
from spikerates.io import safety
from spikerates.io._source import Source, is_hdf5
from spikerates.io._units import choose_unit_ids, flat_trains, subtract_intervals
from spikerates.io.registry import Format, ReadOptions, register
from spikerates.names import format_spec
from spikerates.spiketrains import (
    DenseSpikes,
    SpikeTrains,
    normalize_unit_ids,
    ragged_to_trains,
    trains_to_ragged,
)

#: Columns of a Units table read as per-unit labels (compared lower-case),
#: in order of preference.
LABEL_COLUMNS = ("label", "labels", "quality", "group", "kslabel")
#: Names of a scalar sample rate in Hz beside flat spike arrays.
SAMPLE_RATE_NAMES = ("sample_rate", "sampling_frequency", "sampling_rate", "fs")
#: Processing module of the matrices spikerates writes into NWB files, and
#: the column of their companion tables naming each data column's unit.
NWB_MODULE = "spikerates"
NWB_UNIT_ID_COLUMN = "unit_id"

# A streamed matrix is stored in chunks of whole rows: 1024 rows, more for
# narrow matrices (about 1 MiB per chunk), so per-chunk overhead stays small
# next to the write itself and the file reads back well by time blocks.
_CHUNK_BYTES = 1 << 20
_CHUNK_ROWS = 1024
# Chunk cache of a streamed file: holds the chunks an append leaves partly
# written, so they are completed in memory rather than re-read.
CACHE_BYTES = 4 << 20


def _error(src: Source | str, message: str, dataset: str | None = None) -> Exception:
    name = src.name if isinstance(src, Source) else src
    return SpikeDataError(message, path=name, dataset=dataset)


def _open_hdf5(src: Source) -> h5py.File:
    """Open an input HDF5 file for reading (the one place readers do):
    read-only, and scanned for data in other files before anything is read."""
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


def _text_attr(obj: h5py.HLObject, name: str) -> str:
    value = obj.attrs.get(name, "")
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value)


def _is_series(group: h5py.Group) -> bool:
    return _is_dataset(group, "data") and (
        _is_dataset(group, "starting_time") or _is_dataset(group, "timestamps")
    )


def _layout_of(group: h5py.Group) -> str | None:
    """The spike layout a group holds, if any."""
    if _is_dataset(group, "spike_times"):
        if not _is_dataset(group, "spike_times_index") and _is_dataset(
            group, "spike_clusters"
        ):
            return "flat"
        return "events"
    if _is_dataset(group, "t") and _is_dataset(group, "spikes"):
        return "dense"
    return None


def _candidates(f: h5py.File) -> list[tuple[str, str]]:
    """(group path, layout) of every place holding spike data, plus the
    matrices spikerates writes into NWB files."""
    found: list[tuple[str, str]] = []
    layout = _layout_of(f)
    if layout is not None:
        found.append(("/", layout))

    def visit(name: str, obj: Any) -> None:
        if not isinstance(obj, h5py.Group):
            return
        layout = _layout_of(obj)
        if layout is not None:
            found.append(("/" + name, layout))
        elif name.startswith(f"processing/{NWB_MODULE}/") and _is_series(obj):
            found.append(("/" + name, "series"))

    f.visititems(visit)
    return found


_DATA_NAME = {"dense": "spikes", "series": "data"}
_STANDARD = (("/", "dense"), ("/units", "events"), ("/", "events"), ("/", "flat"))


def _describe(found: list[tuple[str, str]]) -> str:
    return ", ".join(
        f"{g.rstrip('/')}/{_DATA_NAME.get(kind, 'spike_times')}" for g, kind in found
    )


def _locate(
    f: h5py.File, src: Source, dataset: str | None
) -> tuple[str, str, str, str | None]:
    """Find the spike data: (layout, group path, name of the data dataset,
    a note on the choice when the file holds several)."""
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
            layout = _layout_of(obj) or ("series" if _is_series(obj) else None)
            if layout is not None:
                return layout, obj.name, _DATA_NAME.get(layout, "spike_times"), None
            raise _error(
                src,
                "this group holds neither a Units table (spike_times, "
                "spike_times_index), flat spike_times with spike_clusters, dense "
                "spikes (t, spikes) nor a TimeSeries (data, starting_time)",
                path,
            )
        parent = obj.parent.name
        base = obj.name.rsplit("/", 1)[-1]
        if base.endswith("_index") and _is_dataset(obj.parent, base[: -len("_index")]):
            return "events", parent, base[: -len("_index")], None
        if _is_dataset(obj.parent, f"{base}_index"):
            return "events", parent, base, None
        if base == "data" and _is_series(obj.parent):
            return "series", parent, base, None
        if obj.ndim in (1, 2) and _is_dataset(obj.parent, "t") and base != "t":
            return "dense", parent, base, None
        raise _error(
            src,
            f"cannot read a dataset of shape {obj.shape} as spikes: expected a "
            f"matrix beside a time axis {parent.rstrip('/')}/t, or spike times "
            f"beside {obj.name}_index",
            path,
        )
    found = _candidates(f)
    if not found:
        raise _error(
            src,
            "no spike data: expected /t and /spikes (dense) or a Units table "
            "/units with spike_times and spike_times_index (events); the file "
            f"holds {_datasets_in(f)}",
        )
    note = None
    if len(found) == 1:
        group, layout = found[0]
    else:
        standard = [c for c in _STANDARD if c in found]
        # Matrices spikerates wrote (rates) are spike data only when asked for.
        spikes = [c for c in found if c[1] != "series"]
        if len(standard) == 1:
            group, layout = standard[0]
        elif len(spikes) == 1:
            group, layout = spikes[0]
        else:
            raise _error(
                src,
                f"the file holds several spike datasets ({_describe(found)}); "
                "choose one with --dataset",
            )
        note = (
            f"used {_describe([(group, layout)])} of {len(found)} spike datasets "
            f"({_describe(found)}); choose another with --dataset"
        )
    return layout, group, _DATA_NAME.get(layout, "spike_times"), note


def _member(group: h5py.Group, name: str) -> str:
    return f"{group.name.rstrip('/')}/{name}"


def _rename(exc: SpikeDataError, names: Mapping[str, str]) -> SpikeDataError:
    """The same error naming the HDF5 dataset instead of the generic array."""
    dataset = names.get(exc.dataset or "", exc.dataset)
    return SpikeDataError(exc.message, path=exc.path, dataset=dataset)


def _read_all(src: Source, ds: h5py.Dataset) -> np.ndarray:
    safety.check_dataset(ds, path=src.name)
    try:
        value = ds[()]
    except (OSError, ValueError, TypeError) as exc:
        raise _error(src, f"cannot read ({exc})", ds.name) from exc
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        for v in value.reshape(-1):
            if isinstance(v, bytes):
                try:
                    v.decode("utf-8")
                except UnicodeDecodeError:
                    raise _error(
                        src, f"holds text that is not UTF-8 ({v[:20]!r})", ds.name
                    ) from None
    return value


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
    options: ReadOptions,
) -> DenseSpikes:
    group = f[group_path]
    ds = group[name]
    if ds.dtype.kind not in "iufb":
        raise _error(src, f"spike values must be numbers, got {ds.dtype}", ds.name)
    t = _read_all(src, group["t"])
    safety.check_times(t, path=src.name, dataset=_member(group, "t"))
    unit_ids = _read_ids(src, group, "unit_ids")
    if options.lazy and ds.ndim == 2:
        safety.check_dataset(ds, path=src.name, whole=False)
    spikes: Any = ds if options.lazy and ds.ndim == 2 else _read_all(src, ds)
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
            values=options.values,
            source=src.name,
            dt=options.dt,
            _file=f if spikes is ds else None,
        )
    except SpikeDataError as exc:
        raise _rename(exc, names) from None


def _series_times(src: Source, group: h5py.Group, n_rows: int) -> np.ndarray:
    """Times of the rows of a TimeSeries: the exact grid spikerates wrote
    (``t_start + (k+1)*dt`` from its comments), else ``starting_time +
    k/rate``, else ``timestamps``."""
    if _is_dataset(group, "timestamps"):
        return np.asarray(_read_all(src, group["timestamps"]), dtype=np.float64)
    start_ds = group["starting_time"]
    start = float(_read_all(src, start_ds))
    rate = safety.read_attr_scalar(start_ds, "rate", path=src.name, kind="rate")
    if rate is None or rate <= 0:
        raise _error(src, "needs a rate attribute > 0 (Hz)", start_ds.name)
    try:
        params = json.loads(_text_attr(group, "comments") or "{}")
    except ValueError:
        params = {}
    dt, t_start = params.get("dt"), params.get("t_start")
    k = np.arange(n_rows, dtype=np.int64)
    if isinstance(dt, int | float) and isinstance(t_start, int | float):
        grid = t_start + (k + 1) * float(dt)
        if n_rows == 0 or abs(grid[0] - start) <= 1e-9 * abs(dt):
            return grid
    return start + k / float(rate)


def _read_series(
    f: h5py.File, src: Source, group_path: str, options: ReadOptions
) -> DenseSpikes:
    group = f[group_path]
    ds = group["data"]
    if ds.dtype.kind not in "iufb" or ds.ndim not in (1, 2):
        raise _error(
            src, f"expected a 1-D or 2-D array of numbers, got {ds.dtype}", ds.name
        )
    t = _series_times(src, group, ds.shape[0])
    table = group.parent.get(f"{group.name.rsplit('/', 1)[-1]}_units")
    unit_ids = None
    if isinstance(table, h5py.Group):
        unit_ids = _read_ids(src, table, NWB_UNIT_ID_COLUMN)
    if options.lazy and ds.ndim == 2:
        safety.check_dataset(ds, path=src.name, whole=False)
    spikes: Any = ds if options.lazy and ds.ndim == 2 else _read_all(src, ds)
    try:
        return DenseSpikes(
            t,
            spikes,
            unit_ids=unit_ids,
            values=options.values,
            source=src.name,
            dt=options.dt,
            _file=f if spikes is ds else None,
        )
    except SpikeDataError as exc:
        names = {"t": _member(group, "starting_time"), "spikes": ds.name}
        raise _rename(exc, names) from None


def _string_column(
    src: Source, group: h5py.Group, n_units: int
) -> tuple[np.ndarray | None, str | None]:
    """Per-unit labels and the column they came from."""
    by_name = {key.lower(): key for key in group}
    for wanted in LABEL_COLUMNS:
        key = by_name.get(wanted)
        if key is None or not _is_dataset(group, key):
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
        return normalize_unit_ids(_read_all(src, ds)).astype(str), key
    return None, None


def _intervals(src: Source, ds: h5py.Dataset) -> np.ndarray:
    intervals = np.asarray(_read_all(src, ds), dtype=np.float64)
    if intervals.size == 0:
        return np.zeros((0, 2))
    if intervals.ndim != 2 or intervals.shape[1] != 2:
        raise _error(
            src,
            f"expected (n, 2) start/stop pairs, got shape {intervals.shape}",
            ds.name,
        )
    if not np.all(np.isfinite(intervals)):
        raise _error(src, "intervals must be finite", ds.name)
    return intervals


def _obs_intervals(
    src: Source, group: h5py.Group, n_units: int
) -> list[np.ndarray] | None:
    """Per-unit NWB ``obs_intervals`` (ragged through ``obs_intervals_index``)."""
    if not _is_dataset(group, "obs_intervals"):
        return None
    flat = _intervals(src, group["obs_intervals"])
    if not _is_dataset(group, "obs_intervals_index"):
        if flat.shape[0] == n_units:
            return [row.reshape(1, 2) for row in flat]
        raise _error(
            src,
            "missing; per-unit observation intervals need the end offset of "
            "each unit's intervals",
            _member(group, "obs_intervals_index"),
        )
    ends = _read_all(src, group["obs_intervals_index"])
    pieces = ragged_to_trains(
        flat[:, 0],
        ends,
        source=src.name,
        dataset=_member(group, "obs_intervals"),
    )
    if len(pieces) != n_units:
        raise _error(
            src,
            f"{len(pieces)} entries for {n_units} units",
            _member(group, "obs_intervals_index"),
        )
    bounds = np.r_[0, np.asarray(ends, dtype=np.int64)]
    return [flat[bounds[i] : bounds[i + 1]] for i in range(n_units)]


def _invalid_times(src: Source, f: h5py.File) -> np.ndarray | None:
    group = f.get("intervals/invalid_times")
    if not isinstance(group, h5py.Group):
        return None
    if not (_is_dataset(group, "start_time") and _is_dataset(group, "stop_time")):
        return None
    starts = np.asarray(_read_all(src, group["start_time"]), dtype=np.float64)
    stops = np.asarray(_read_all(src, group["stop_time"]), dtype=np.float64)
    if starts.shape != stops.shape or starts.ndim != 1:
        raise _error(src, "start_time and stop_time disagree in shape", group.name)
    return np.column_stack([starts, stops])


def _window(
    src: Source, group: h5py.Group, obs: list[np.ndarray] | None
) -> tuple[float | None, float | None]:
    """Recording window hints: our t_start/t_stop attributes, else the span of
    the ``obs_intervals``."""
    t_start = safety.read_attr_scalar(group, "t_start", path=src.name, kind="time")
    t_stop = safety.read_attr_scalar(group, "t_stop", path=src.name, kind="time")
    if t_start is None and t_stop is None and obs is not None:
        spans = [iv for iv in obs if iv.size]
        if spans:
            joined = np.concatenate(spans)
            t_start, t_stop = joined[:, 0].min(), joined[:, 1].max()
    return (
        None if t_start is None else float(t_start),
        None if t_stop is None else float(t_stop),
    )


def _session_info(src: Source, f: h5py.File) -> dict[str, Any]:
    """NWB session metadata as plain strings."""
    info: dict[str, Any] = {}
    if "nwb_version" not in f.attrs:
        return info
    info["nwb_version"] = _text_attr(f, "nwb_version")
    places = {
        "session_description": "session_description",
        "session_start_time": "session_start_time",
        "source_identifier": "identifier",
        "session_id": "general/session_id",
        "lab": "general/lab",
        "institution": "general/institution",
        "experiment_description": "general/experiment_description",
        "experimenter": "general/experimenter",
    }
    for key, place in places.items():
        if not _is_dataset(f, place):
            continue
        value = _read_all(src, f[place])
        values = np.atleast_1d(value).tolist()
        text = "; ".join(
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in values
        )
        if text:
            info[key] = text
    return info


def _table_columns(group: h5py.Group) -> list[str]:
    return [key for key in group if _is_dataset(group, key)]


def _read_units(
    f: h5py.File,
    src: Source,
    group_path: str,
    times_name: str,
    options: ReadOptions,
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
    n_units = len(trains)
    row_ids = "id" if _is_dataset(group, "id") else "unit_ids"
    unit_ids, id_column = choose_unit_ids(
        _table_columns(group),
        lambda name: _read_all(src, group[name]),
        n_units,
        options.id_column,
        row_ids=row_ids,
        source=src.name,
        where=group.name,
    )
    labels, label_column = _string_column(src, group, n_units)
    obs = _obs_intervals(src, group, n_units)
    t_start, t_stop = _window(src, group, obs)
    invalid = _invalid_times(src, f)
    if invalid is not None and invalid.size:
        if obs is None:
            lo = [iv for iv in (t_start,) if iv is not None]
            hi = [iv for iv in (t_stop,) if iv is not None]
            firsts = [t[0] for t in trains if t.size]
            lasts = [t[-1] for t in trains if t.size]
            start = lo[0] if lo else min([*firsts, float(invalid[:, 0].min())])
            stop = hi[0] if hi else max([*lasts, float(invalid[:, 1].max())])
            obs = [np.array([[start, stop]])] * n_units
        obs = [subtract_intervals(iv, invalid) for iv in obs]
    info = {
        "format": "nwb" if "nwb_version" in f.attrs else "hdf5",
        "layout": "events",
        "table": group.name,
        "id_column": id_column or "",
        **_session_info(src, f),
    }
    try:
        resolution = safety.read_attr_scalar(group, "resolution", path=src.name)
    except SpikeDataError:
        resolution = None  # metadata only: a malformed value is not kept
    if resolution is not None and resolution > 0:
        info["resolution"] = float(resolution)
    try:
        return SpikeTrains(
            trains,
            unit_ids=unit_ids,
            t_start=t_start,
            t_stop=t_stop,
            labels=labels,
            source=src.name,
            obs_intervals=obs,
            label_column=label_column,
            info=info,
        )
    except SpikeDataError as exc:
        raise _rename(
            exc,
            {
                "spike_times": times_ds.name,
                "unit_ids": _member(group, id_column or row_ids),
            },
        ) from None


def _scalar_beside(src: Source, group: h5py.Group, names: tuple[str, ...]) -> Any:
    for name in names:
        if _is_dataset(group, name):
            value = np.asarray(_read_all(src, group[name]))
            if value.size == 1 and value.dtype.kind in "iuf":
                return float(value.ravel()[0])
        if name in group.attrs:
            return float(group.attrs[name])
    return None


def _read_flat(f: h5py.File, src: Source, group_path: str) -> SpikeTrains:
    group = f[group_path]
    rate = _scalar_beside(src, group, SAMPLE_RATE_NAMES)
    ids, trains = flat_trains(
        _read_all(src, group["spike_times"]),
        _read_all(src, group["spike_clusters"]),
        sample_rate=rate,
        source=src.name,
        times_name=_member(group, "spike_times"),
        clusters_name=_member(group, "spike_clusters"),
    )
    return SpikeTrains(
        trains,
        unit_ids=ids,
        source=src.name,
        info={
            "format": "hdf5",
            "layout": "flat",
            "table": group.name,
            "id_column": "spike_clusters",
        },
    )


def read(src: Source, options: ReadOptions) -> SpikeTrains | DenseSpikes:
    """Read spikes from an HDF5 file (see :func:`spikerates.io.read_spikes`)."""
    f = _open_hdf5(src)
    keep_open = False
    try:
        if _text_attr(f, "format") == "nix":
            from spikerates.io import nix  # the NIX layout, also HDF5

            return nix.read_file(f, src, options)
        layout, group, name, note = _locate(f, src, options.dataset)
        result: SpikeTrains | DenseSpikes
        if layout == "dense":
            result = _read_dense(f, src, group, name, options)
            keep_open = result._file is not None
        elif layout == "series":
            result = _read_series(f, src, group, options)
            keep_open = result._file is not None
        elif layout == "flat":
            result = _read_flat(f, src, group)
        else:
            result = _read_units(f, src, group, name, options)
        if note is not None and isinstance(result, SpikeTrains):
            result.info["choice"] = note
        return result
    except (KeyError, RuntimeError, OSError) as exc:
        raise _error(src, f"cannot read ({exc})") from exc
    finally:
        if not keep_open:
            f.close()


def read_table(src: Source) -> dict[str, np.ndarray]:
    """Numeric 1-D datasets at the file's root, as float64 arrays by name."""
    f = _open_hdf5(src)
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


def remove_placeholder(path: str) -> None:
    """Remove the empty file that reserved the name ``path``.

    HDF5 writers create the file anew rather than truncating it, because
    closing a truncated-and-rewritten file makes some filesystems (ext4)
    write all of its data back at once.
    """
    with contextlib.suppress(FileNotFoundError):
        if os.path.getsize(path) == 0:
            os.unlink(path)


def _create_file(path: str, **kwargs: Any) -> h5py.File:
    """Create the HDF5 file ``path`` in place of an empty placeholder."""
    remove_placeholder(path)
    return h5py.File(path, "w", **kwargs)


#: Set when libhdf5 failed to close a file it was writing (a full disk):
#: the library is then left in a state that crashes the process at exit,
#: so the command line ends the process without running its cleanup.
close_failed = False


#: What a failed close left behind: releasing these objects would crash
#: libhdf5, so they are kept until the process ends.
_abandoned: list[Any] = []


def close_written(f: h5py.File, *objects: Any) -> None:
    """Close a file being written (and its open ``objects``), remembering
    whether libhdf5 failed to."""
    global close_failed
    try:
        f.close()
    except OSError:
        close_failed = True
        _abandoned.extend((f, *objects))
        raise


@contextlib.contextmanager
def _writing(path: str, **kwargs: Any) -> Iterator[h5py.File]:
    """A new HDF5 file ``path``, closed with :func:`close_written`."""
    f = _create_file(path, **kwargs)
    try:
        yield f
    except BaseException:
        with contextlib.suppress(OSError):
            close_written(f)
        raise
    close_written(f)


def chunk_rows(n_rows: int, n_units: int, dtype: np.dtype) -> int:
    """Rows per chunk of a streamed (n_rows, n_units) matrix."""
    row_bytes = max(1, n_units * np.dtype(dtype).itemsize)
    rows = max(1, min(n_rows, max(_CHUNK_ROWS, _CHUNK_BYTES // row_bytes)))
    # Keep a chunk within the cache (very wide matrices).
    return max(1, min(rows, CACHE_BYTES // (4 * row_bytes)))


def write_extra(f: h5py.File, extra: Mapping[str, Any] | None) -> None:
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
    with _writing(path) as f:
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
        write_extra(f, extra)
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
    with _writing(path) as f:
        _create(f, "t", t)
        data = _create(f, name, spikes)
        _create(f, "unit_ids", unit_ids)
        write_extra(f, extra)
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
    with _writing(path) as f:
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
        self.file = _create_file(path, rdcc_nbytes=CACHE_BYTES, rdcc_w0=1.0)
        try:
            rows = chunk_rows(n_rows, n_units, dtype)
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
        if self.file is None:
            return
        f, self.file = self.file, None
        close_written(f, self.t, self.data)


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
