"""CSV and TSV text: events in long format (``unit,time``) and the dense
layout (``t,<unit>,<unit>,...``).

Headers are recognised in their common variants: a unit column named
``unit``, ``cluster``, ``sender``, ``neuron``, ``id`` or ``cell`` (optionally
with ``_id``), and a time column named ``time``, ``t``, ``times``,
``spike_time``, ``spike_times`` or ``timestamp(s)``, in seconds, or in
milliseconds when the name says so (``time_ms``, ``t_ms``, ``time (ms)``).
Lines starting with ``#`` before the header are skipped.

In long format a unit with no spikes is written as a row with an empty time
(``7,``), so empty units survive a round trip; such rows are read back as
units without spikes.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, Any

import numpy as np

from spikerates.errors import SpikeDataError
from spikerates.io import safety
from spikerates.io._source import Source, first_line_is_tab_separated
from spikerates.io.registry import Format, ReadOptions, register
from spikerates.names import format_spec
from spikerates.spiketrains import (
    DenseSpikes,
    SpikeTrains,
    normalize_unit_ids,
)

UNIT_COLUMNS = frozenset(
    f"{base}{suffix}"
    for base in ("unit", "cluster", "sender", "neuron", "cell")
    for suffix in ("", "s", "_id", "_ids", "id")
) | {"id", "ids"}
TIME_COLUMNS = frozenset(
    {
        "time",
        "times",
        "t",
        "spike_time",
        "spike_times",
        "spiketime",
        "spiketimes",
        "timestamp",
        "timestamps",
    }
)
DENSE_TIME_COLUMNS = frozenset({"t", "time", "times"})
# Suffix of a time column name -> divisor that turns it into seconds.
TIME_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "seconds": 1.0}
TIME_UNITS.update({"ms": 1e3, "msec": 1e3, "milliseconds": 1e3})
TIME_UNITS.update({"us": 1e6, "usec": 1e6, "microseconds": 1e6})

# Rows formatted at a time when writing (bounds the size of one text block).
_WRITE_ROWS = 4096
_HEAD_LINES = 10000


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def time_divisor(name: str, bases: frozenset[str] = TIME_COLUMNS) -> float | None:
    """Divisor to seconds of a time column called ``name``, or None if the name
    is not a time column."""
    norm = _norm(name)
    for base in bases:
        if norm == base:
            return 1.0
        if norm.startswith(base + "_"):
            unit = norm[len(base) + 1 :]
            if unit in TIME_UNITS:
                return TIME_UNITS[unit]
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _Table:
    """A parsed text table: header fields, the data as a DataFrame, and the
    file line of the first data row (for error messages)."""

    def __init__(self, src: Source, sep: str) -> None:
        import pandas as pd  # deferred: slow to import

        self.src = src
        self.fields, header_line, self.sep = self._header(sep)
        self.first_line = header_line + 2
        # Bounded lines, and no line wider than the header by far: a parser
        # turns every field of the widest line into a column.
        with src.open_binary() as raw:
            safety.check_line_lengths(
                raw, sep=self.sep, n_fields=len(self.fields), path=src.name
            )
        try:
            self.df = pd.read_csv(
                src.target(),
                sep=self.sep,
                skiprows=header_line + 1,
                header=None,
                keep_default_na=False,
                na_values=[""],
                skipinitialspace=True,
                encoding="utf-8-sig",
                quotechar='"',
            )
        except pd.errors.EmptyDataError:
            self.df = pd.DataFrame({i: [] for i in range(len(self.fields))})
        except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
            msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else exc
            raise self.error(f"malformed rows ({msg})") from exc
        if self.df.shape[1] != len(self.fields):
            raise self.error(
                f"the rows have {self.df.shape[1]} fields but the header names "
                f"{len(self.fields)} columns ({self.sep.join(self.fields)})"
            )
        if len(self.fields) > 1 and self.fields[0] == "":
            # An unnamed first column is a row index (pandas' to_csv default).
            self.fields = self.fields[1:]
            self.df = self.df.iloc[:, 1:].set_axis(range(len(self.fields)), axis=1)

    def error(self, message: str, column: str | None = None) -> SpikeDataError:
        dataset = None if column is None else f"column {column!r}"
        return SpikeDataError(message, path=self.src.name, dataset=dataset)

    def _header(self, sep: str) -> tuple[list[str], int, str]:
        try:
            with self.src.open_binary() as fh:
                lines = safety.iter_lines(
                    fh,
                    max_line=int(safety.limit("MAX_HEADER_BYTES")),
                    path=self.src.name,
                    what="header line",
                )
                for number, raw in enumerate(lines):
                    line = raw.decode("utf-8-sig" if number == 0 else "utf-8")
                    if "\x00" in line:
                        raise self.error("binary data, not CSV text")
                    if line.strip() and not line.lstrip().startswith("#"):
                        break
                    if number >= _HEAD_LINES:
                        raise self.error("no header line in the first lines")
                else:
                    raise self.error(
                        "no header line: the file holds no data; expected a header "
                        "such as 'unit,time' or 't,<unit>,...'"
                    )
        except UnicodeDecodeError as exc:
            raise self.error("not UTF-8 text, so not a CSV file") from exc
        line = line.rstrip("\r\n")
        if sep == "," and "\t" in line and "," not in line:
            sep = "\t"
        # A header field may be as long as the header line itself.
        bound = int(safety.limit("MAX_HEADER_BYTES"))
        csv.field_size_limit(max(csv.field_size_limit(), bound))
        try:
            fields = [f.strip() for f in next(csv.reader([line], delimiter=sep))]
        except csv.Error as exc:
            raise self.error(f"malformed header line ({exc})") from exc
        safety.check_header_fields(line, len(fields), path=self.src.name)
        if all(_is_number(f) for f in fields):
            raise self.error(
                f"no header line: line {number + 1} holds numbers "
                f"({line.strip()[:40]}); expected a header such as 'unit,time' "
                "or 't,<unit>,...'"
            )
        return fields, number, sep

    def numeric(
        self, index: int, *, allow_empty: bool = False, what: str = "value"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Column ``index`` as float64, and the mask of its empty cells."""
        import pandas as pd  # deferred: slow to import

        col = self.df[index]
        name = self.fields[index]
        if pd.api.types.is_numeric_dtype(col):
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
            empty = np.isnan(values)
        else:
            text = col.astype(object).where(col.notna(), "").astype(str).str.strip()
            values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
            empty = (text == "").to_numpy()
            literal = text.str.lower().str.lstrip("+-").isin(["nan"]).to_numpy()
            bad = np.isnan(values) & ~empty & ~literal
            if np.any(bad):
                i = int(np.flatnonzero(bad)[0])
                raise self.error(
                    f"line {self.first_line + i}: {text.iloc[i]!r} is not a number",
                    name,
                )
        if not allow_empty and np.any(empty):
            i = int(np.flatnonzero(empty)[0])
            raise self.error(f"line {self.first_line + i}: empty cell", name)
        nonfinite = ~np.isfinite(values) & ~empty
        if np.any(nonfinite):
            i = int(np.flatnonzero(nonfinite)[0])
            raise self.error(
                f"line {self.first_line + i}: {values[i]} is not a valid {what}; "
                f"{what}s must be finite",
                name,
            )
        return values, empty

    def unit_column(self, index: int) -> np.ndarray:
        import pandas as pd  # deferred: slow to import

        col = self.df[index]
        name = self.fields[index]
        if pd.api.types.is_numeric_dtype(col):
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
            missing = np.isnan(values)
            ids: np.ndarray = values
        else:
            text = col.astype(object).where(col.notna(), "").astype(str).str.strip()
            missing = (text == "").to_numpy()
            ids = text.to_numpy(dtype=str)
        if np.any(missing):
            i = int(np.flatnonzero(missing)[0])
            raise self.error(f"line {self.first_line + i}: missing unit id", name)
        return normalize_unit_ids(ids)


