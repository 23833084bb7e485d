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


def _block_lines(block: np.ndarray, sep: str) -> list[str]:
    """One text line (without newline) per row of a 2-D block.

    float64 values and integers print through ``repr`` of nested lists
    (formatted in C; the shortest text that reads back exactly); float32
    with 9 significant digits (read back as the same float32).
    """
    if block.shape[1] == 0:
        return [""] * block.shape[0]
    if not block.shape[0]:
        return []
    if block.dtype.kind == "f" and block.dtype.itemsize <= 4:
        row_format = sep.join(["%.9g"] * block.shape[1])
        return [row_format % tuple(row) for row in block.tolist()]
    text = repr(block.tolist())
    return text[2:-2].replace("], [", "\n").replace(", ", sep).split("\n")


# Exact formatting needs a wider float than float64 to scale values by
# powers of ten (x86 extended precision: 64-bit mantissa).
_FAST_FLOATS = np.finfo(np.longdouble).nmant >= 63
_FAST_VALUES = 32768  # values formatted at a time
_POW10_MIN = -400
_POW10 = np.power(
    np.longdouble(10), np.arange(_POW10_MIN, -_POW10_MIN, dtype=np.longdouble)
)
# Exact powers of ten: int64 up to 10**18, float64 up to 1e22.
_P_INT = 10 ** np.arange(19, dtype=np.int64)
_P_FLOAT = 10.0 ** np.arange(23)
_TWO53 = 2**53
# Masks of a little-endian uint64 word (byte 0 is the first character):
# its first k bytes; its last k bytes; the k bytes that end at byte 6.
_FIRST = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
_LAST = np.array([(1 << 64) - (1 << (8 * (8 - k))) for k in range(9)], dtype=np.uint64)
_LAST7 = np.array([(1 << 56) - (1 << (8 * (7 - k))) for k in range(8)], dtype=np.uint64)
# ASCII of 0000..9999 in the first four bytes of a word.
_ASCII4 = np.array(
    [int.from_bytes(f"{i:04d}".encode(), "little") for i in range(10000)],
    dtype=np.uint64,
)
# "dddd.0" of 0..9999 in bytes 2 to 7 of a word.
_COUNT_WORDS = np.array(
    [int.from_bytes(f"{i}.0".rjust(8, "\0").encode(), "little") for i in range(10000)],
    dtype=np.uint64,
)
_ZERO_POINT = np.uint64(int.from_bytes(b"\0\0" + b"0.", "little"))
_EXP_MIN = -400
_EXP_WORDS = np.array(
    [
        int.from_bytes(f"e{'-' if e < 0 else '+'}{abs(e):02d}".encode(), "little")
        for e in range(_EXP_MIN, -_EXP_MIN)
    ],
    dtype=np.uint64,
)


def _ascii8(n: np.ndarray) -> np.ndarray:
    """The 8 digits of each integer ``0 <= n < 10**8`` (zero padded) as the
    bytes of a little-endian uint64 word."""
    high = n // 10000
    return _ASCII4[high] | (_ASCII4[n - high * 10000] << np.uint64(32))


