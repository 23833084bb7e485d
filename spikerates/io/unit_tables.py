"""Small tables of the analyses: per-unit tables out, event tables in.

* :func:`write_unit_table` writes a :class:`~spikerates.metrics.UnitTable`
  (one row per unit) as TSV, CSV, JSON, NPZ or HDF5, atomically;
  :func:`format_text_table` lays it out for a terminal.
* :func:`read_events_table` reads event times with their other columns from
  a CSV/TSV/NPZ file (a ``time`` column; no intervals needed), or an NWB
  ``TimeIntervals`` table (``/intervals/<name>``, e.g. ``trials``) from an
  HDF5/NWB file through :func:`spikerates.io.intervals.read_time_intervals_table`.
"""

from __future__ import annotations

import csv
import io as _io
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from spikerates.errors import ParameterError, SpikeDataError
from spikerates.io import safety
from spikerates.io.atomic import atomic_output

__all__ = [
    "TABLE_FORMATS",
    "format_text_table",
    "read_events_table",
    "table_format",
    "write_unit_table",
]

#: Formats of per-unit tables, and the extensions that imply them.
TABLE_FORMATS = ("tsv", "csv", "json", "npz", "hdf5")
_TABLE_EXTENSIONS = {
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "tsv",
    ".csv": "csv",
    ".json": "json",
    ".npz": "npz",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
}
_TABLE_ALIASES = {"h5": "hdf5", "hdf": "hdf5"}

#: Largest events table read, in rows.
MAX_EVENT_ROWS = 10_000_000


def table_format(target: str, fmt: str | None, default: str = "tsv") -> str:
    """The format of a per-unit table: ``fmt`` (``--to``), else the target's
    extension, else ``default`` (for ``-``).

    Raises
    ------
    ParameterError
        For an unknown format name or extension.
    """
    if fmt is not None:
        name = _TABLE_ALIASES.get(fmt.lower(), fmt.lower())
        if name not in TABLE_FORMATS:
            raise ParameterError(
                "to", f"must be one of {', '.join(TABLE_FORMATS)}, got {fmt!r}"
            )
        return name
    if target == "-":
        return default
    ext = os.path.splitext(target)[1].lower()
    if ext not in _TABLE_EXTENSIONS:
        raise ParameterError(
            "output",
            f"cannot tell the table format of {target!r} from its extension; "
            f"use one of {', '.join(sorted(_TABLE_EXTENSIONS))} or give --to",
        )
    return _TABLE_EXTENSIONS[ext]


