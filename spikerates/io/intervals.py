"""Epochs and trial tables: ``[start, stop]`` intervals in seconds.

Two sources:

* NWB ``TimeIntervals`` tables (``/intervals/trials``, ``/intervals/epochs``,
  or any group with ``start_time`` and ``stop_time``), read with h5py;
* text tables (CSV/TSV) with a header naming ``start`` and ``stop`` (or
  ``start_time``, ``stop_time``), and NPZ archives with such arrays.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from spikerates.errors import ParameterError, SpikeDataError
from spikerates.io import safety
from spikerates.io._source import Source, open_source

__all__ = ["read_intervals", "read_time_intervals_table"]

#: Accepted names of the start and stop columns, in order of preference.
START_NAMES = ("start_time", "start", "t_start", "begin")
STOP_NAMES = ("stop_time", "stop", "t_stop", "end")
#: Tables looked for when none is named.
DEFAULT_TABLES = ("trials", "epochs")


def _format(src: Source) -> str:
    from spikerates.io import detect_format

    return detect_format(src.name, head=src.head())


def _hdf5_table(src: Source, name: str | None) -> dict[str, Any]:
    import h5py  # deferred: slow to import

    from spikerates.io.hdf5 import _open_hdf5

    f = _open_hdf5(src)
    try:
        groups = f.get("intervals")
        tables = (
            {k: g for k, g in groups.items() if _is_table(g)}
            if isinstance(groups, h5py.Group)
            else {}
        )
        if name is None:
            found = [t for t in DEFAULT_TABLES if t in tables]
            if not found and len(tables) == 1:
                found = list(tables)
            if not found:
                raise SpikeDataError(
                    "no interval table to choose: expected /intervals/trials or "
                    "/intervals/epochs; the file holds "
                    f"{', '.join('/intervals/' + t for t in tables) or 'none'}",
                    path=src.name,
                )
            group = tables[found[0]]
        else:
            path = name if name.startswith("/") else f"/intervals/{name}"
            group = f.get(path)
            if not _is_table(group):
                raise SpikeDataError(
                    "no TimeIntervals table (start_time, stop_time) here; the "
                    f"file holds {', '.join(sorted(tables)) or 'none'} in /intervals",
                    path=src.name,
                    dataset=path,
                )
        n = group["start_time"].shape[0]
        out: dict[str, Any] = {}
        for key, ds in group.items():
            if not isinstance(ds, h5py.Dataset) or key.endswith("_index"):
                continue
            if key == "id" or ds.ndim == 0:
                continue
            safety.check_dataset(ds, path=src.name)
            data = ds[()]
            if f"{key}_index" in group:
                index_ds = group[f"{key}_index"]
                safety.check_dataset(index_ds, path=src.name)
                ends = np.asarray(index_ds[()], dtype=np.int64)
                bounds = np.r_[0, ends]
                pieces = np.empty(ends.size, dtype=object)
                for i in range(ends.size):
                    pieces[i] = np.asarray(data[bounds[i] : bounds[i + 1]])
                out[key] = pieces
                continue
            if data.shape[0] != n:
                continue
            if h5py.check_string_dtype(ds.dtype) is not None or ds.dtype.kind == "S":
                data = np.array(
                    [
                        v.decode("utf-8") if isinstance(v, bytes) else str(v)
                        for v in data
                    ]
                )
            out[key] = data
        if "id" in group:
            out["id"] = group["id"][()]
        return out
    finally:
        f.close()


def _is_table(group: Any) -> bool:
    import h5py  # deferred: slow to import

    return (
        isinstance(group, h5py.Group)
        and isinstance(group.get("start_time"), h5py.Dataset)
        and isinstance(group.get("stop_time"), h5py.Dataset)
    )


def _text_table(src: Source, sep: str) -> dict[str, Any]:
    import pandas as pd  # deferred: slow to import

    try:
        frame = pd.read_csv(src.target(), sep=sep, comment="#", skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise SpikeDataError(f"cannot read the table ({exc})", path=src.name) from exc
    out: dict[str, Any] = {}
    for column in frame.columns:
        values = frame[column]
        key = str(column).strip()
        if pd.api.types.is_numeric_dtype(values):
            out[key] = values.to_numpy()
        else:
            out[key] = values.astype(str).str.strip().to_numpy(dtype=str)
    return out


def _npz_table(src: Source) -> dict[str, Any]:
    from spikerates.io.npz import open_archive

    archive = open_archive(src)
    try:
        out = {}
        for name in archive.names:
            data = archive[name]
            if data.ndim == 1:
                out[name] = data
        return out
    finally:
        archive.close()


def _rename_bounds(table: dict[str, Any], src: Source) -> dict[str, Any]:
    """The table with its start and stop columns as ``start_time``/``stop_time``
    (float64 seconds), checked."""
    lower = {k.lower(): k for k in table}
    start = next((lower[n] for n in START_NAMES if n in lower), None)
    stop = next((lower[n] for n in STOP_NAMES if n in lower), None)
    if start is None or stop is None:
        raise SpikeDataError(
            "expected interval columns 'start' and 'stop' (or 'start_time', "
            f"'stop_time'); the table has {', '.join(table) or 'no columns'}",
            path=src.name,
        )
    out = {k: v for k, v in table.items() if k not in (start, stop)}
    bounds = []
    for name, key in ((start, "start_time"), (stop, "stop_time")):
        values = np.asarray(table[name])
        if values.dtype.kind not in "iuf":
            raise SpikeDataError(
                "interval times must be numbers (seconds)",
                path=src.name,
                dataset=name,
            )
        values = values.astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise SpikeDataError(
                "interval times must be finite", path=src.name, dataset=name
            )
        out[key] = values
        bounds.append(values)
    if np.any(bounds[1] < bounds[0]):
        i = int(np.flatnonzero(bounds[1] < bounds[0])[0])
        raise SpikeDataError(
            f"row {i}: stop {float(bounds[1][i])!r} is before start "
            f"{float(bounds[0][i])!r}",
            path=src.name,
            dataset=stop,
        )
    return {
        "start_time": out.pop("start_time"),
        "stop_time": out.pop("stop_time"),
        **out,
    }


def read_time_intervals_table(
    path: str | os.PathLike, name: str | None = None
) -> dict[str, np.ndarray]:
    """Every column of an interval table (trials with their conditions).

    Parameters
    ----------
    path : str or PathLike
        An NWB/HDF5 file, or a CSV/TSV/NPZ table.
    name : str, optional
        For NWB: the table in ``/intervals`` (``"trials"``) or its full path
        (``"/intervals/trials"``). Default: ``trials``, else ``epochs``, else
        the only table. Ignored for text and NPZ tables.

    Returns
    -------
    dict of str to ndarray
        ``start_time`` and ``stop_time`` (float64 seconds, shape (K,)) first,
        then the other columns by name: numbers, text (str arrays), and
        ragged columns as object arrays of per-row arrays. NWB row ids are
        under ``id``.

    Raises
    ------
    SpikeDataError
        When the table is missing, lacks start/stop columns, or holds
        non-finite or reversed intervals.
    """
    src = open_source(path)
    if src.is_dir:
        raise SpikeDataError(
            "expected an interval table file, not a folder", path=src.name
        )
    fmt = _format(src)
    if fmt in ("hdf5", "nwb"):
        table = _hdf5_table(src, name)
    elif fmt == "npz":
        table = _npz_table(src)
    elif fmt in ("csv", "tsv"):
        table = _text_table(src, "\t" if fmt == "tsv" else ",")
    else:
        raise ParameterError("intervals", f"cannot read intervals from a {fmt} input")
    return _rename_bounds(table, src)


def read_intervals(path: str | os.PathLike, table: str | None = None) -> np.ndarray:
    """``[start, stop]`` intervals in seconds from an epoch or trial table.

    Parameters
    ----------
    path : str or PathLike
        A CSV/TSV table with ``start`` and ``stop`` columns, an NPZ archive
        with such arrays, or an NWB file with a TimeIntervals table.
    table : str, optional
        The NWB table (``trials``, ``epochs``, ``/intervals/...``); see
        :func:`read_time_intervals_table`.

    Returns
    -------
    ndarray of float64, shape (K, 2)
        One row per interval, in file order.
    """
    columns = read_time_intervals_table(path, table)
    return np.column_stack([columns["start_time"], columns["stop_time"]])