def _reads_back(cand: np.ndarray, s: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Whether the decimal ``cand * 10**s`` reads back as the float64 ``x``."""
    # The product or quotient of two exact floats is correctly rounded, as
    # reading the decimal is: exact when cand <= 2**53 and |s| <= 22.
    cf = cand.astype(np.float64)
    if s.max() < 0:
        back = cf / _P_FLOAT[np.minimum(-s, 22)]
    else:
        back = np.where(
            s >= 0, cf * _P_FLOAT[s.clip(0, 22)], cf / _P_FLOAT[(-s).clip(0, 22)]
        )
    ok = back == x
    inexact = cand > _TWO53
    if s.min() < -22 or s.max() > 22:
        inexact |= (s < -22) | (s > 22)
    if inexact.any():
        ok[inexact] = _near(cand[inexact], s[inexact], x[inexact])
    return ok


def _near(cand: np.ndarray, s: np.ndarray, x: np.ndarray) -> np.ndarray:
    """:func:`_reads_back` in extended precision: inside the rounding
    interval of ``x`` by a margin far above the rounding error of the test,
    else decided with Python integers."""
    with np.errstate(over="ignore"):
        gap = np.spacing(x) / 2
    # The largest float: past its upper gap, inf.
    gap = np.where(np.isfinite(gap), gap, np.spacing(np.nextafter(x, 0)) / 2)
    power_of_two = (x.view(np.int64) & ((1 << 52) - 1)) == 0
    error = cand.astype(np.longdouble) * _POW10[s - _POW10_MIN] - x
    with np.errstate(divide="ignore"):
        ratio = np.where(error < 0, -error / np.where(power_of_two, gap / 2, gap), 0)
        ratio = np.where(error < 0, ratio, error / gap)
    margin = 1 - 2.0**-8
    inside = ratio < margin
    for i in np.flatnonzero((ratio >= margin) & (ratio <= 1 / margin)).tolist():
        c, p = int(cand[i]), int(s[i])
        try:
            inside[i] = (float(c * 10**p) if p >= 0 else c / 10**-p) == x[i]
        except OverflowError:  # past the largest float: reads as inf
            inside[i] = False
    return inside


def _shortest_digits(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fewest significant digits that read back as ``x``.

    Parameters
    ----------
    x : ndarray of float64, shape (n,)
        Positive, finite, normal numbers.

    Returns
    -------
    digits, n_digits, exp10 : ndarray of int64, shape (n,)
        ``x == float(digits * 10**(exp10 - n_digits + 1))``, ``digits``
        having ``n_digits`` digits.
    """
    e = np.floor(np.log10(x)).astype(np.int64)
    xl = x.astype(np.longdouble)
    # 17 digits, scaled in extended precision, read back as x: the product
    # errs by far less than the half unit that rounding to 17 digits allows.
    scaled = xl * _POW10[16 - e - _POW10_MIN]
    full = (scaled + 0.5).astype(np.int64)
    for wrong, step in ((full >= 10**17, 1), (full < 10**16, -1)):
        if np.any(wrong):
            e[wrong] += step
            scaled[wrong] = xl[wrong] * _POW10[16 - e[wrong] - _POW10_MIN]
            full[wrong] = (scaled[wrong] + 0.5).astype(np.int64)
    digits = full.copy()
    n_digits = np.full(x.size, 17, dtype=np.int64)
    power_of_two = (x.view(np.int64) & ((1 << 52) - 1)) == 0
    # Drop one digit more while the rounded digits read back as x.
    alive = None  # every value, at the first step
    for k in range(1, 17):
        full_k, x_k, e_k = (
            (full, x, e) if alive is None else (full[alive], x[alive], e[alive])
        )
        half = 5 * _P_INT[k - 1]
        cand = (full_k + half) // _P_INT[k]
        s = e_k + (k - 16)
        ok = _reads_back(cand, s, x_k)
        scaled_back = cand * _P_INT[k]
        # Dropped digits 50..0, rounded up: when x is below them, the digits
        # rounded down are nearer (and may be the only ones that read back).
        below = np.flatnonzero(full_k + half == scaled_back)
        if below.size:
            where = below if alive is None else alive[below]
            below = below[scaled[where] < full[where]]
        if below.size:
            other = cand[below] - 1
            fits = _reads_back(other, s[below], x_k[below])
            cand[below] = np.where(fits, other, cand[below])
            ok[below] |= fits
        # A power of two has a gap below half the one above: the digits on
        # the far side may read back when the nearest do not.
        lone = np.flatnonzero(
            ~ok & (power_of_two if alive is None else power_of_two[alive])
        )
        if lone.size:
            other = cand[lone] + np.where(scaled_back[lone] <= full_k[lone], 1, -1)
            fits = _reads_back(other, s[lone], x_k[lone])
            cand[lone] = np.where(fits, other, cand[lone])
            ok[lone] = fits
        # Trailing zeros of the 17 digits go, whatever the exponent.
        ok |= scaled_back == full_k
        where = np.flatnonzero(ok)
        if not where.size:
            break
        alive = where if alive is None else alive[where]
        cand = cand[where]
        digits[alive] = cand
        n_digits[alive] = 17 - k
        # Rounded up to a power of ten: the single digit 1.
        up = cand == _P_INT[17 - k]
        if up.any():
            top = alive[up]
            digits[top], n_digits[top] = 1, 1
            e[top] += 1
            alive = alive[~up]
            if not alive.size:
                break
    return digits, n_digits, e


def _words(
    lead: np.ndarray,
    whole: np.ndarray,
    n_whole: np.ndarray,
    frac: np.ndarray,
    n_frac: np.ndarray,
    exp_word: np.ndarray | None,
    below_one: np.ndarray | None = None,
) -> np.ndarray:
    """Text cells ``<sep>[-]<whole>[.<frac>][e<exp>]`` as little-endian
    uint64 words padded with NUL bytes, shape (n, words): ``lead`` holds
    the separator and sign (bytes 0 and 1), ``whole`` (< 10**13) gets
    ``n_whole`` digits, ``frac`` zero padded to ``n_frac`` digits (at most
    16, or 20 where ``below_one``: whole 0; no point when 0), ``exp_word``
    as it is."""
    size = whole.size
    big = bool(size) and whole.max() >= 10**5
    out = np.empty((size, 3 + big + (exp_word is not None)), np.uint64)
    dot = (n_frac > 0).astype(np.uint64) * np.uint64(ord(".") << 56)
    # The whole part ends at byte 6 of a word and the point is byte 7.
    if big:
        high, low = np.divmod(whole, 10**7)
        out[:, 0] = lead | (_ascii8(high) & _LAST[np.clip(n_whole - 7, 0, 6)])
        digits = _ascii8(low) >> np.uint64(8)
        out[:, 1] = (digits & _LAST7[np.minimum(n_whole, 7)]) | dot
    else:
        digits = _ascii8(whole) >> np.uint64(8)
        out[:, 0] = (digits & _LAST7[n_whole]) | lead | dot
    # The fraction left-aligned in the next two words.
    head = frac * _P_INT[np.clip(16 - n_frac, 0, 16)]
    n_rest = n_frac
    if below_one is not None and below_one.any():
        # "0." and the first 4 digits of the fraction in the first word.
        where = np.flatnonzero(below_one)
        n_small, small = n_frac[where], frac[where]
        first, rest = np.divmod(small, _P_INT[np.maximum(n_small - 4, 0)])
        first *= _P_INT[np.maximum(4 - n_small, 0)]
        chars = _ASCII4[first] & _FIRST[np.minimum(n_small, 4)]
        out[where, 0] = lead[where] | _ZERO_POINT | (chars << np.uint64(32))
        if big:
            out[where, 1] = 0
        head[where] = rest * _P_INT[np.clip(20 - n_small, 0, 16)]
        n_rest = n_frac.copy()
        n_rest[where] = np.maximum(n_small - 4, 0)
    i = 1 + big
    first, rest = np.divmod(head, 10**8)
    out[:, i] = _ascii8(first) & _FIRST[np.minimum(n_rest, 8)]
    out[:, i + 1] = _ascii8(rest) & _FIRST[np.clip(n_rest - 8, 0, 8)]
    if exp_word is not None:
        out[:, -1] = exp_word
    return out


def _general_words(
    a: np.ndarray,
    integer: np.ndarray,
    general: np.ndarray,
    fallback: np.ndarray,
    lead: np.ndarray,
) -> np.ndarray:
    """:func:`_words` of the absolute values ``a``: integers as they are,
    ``general`` values by their shortest digits (``fallback`` is updated
    with the values they leave to ``repr``)."""
    # A stand-in with 17 digits keeps the other values out of the digit
    # search at its first step.
    x = np.where(general, a, 0.1 + 0.2)
    digits, n_digits, e = _shortest_digits(x)
    positional = (e >= -4) & (e < 13)
    point = np.where(positional, n_digits - 1 - e, n_digits - 1)
    whole, frac = np.divmod(digits, _P_INT[point.clip(0, 18)])
    n_whole = np.where(positional, np.maximum(e + 1, 1), 1)
    exp_word = None
    if not positional[general].all():
        index = np.clip(e, _EXP_MIN, -_EXP_MIN - 1) - _EXP_MIN
        exp_word = np.where(positional | ~general, 0, _EXP_WORDS[index])
    # From 1e13 to 1e16 repr prints every digit before the point.
    fallback |= general & (e >= 13) & (e < 16)
    if integer.any():
        ints = np.where(integer, a, 0).astype(np.int64)
        whole = np.where(integer, ints, whole)
        frac = np.where(integer, 0, frac)
        point = np.where(integer, 1, point)
        if ints.max() > 9:
            count = np.searchsorted(_P_INT, ints, side="right").clip(1)
            n_whole = np.where(integer, count, n_whole)
        else:
            n_whole = np.where(integer, 1, n_whole)
    # Stand-ins (for inf, NaN...) too: they are below one, and replaced.
    below_one = positional & (e < 0) & ~integer
    return _words(lead, whole, n_whole, frac, point, exp_word, below_one)


def _float_words(values: np.ndarray, sep: str) -> np.ndarray:
    """``<sep><text>`` of each float64 value as uint64 words padded with NUL
    bytes, shape (n, words): the shortest text that reads back as the same
    value, printed as ``repr`` prints it (positional from 1e-4 to 1e16,
    else ``1.5e-07``)."""
    v = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    a = np.abs(v)
    negative = np.signbit(v)
    integer = (a < 1e13) & (a == np.floor(a))  # zeros too, never NaN
    lead = negative.astype(np.uint64) * np.uint64(ord("-") << 8) | np.uint64(ord(sep))
    if integer.all():
        whole = a.astype(np.int64)
        if not v.size or whole.max() < 10**4:
            # Counts: one word, "<sep>[-]dddd.0".
            return (_COUNT_WORDS[whole] | lead).reshape(-1, 1)
        # Digits of the whole part: 1 + floor(log10), exact for integers.
        n_whole = np.searchsorted(_P_INT, whole, side="right").clip(1)
        n_frac = np.ones(v.size, dtype=np.int64)
        return _words(lead, whole, n_whole, np.zeros_like(whole), n_frac, None)
    general = ~integer & np.isfinite(a) & (a >= np.finfo(np.float64).tiny)
    fallback = ~(integer | general)
    out = _general_words(a, integer, general, fallback, lead)
    cells = out.view(np.uint8)
    for i in np.flatnonzero(fallback).tolist():  # inf, NaN, subnormal, big
        text = repr(float(v[i])).encode("ascii")
        cells[i, 1:] = 0
        cells[i, 1 : 1 + len(text)] = np.frombuffer(text, dtype=np.uint8)
    return out


def format_float64(values: np.ndarray) -> np.ndarray:
    """Text of float64 values, vectorised: the shortest text that reads back
    as exactly the same float64, as ``repr`` prints it (``12.5``, ``0.1``,
    ``3.0``, ``1.5e-07``; in rare cases a different last digit or one digit
    more than ``repr``, never a different value).

    Parameters
    ----------
    values : ndarray of float64, any shape S

    Returns
    -------
    ndarray of uint8, shape S + (W,)
        ASCII bytes of each value, padded with NUL bytes (anywhere in the
        cell: drop them to read the text).
    """
    cells = _float_words(values, "\0").view(np.uint8)
    return cells.reshape(*np.shape(values), cells.shape[-1])


def _float_rows(t_cells: np.ndarray, block: np.ndarray, sep: str) -> Iterator[bytes]:
    """Text rows ``<time><sep><value>...`` (each ending with a newline) of a
    (R, N) float64 block, in pieces of about ``_FAST_VALUES`` values; the
    times given as ASCII cells (R, W) padded with NUL bytes."""
    n_rows, n_cols = block.shape
    step = max(1, _FAST_VALUES // max(n_cols, 1))
    for r0 in range(0, n_rows, step):
        r1 = min(r0 + step, n_rows)
        cells = _float_words(block[r0:r1], sep).view(np.uint8).reshape(r1 - r0, -1)
        width = t_cells.shape[1]
        rows = np.empty((r1 - r0, width + cells.shape[1] + 1), dtype=np.uint8)
        rows[:, :width] = t_cells[r0:r1]
        rows[:, width:-1] = cells
        rows[:, -1] = ord("\n")
        yield rows.tobytes().translate(None, b"\0")


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

    def _scaled(self, t: np.ndarray) -> np.ndarray | None:
        """Times ``t`` (non-empty) as integers in units of 10**-decimals s,
        or None when they are not on the grid."""
        if not self.usable:
            return None
        steps = np.rint((t - self.t_start) / self.dt)
        # Float noise: a few ulps of the largest time.
        tolerance = 64 * np.finfo(np.float64).eps * float(np.max(np.abs(t)) + self.dt)
        scaled_max = abs(self.start_int) + float(np.max(np.abs(steps))) * self.dt_int
        if scaled_max >= self._LIMIT:
            return None
        values = self.start_int + steps.astype(np.int64) * self.dt_int
        if np.any(np.abs(values / 10**self.decimals - t) > tolerance):
            return None
        return values

    def format(self, t: np.ndarray) -> list[str]:
        """Text of each time in ``t`` (seconds)."""
        t = np.asarray(t, dtype=np.float64)
        values = self._scaled(t) if t.size else None
        if values is None:
            return [repr(v) for v in t.tolist()]
        scale = 10**self.decimals
        out = []
        for v in values.tolist():
            whole, frac = divmod(abs(v), scale)
            digits = str(frac).rjust(self.decimals, "0").rstrip("0") or "0"
            out.append(f"{'-' if v < 0 else ''}{whole}.{digits}")
        return out

    def cells(self, t: np.ndarray) -> np.ndarray:
        """The texts of :meth:`format` as ASCII bytes padded with NUL bytes,
        shape (len(t), W), computed vectorised."""
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        usable = self.usable and t.size and self.decimals <= 16
        values = self._scaled(t) if usable else None
        if values is not None:
            whole, frac = np.divmod(np.abs(values), 10**self.decimals)
            if whole.max() < 10**13:
                # Trailing zeros of the decimals go; one digit stays.
                n_frac = np.full(t.size, self.decimals, dtype=np.int64)
                for _ in range(self.decimals - 1):
                    zero = (frac % 10 == 0) & (n_frac > 1)
                    frac = np.where(zero, frac // 10, frac)
                    n_frac -= zero
                n_whole = np.searchsorted(_P_INT, whole, side="right").clip(1)
                lead = (values < 0).astype(np.uint64) * np.uint64(ord("-") << 8)
                words = _words(lead, whole, n_whole, frac, n_frac, None)
                return words.view(np.uint8).reshape(t.size, -1)
        texts = np.array(self.format(t), dtype=bytes)
        return texts.view(np.uint8).reshape(t.size, texts.itemsize)


def write_rows(
    fh: IO[str],
    columns: Sequence[np.ndarray],
    sep: str,
    *,
    times: GridText | None = None,
) -> None:
    """Write 1-D or 2-D column blocks side by side, one text row per index.

    With ``times``, the first column holds grid times printed by it.
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
                parts.append(_block_lines(block[r0:r1], sep))
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
        self.fh = open(path, "wb")
        header = _header_line(["t", *np.asarray(unit_ids).tolist()], sep)
        self.fh.write(header.encode("utf-8"))

    def write(self, row: int, t_chunk: np.ndarray, values: np.ndarray) -> None:
        t_chunk = np.asarray(t_chunk, dtype=np.float64)
        if self.times is None:
            dt = self.attrs.get("dt")
            self.times = GridText.from_times(
                t_chunk, float(dt) if isinstance(dt, int | float) else None
            )
        block = np.asarray(values).astype(self.dtype, copy=False)
        if block.ndim == 1:
            block = block.reshape(t_chunk.size, -1)
        if self.dtype == np.float64 and _FAST_FLOATS:
            # Streamed matrices are the large outputs: the vectorised format.
            t_cells = self.times.cells(t_chunk)
            for piece in _float_rows(t_cells, block, self.sep):
                self.fh.write(piece)
            return
        times = self.times.format(t_chunk)
        lines = _block_lines(_plain(block), self.sep)
        if block.shape[1]:
            times = [t + self.sep + line for t, line in zip(times, lines, strict=True)]
        self.fh.write("".join(t + "\n" for t in times).encode("ascii"))

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