def _text_value(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in attrs.items():
        if isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            value = [_json_value(v) for v in value.tolist()]
        out[key] = _json_value(value)
    return out


def write_unit_table(
    target: str | os.PathLike,
    table: Any,
    fmt: str,
    *,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write a per-unit table, atomically.

    Parameters
    ----------
    target : str or PathLike
        Output path or ``"-"`` (standard output).
    table : UnitTable
        Columns of one length.
    fmt : {"tsv", "csv", "json", "npz", "hdf5"}
        TSV and CSV: a header row of column names, then one row per unit
        (floats as exact decimal text, NaN as ``nan``). JSON: ``{"attrs":
        {...}, "columns": [...], "rows": [{...}, ...]}`` with NaN as null.
        NPZ: one array per column. HDF5: one dataset per column at the root,
        with ``attrs`` as root attributes.
    attrs : dict, optional
        Parameters to keep (JSON, HDF5); default the table's own.
    """
    target = os.fspath(target)
    attrs = dict(table.attrs if attrs is None else attrs)
    columns = {k: np.asarray(v) for k, v in table.columns.items()}
    if fmt in ("tsv", "csv"):
        sep = "\t" if fmt == "tsv" else ","
        with atomic_output(target, binary=False) as fh:
            writer = csv.writer(fh, delimiter=sep, lineterminator="\n")
            writer.writerow(list(columns))
            for row in table.rows():
                writer.writerow([_text_value(v) for v in row.values()])
    elif fmt == "json":
        doc = {
            "attrs": _json_attrs(attrs),
            "columns": list(columns),
            "rows": [{k: _json_value(v) for k, v in r.items()} for r in table.rows()],
        }
        with atomic_output(target, binary=False) as fh:
            json.dump(doc, fh, indent=1, allow_nan=False)
            fh.write("\n")
    elif fmt in ("npz", "hdf5"):
        from spikerates.io import write_arrays

        write_arrays(target, columns, "npz" if fmt == "npz" else "hdf5", attrs=attrs)
    else:
        raise ParameterError(
            "to", f"must be one of {', '.join(TABLE_FORMATS)}, got {fmt!r}"
        )


def _display(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value == int(value) and abs(value) < 1e15:
            return f"{value:.1f}" if abs(value) < 1e6 else f"{value:.6g}"
        return (
            f"{value:.4g}"
            if abs(value) < 1e-3 or abs(value) >= 1e5
            else (f"{value:.4f}".rstrip("0").rstrip("."))
        )
    return str(value)


def format_text_table(table: Any, *, max_rows: int | None = None) -> str:
    """The table laid out in aligned columns for reading on a terminal.

    Numbers are right-aligned with about four significant digits, NaN shows
    as ``-``; with ``max_rows``, the rows beyond it are summarised in one
    line.
    """
    names = list(table.columns)
    rows = table.rows()
    shown = rows if max_rows is None else rows[:max_rows]
    cells = [[_display(v) for v in r.values()] for r in shown]
    numeric = [np.asarray(table.columns[n]).dtype.kind in "iuf" for n in names]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(names)]
    out += [line(c) for c in cells]
    if len(rows) > len(shown):
        out.append(f"... {len(rows) - len(shown)} more units")
    return "\n".join(out) + "\n"


# -- events in --------------------------------------------------------------------


def _text_columns(path: str, text: str, sep: str) -> dict[str, np.ndarray]:
    reader = csv.reader(_io.StringIO(text), delimiter=sep)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise SpikeDataError("is empty; expected a header row", path=path) from None
    if len(set(header)) != len(header) or not all(header):
        raise SpikeDataError(
            f"the header {sep.join(header)!r} has empty or repeated column names",
            path=path,
        )
    values: list[list[str]] = [[] for _ in header]
    for n, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise SpikeDataError(
                f"line {n} has {len(row)} fields, the header {len(header)}", path=path
            )
        if n > MAX_EVENT_ROWS:
            raise SpikeDataError(f"more than {MAX_EVENT_ROWS} rows", path=path)
        for col, cell in zip(values, row, strict=True):
            col.append(cell.strip())
    return {h: np.array(v, dtype=str) for h, v in zip(header, values, strict=True)}


def read_events_table(
    path: str | os.PathLike,
    *,
    table: str | None = None,
) -> dict[str, np.ndarray]:
    """Columns of an events table.

    Parameters
    ----------
    path : str or PathLike
        CSV/TSV (header row; ``.csv`` comma-, ``.tsv``/``.tab``/``.txt``
        tab-separated), NPZ (1-D arrays of one length) or HDF5/NWB.
    table : str, optional
        For HDF5/NWB, the ``TimeIntervals`` table: a name under
        ``/intervals`` (default ``trials``) or an absolute group path.

    Returns
    -------
    dict of str to ndarray
        1-D columns of one length, numbers as read (text columns of CSV/TSV
        are text; numeric conversion is the caller's).

    Raises
    ------
    SpikeDataError
        For a missing or malformed file, naming it.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SpikeDataError("no such events file", path=path)
    ext = os.path.splitext(path)[1].lower()
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"\x89HDF") or ext in (".h5", ".hdf5", ".hdf", ".nwb"):
        from spikerates.io.intervals import read_time_intervals_table

        return read_time_intervals_table(path, table or "trials")
    if head.startswith(b"PK") or ext == ".npz":
        try:
            with safety.open_npz(path, name=path) as z:
                cols = {k: z[k] for k in z.files}
        except SpikeDataError:
            raise
        except (OSError, ValueError) as exc:
            raise SpikeDataError(f"cannot be read as NPZ ({exc})", path=path) from None
        cols = {k: v.reshape(-1) for k, v in cols.items() if v.ndim <= 1}
        if len({v.size for v in cols.values()}) > 1:
            shapes = ", ".join(f"{k} ({v.size})" for k, v in cols.items())
            raise SpikeDataError(
                f"its 1-D arrays differ in length: {shapes}", path=path
            )
        return cols
    with open(path, encoding="utf-8-sig", errors="strict") as fh:
        try:
            text = fh.read()
        except UnicodeDecodeError:
            raise SpikeDataError("is not UTF-8 text", path=path) from None
    sep = "," if ext == ".csv" else "\t"
    if ext not in (".csv", ".tsv", ".tab", ".txt"):
        first = text.split("\n", 1)[0]
        sep = "\t" if "\t" in first else ","
    return _text_columns(path, text, sep)