def _layout(fields: Sequence[str]) -> tuple[str, int, int]:
    """('events', unit col, time col) or ('dense', time col, -1)."""
    norms = [_norm(f) for f in fields]
    unit_col = next((i for i, n in enumerate(norms) if n in UNIT_COLUMNS), None)
    time_col = next(
        (i for i, f in enumerate(fields) if time_divisor(f) is not None), None
    )
    if unit_col is not None and time_col is not None:
        return "events", unit_col, time_col
    if fields and time_divisor(fields[0], DENSE_TIME_COLUMNS) is not None:
        return "dense", 0, -1
    return "none", -1, -1


def _int64(text: str) -> int | None:
    """``text`` as an integer when it is one that fits int64, else None."""
    if len(text) > 20 or not re.fullmatch(r"[+-]?\d+", text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def _dense_ids(table: _Table) -> np.ndarray:
    names = table.fields[1:]
    numbers = [_int64(n) for n in names]
    if all(v is not None for v in numbers):
        ids = np.array(numbers, dtype=np.int64)
    else:
        ids = np.array(names, dtype=str)
    seen: set[str] = set()
    for n, number in zip(names, numbers, strict=True):
        key = n if number is None else str(number)
        if key in seen:
            raise table.error(
                f"unit column {n!r} appears twice in the header; unit ids must be "
                "unique"
            )
        seen.add(key)
    return ids


def read(
    src: Source, options: ReadOptions, sep: str = ","
) -> SpikeTrains | DenseSpikes:
    """Read spikes from CSV/TSV text (see :func:`spikerates.io.read_spikes`).

    Events in long format come back with unit ids ascending (numerically when
    every id is a number) and times sorted. ``sep`` is the expected
    separator; a header holding tabs and no commas is read as TSV anyway.
    """
    table = _Table(src, sep)
    layout, first, second = _layout(table.fields)
    if layout == "events":
        return _read_events(table, first, second)
    if layout == "dense":
        return _read_dense(table, options.values, options.dt)
    raise table.error(
        f"header {table.sep.join(table.fields)!r} is neither events (a unit column "
        "and a time column, e.g. 'unit,time') nor dense (a time column 't' then "
        "one column per unit)"
    )


def _read_events(table: _Table, unit_col: int, time_col: int) -> SpikeTrains:
    units = table.unit_column(unit_col)
    times, empty = table.numeric(time_col, allow_empty=True, what="spike time")
    divisor = time_divisor(table.fields[time_col])
    if divisor != 1.0:
        times = times / divisor
    safety.check_times(
        times, path=table.src.name, dataset=f"column {table.fields[time_col]!r}"
    )
    ids, inverse = np.unique(units, return_inverse=True)
    inverse = inverse.ravel()
    keep = ~empty
    order = np.lexsort((times[keep], inverse[keep]))
    counts = np.bincount(inverse[keep], minlength=ids.size)
    spike_times = np.split(times[keep][order], np.cumsum(counts)[:-1])
    info = {
        "format": "tsv" if table.sep == "\t" else "csv",
        "layout": "events",
        "table": "",
        "id_column": table.fields[unit_col],
    }
    return SpikeTrains(
        list(spike_times) if ids.size else [],
        unit_ids=ids,
        source=table.src.name,
        info=info,
    )


def _read_dense(table: _Table, values: str, dt: float | None) -> DenseSpikes:
    import pandas as pd  # deferred: slow to import

    t, _ = table.numeric(0, what="time")
    divisor = time_divisor(table.fields[0], DENSE_TIME_COLUMNS) or 1.0
    if divisor != 1.0:
        t = t / divisor
    safety.check_times(t, path=table.src.name, dataset=f"column {table.fields[0]!r}")
    ids = _dense_ids(table)
    columns = []
    all_int = True
    for j in range(1, len(table.fields)):
        col, _ = table.numeric(j, what="spike value")
        if np.any(col < 0):
            i = int(np.flatnonzero(col < 0)[0])
            raise table.error(
                f"line {table.first_line + i}: {col[i]:g} is negative; spike values "
                "must be >= 0",
                table.fields[j],
            )
        all_int &= pd.api.types.is_integer_dtype(table.df[j])
        columns.append(col)
    spikes = np.column_stack(columns) if columns else np.zeros((t.size, 0), np.float64)
    if all_int and columns:
        spikes = spikes.astype(np.int64)
    try:
        return DenseSpikes(
            t, spikes, unit_ids=ids, values=values, source=table.src.name, dt=dt
        )
    except SpikeDataError as exc:
        column = table.fields[0] if exc.dataset == "t" else None
        if column is not None:
            raise table.error(exc.message, column) from None
        raise


def read_table(src: Source, sep: str = ",") -> dict[str, np.ndarray]:
    """Every column as a float64 array, keyed by its header name."""
    table = _Table(src, sep)
    return {
        name: table.numeric(j, what="value")[0] for j, name in enumerate(table.fields)
    }


def _field(text: str, sep: str) -> str:
    """``text`` quoted for a CSV field when it has to be."""
    if any(c in text for c in (sep, '"', "\n", "\r")) or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def _header_line(names: Sequence[Any], sep: str) -> str:
    return sep.join(_field(str(n), sep) for n in names) + "\n"


def _value_format(dtype: np.dtype) -> str:
    # 9 significant digits round-trip float32.
    return "%.9g" if dtype.kind == "f" and dtype.itemsize <= 4 else "%r"


def _plain(block: np.ndarray) -> np.ndarray:
    if block.dtype.kind == "b":
        return block.astype(np.int64)
    return block


def _block_lines(block: np.ndarray, sep: str, fast: bool = False) -> list[str]:
    """One text line (without newline) per row of a 2-D block.

    float64 values and integers print through ``repr`` of nested lists
    (formatted in C; the shortest text that reads back exactly), or with
    ``fast`` float64 values through :func:`format_float64` (17 significant
    digits, read back exactly, twice as fast); float32 with 9 significant
    digits (read back as the same float32).
    """
    if block.shape[1] == 0:
        return [""] * block.shape[0]
    if not block.shape[0]:
        return []
    if block.dtype.kind == "f" and block.dtype.itemsize <= 4:
        row_format = sep.join(["%.9g"] * block.shape[1])
        return [row_format % tuple(row) for row in block.tolist()]
    if fast and block.dtype.kind == "f" and _FAST_FLOATS:
        # Small pieces stay in cache through the dozen passes of the format.
        step = max(1, _FAST_VALUES // block.shape[1])
        lines: list[str] = []
        for r0 in range(0, block.shape[0], step):
            piece = block[r0 : r0 + step].astype(np.float64, copy=False)
            cells = format_float64(piece)
            rows, cols, width = cells.shape
            joined = np.zeros((rows, cols, width + 1), dtype=np.uint8)
            joined[:, :, :width] = cells
            joined[:, :-1, width] = ord(sep)
            joined[:, -1, width] = ord("\n")
            lines += joined[joined != 0].tobytes().decode("ascii").split("\n")[:-1]
        return lines
    text = repr(block.tolist())
    return text[2:-2].replace("], [", "\n").replace(", ", sep).split("\n")


# Exact 17-digit formatting needs a wider float than float64 to scale values
# by powers of ten (x86 extended precision: 64-bit mantissa).
_FAST_FLOATS = np.finfo(np.longdouble).nmant >= 63
_DIGITS4 = np.array([list(f"{i:04d}".encode()) for i in range(10000)], np.uint8)
_TRAILING4 = np.array(
    [
        4 if i == 0 else len(f"{i:04d}") - len(f"{i:04d}".rstrip("0"))
        for i in range(10000)
    ]
)
_POW10_MIN = -400
_FAST_VALUES = 8192  # values formatted at a time
_CELL = 24  # "-d.dddddddddddddddde-308"


def format_float64(values: np.ndarray) -> np.ndarray:
    """Text of float64 values, vectorised: 17 significant digits in
    scientific notation with trailing zeros dropped (``1.25e+01``), which
    read back as exactly the same float64 values. Zeros, infinities, NaN
    and subnormal numbers print as ``repr`` (``0.0``, ``inf``, ``nan``).

    Parameters
    ----------
    values : ndarray of float64, any shape S

    Returns
    -------
    ndarray of uint8, shape S + (24,)
        ASCII bytes of each value, padded with NUL bytes.
    """
    shape = values.shape
    v = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    a = np.abs(v)
    normal = np.isfinite(a) & (a >= np.finfo(np.float64).tiny)
    everywhere = bool(normal.all())
    x = a if everywhere else a[normal]
    # 17 digits d = round(x * 10**(16 - e)) with 1e16 <= d < 1e17; the
    # product in extended precision errs by far less than the half unit
    # that rounding to 17 digits allows, so d reads back as x.
    exp10 = np.floor(np.log10(x)).astype(np.int64)
    digits = _scaled_digits(x, exp10)
    for wrong, step in ((digits >= 10**17, 1), (digits < 10**16, -1)):
        if np.any(wrong):
            exp10[wrong] += step
            digits[wrong] = _scaled_digits(x[wrong], exp10[wrong])
    cells = np.zeros((x.size, _CELL), dtype=np.uint8)
    negative = v < 0 if everywhere else v[normal] < 0
    cells[:, 0] = negative * ord("-")
    groups = []
    for _ in range(4):
        digits, group = np.divmod(digits, 10000)
        groups.append(group)
    cells[:, 1] = digits + ord("0")
    cells[:, 2] = ord(".")
    for j, group in enumerate(reversed(groups)):
        cells[:, 3 + 4 * j : 7 + 4 * j] = _DIGITS4[group]
    # Trailing zeros of the 16 fraction digits, from those of each group.
    zeros = np.zeros(x.size, dtype=np.int64)
    still = np.ones(x.size, dtype=bool)
    for group in groups:
        count = _TRAILING4[group]
        zeros += np.where(still, count, 0)
        still &= group == 0
    keep = 16 - zeros
    cells[:, 3:19][np.arange(16)[None, :] >= keep[:, None]] = 0
    cells[keep == 0, 2] = 0
    magnitude = np.abs(exp10)
    cells[:, 19] = ord("e")
    cells[:, 20] = np.where(exp10 < 0, ord("-"), ord("+"))
    cells[:, 21] = np.where(magnitude >= 100, magnitude // 100 + ord("0"), 0)
    cells[:, 22] = (magnitude // 10) % 10 + ord("0")
    cells[:, 23] = magnitude % 10 + ord("0")
    if everywhere:
        return cells.reshape(*shape, _CELL)
    out = np.zeros((v.size, _CELL), dtype=np.uint8)
    out[normal] = cells
    special = ~normal
    for text in (b"0.0", b"-0.0", b"inf", b"-inf", b"nan"):
        value = float(text)
        same = (
            np.isnan(v)
            if text == b"nan"
            else (v == value) & (np.signbit(v) == np.signbit(value))
        )
        out[same, : len(text)] = np.frombuffer(text, dtype=np.uint8)
        special &= ~same
    for i in np.flatnonzero(special).tolist():  # subnormal numbers
        text = repr(float(v[i])).encode("ascii")
        out[i, : len(text)] = np.frombuffer(text, dtype=np.uint8)
    return out.reshape(*shape, _CELL)


def _scaled_digits(x: np.ndarray, exp10: np.ndarray) -> np.ndarray:
    power = _POW10[16 - exp10 - _POW10_MIN]
    return np.rint(x.astype(np.longdouble) * power).astype(np.int64)


_POW10 = np.power(
    np.longdouble(10), np.arange(_POW10_MIN, -_POW10_MIN, dtype=np.longdouble)
)


def _decimal_near(value: float, tolerance: float, max_digits: int) -> str | None:
    """The decimal text with the fewest decimals within ``tolerance`` of
    ``value`` and at most ``max_digits`` significant digits, or None."""
    from decimal import Decimal

    for decimals in range(0, 25):
        text = f"{value:.{decimals}f}"
        if abs(float(text) - value) <= tolerance:
            if float(text) == 0:
                return "0"
            digits = Decimal(text).normalize().as_tuple().digits
            return text if len(digits) <= max_digits else None
    return None


def _scaled(text: str) -> tuple[int, int]:
    """Decimal text as (integer, number of decimals): ``"0.025"`` -> (25, 3)."""
    from decimal import Decimal

    exponent = Decimal(text).as_tuple().exponent
    assert isinstance(exponent, int)
    decimals = max(0, -exponent)
    return int(Decimal(text).scaleb(decimals)), decimals


class GridText:
    """Prints the times of a uniform grid ``t_start + (k+1)*dt`` as the
    decimals the grid defines: ``0.009`` rather than the float64 product
    ``0.009000000000000001``.

    A step with a decimal of at most 12 significant digits (``0.001``,
    ``0.0025``; the shortest text of a given ``dt``, or for a step inferred
    from times the shortest decimal within its float rounding, passed as
    ``dt_tolerance`` in seconds) makes a decimal grid; each
    time is computed from integers, so text read back and written again is
    the same text. Other steps (``1/30000``) print each time as ``repr``,
    as do times off the grid.
    """

    #: Largest scaled integer handled exactly.
    _LIMIT = 2**62
    #: Most significant digits of a decimal step.
    _STEP_DIGITS = 12

    def __init__(self, t_start: float, dt: float, *, dt_tolerance: float = 0.0) -> None:
        self.t_start = float(t_start)
        self.dt = float(dt)
        self.usable = bool(
            np.isfinite(self.dt) and self.dt > 0 and np.isfinite(self.t_start)
        )
        if not self.usable:
            return
        dt_text = _decimal_near(self.dt, dt_tolerance, self._STEP_DIGITS)
        # The start is a float too: the decimal nearest it at float precision.
        start_tol = 8 * np.finfo(np.float64).eps * max(abs(self.t_start), self.dt)
        start_text = _decimal_near(self.t_start, start_tol, 17)
        if dt_text is None or start_text is None:
            self.usable = False
            return
        dt_int, dt_dec = _scaled(dt_text)
        start_int, start_dec = _scaled(start_text)
        self.decimals = max(dt_dec, start_dec, 1)
        self.dt_int = dt_int * 10 ** (self.decimals - dt_dec)
        self.start_int = start_int * 10 ** (self.decimals - start_dec)

    @classmethod
    def from_times(cls, t: np.ndarray, dt: float | None = None) -> GridText:
        """The grid of the times ``t`` (step ``dt`` if known, else inferred)."""
        t = np.asarray(t, dtype=np.float64)
        tolerance = 0.0
        if dt is None:
            if t.size < 2:
                return cls(0.0, float("nan"))
            dt = float((t[-1] - t[0]) / (t.size - 1))
            # What float rounding of the times can do to the inferred step.
            eps = np.finfo(np.float64).eps
            tolerance = 4 * eps * (abs(t[0]) + abs(t[-1])) / (t.size - 1)
        return cls(float(t[0] - dt) if t.size else 0.0, dt, dt_tolerance=tolerance)

    def format(self, t: np.ndarray) -> list[str]:
        """Text of each time in ``t`` (seconds)."""
        t = np.asarray(t, dtype=np.float64)
        if not self.usable or not t.size:
            return [repr(v) for v in t.tolist()]
        steps = np.rint((t - self.t_start) / self.dt)
        # Float noise: a few ulps of the largest time.
        tolerance = 64 * np.finfo(np.float64).eps * float(np.max(np.abs(t)) + self.dt)
        scaled_max = abs(self.start_int) + float(np.max(np.abs(steps))) * self.dt_int
        if scaled_max >= self._LIMIT:
            return [repr(v) for v in t.tolist()]
        values = self.start_int + steps.astype(np.int64) * self.dt_int
        scale = 10**self.decimals
        if np.any(np.abs(values / scale - t) > tolerance):
            return [repr(v) for v in t.tolist()]
        out = []
        for v in values.tolist():
            whole, frac = divmod(abs(v), scale)
            digits = str(frac).rjust(self.decimals, "0").rstrip("0") or "0"
            out.append(f"{'-' if v < 0 else ''}{whole}.{digits}")
        return out


def write_rows(
    fh: IO[str],
    columns: Sequence[np.ndarray],
    sep: str,
    *,
    times: GridText | None = None,
    fast: bool = False,
) -> None:
    """Write 1-D or 2-D column blocks side by side, one text row per index.

    With ``times``, the first column holds grid times printed by it;
    ``fast`` formats float64 blocks with :func:`format_float64`.
    """
    blocks = [_plain(np.asarray(c)) for c in columns]
    blocks = [b.reshape(-1, 1) if b.ndim == 1 else b for b in blocks]
    n_rows = blocks[0].shape[0] if blocks else 0
    for r0 in range(0, n_rows, _WRITE_ROWS):
        r1 = min(r0 + _WRITE_ROWS, n_rows)
        parts = []
        for i, block in enumerate(blocks):
            if i == 0 and times is not None:
                parts.append(times.format(block[r0:r1, 0]))
            elif block.shape[1]:
                parts.append(_block_lines(block[r0:r1], sep, fast))
        if parts:
            fh.write("".join(sep.join(row) + "\n" for row in zip(*parts, strict=True)))


def write_events(fh: IO[str], trains: SpikeTrains, sep: str = ",") -> None:
    """Long format ``unit,time``: units in order, times ascending (each as
    the shortest text that reads back as the same float64); a unit with no
    spikes gets one row with an empty time."""
    fh.write(_header_line(["unit", "time"], sep))
    for uid, times in zip(trains.unit_ids.tolist(), trains.spike_times, strict=True):
        key = _field(str(uid), sep)
        if times.size == 0:
            fh.write(f"{key}{sep}\n")
            continue
        prefix = key + sep
        for i0 in range(0, times.size, _WRITE_ROWS * 16):
            text = repr(times[i0 : i0 + _WRITE_ROWS * 16].tolist())[1:-1]
            fh.write(prefix + text.replace(", ", "\n" + prefix) + "\n")


def write_dense(
    fh: IO[str],
    t: np.ndarray,
    spikes: np.ndarray,
    unit_ids: np.ndarray,
    sep: str = ",",
    *,
    dt: float | None = None,
) -> None:
    """Header ``t,<unit>,...`` then one row per time step; the times print as
    the decimals of their grid (see :class:`GridText`)."""
    fh.write(_header_line(["t", *unit_ids.tolist()], sep))
    t = np.asarray(t)
    write_rows(fh, [t, np.asarray(spikes)], sep, times=GridText.from_times(t, dt))


def write_columns(fh: IO[str], columns: Mapping[str, Any], sep: str = ",") -> None:
    """One column per entry (all 1-D of one length), header = the names."""
    arrays = [np.asarray(v) for v in columns.values()]
    lengths = {a.shape for a in arrays}
    if any(a.ndim != 1 for a in arrays) or len(lengths) > 1:
        shapes = ", ".join(f"{k} {np.shape(v)}" for k, v in columns.items())
        raise ValueError(f"CSV columns must be 1-D of one length; got {shapes}")
    fh.write(_header_line(list(columns), sep))
    if arrays:
        write_rows(fh, arrays, sep)


class MatrixBackend:
    """Rows of a (n_rows, N) matrix appended to a text file ``t,<unit>,...``."""

    def __init__(
        self,
        path: str,
        *,
        name: str,
        n_rows: int,
        unit_ids: np.ndarray,
        dtype: np.dtype,
        attrs: Mapping[str, Any] | None = None,
        sep: str = ",",
    ) -> None:
        self.sep = sep
        self.dtype = np.dtype(dtype)
        self.attrs = dict(attrs or {})
        self.times: GridText | None = None
        dt, t_start = self.attrs.get("dt"), self.attrs.get("t_start")
        if isinstance(dt, int | float) and isinstance(t_start, int | float):
            self.times = GridText(float(t_start), float(dt))
        self.fh = open(path, "w", encoding="utf-8", newline="\n")
        self.fh.write(_header_line(["t", *np.asarray(unit_ids).tolist()], sep))

    def write(self, row: int, t_chunk: np.ndarray, values: np.ndarray) -> None:
        t_chunk = np.asarray(t_chunk, dtype=np.float64)
        if self.times is None:
            dt = self.attrs.get("dt")
            self.times = GridText.from_times(
                t_chunk, float(dt) if isinstance(dt, int | float) else None
            )
        # Streamed matrices are the large outputs: the fast float format.
        write_rows(
            self.fh,
            [t_chunk, values.astype(self.dtype)],
            self.sep,
            times=self.times,
            fast=True,
        )

    def close(self) -> None:
        self.fh.close()


@contextmanager
def _text_file(path: str) -> Iterator[IO[str]]:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        yield fh


def _events_to_path(
    path: str,
    trains: SpikeTrains,
    *,
    sep: str,
    extra: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    with _text_file(path) as fh:
        write_events(fh, trains, sep)


def _dense_to_path(
    path: str,
    t: np.ndarray,
    spikes: np.ndarray,
    unit_ids: np.ndarray,
    *,
    sep: str,
    name: str = "spikes",
    extra: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    with _text_file(path) as fh:
        dt = (attrs or {}).get("dt")
        write_dense(
            fh, t, spikes, unit_ids, sep, dt=dt if isinstance(dt, int | float) else None
        )


def _arrays_to_path(
    path: str,
    arrays: Mapping[str, Any],
    *,
    sep: str,
    attrs: Mapping[str, Any] | None = None,
    columns: Mapping[str, Any] | None = None,
) -> None:
    with _text_file(path) as fh:
        write_columns(fh, arrays if columns is None else columns, sep)


def _entry(name: str, sep: str, sniff: Any) -> Format:
    """The registry entry of a text format with separator ``sep``; writers
    drop ``extra`` arrays and ``attrs``, which text has no place for."""
    return register(
        Format(
            spec=format_spec(name),
            sniff=sniff,
            read=functools.partial(read, sep=sep),
            read_table=functools.partial(read_table, sep=sep),
            write_events=functools.partial(_events_to_path, sep=sep),
            write_dense=functools.partial(_dense_to_path, sep=sep),
            write_arrays=functools.partial(_arrays_to_path, sep=sep),
            matrix_backend=functools.partial(MatrixBackend, sep=sep),
        )
    )


# Text is what is left when no binary signature matches, so CSV has no rule
# of its own: it is the fallback of content sniffing.
TSV = _entry("tsv", "\t", lambda src: first_line_is_tab_separated(src.head()))
CSV = _entry("csv", ",", None)
