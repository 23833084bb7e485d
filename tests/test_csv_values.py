"""CSV value text: the vectorised float64 format against Python's ``repr``
(the shortest text that reads back exactly), and streamed matrices that
read back bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import spikerates.io as sio
from spikerates.io.csv import _FAST_FLOATS, format_float64

pytestmark = pytest.mark.skipif(
    not _FAST_FLOATS, reason="the vectorised format needs extended precision"
)


def _texts(values: np.ndarray) -> list[str]:
    cells = format_float64(values)
    return [
        bytes(c[c != 0]).decode("ascii") for c in cells.reshape(-1, cells.shape[-1])
    ]


def _many_values() -> np.ndarray:
    rng = np.random.default_rng(11)
    powers = 10.0 ** np.arange(-300, 300)
    twos = 2.0 ** np.arange(-1000, 1000)
    return np.concatenate(
        [
            rng.gamma(2.0, 5.0, 20000),
            -rng.gamma(2.0, 5.0, 5000) * 1e-3,
            rng.standard_normal(20000) * 10.0 ** rng.integers(-307, 307, 20000),
            rng.standard_normal(20000) * 10.0 ** rng.integers(-8, 17, 20000),
            powers,
            np.nextafter(powers, 0),
            np.nextafter(powers, np.inf),
            twos,
            np.nextafter(twos, 0),
            # Short decimals: binary fractions, cents, rounded rates.
            rng.integers(0, 10**6, 5000) / 2.0 ** rng.integers(0, 10, 5000),
            rng.integers(-(10**6), 10**6, 5000) * 0.01,
            np.round(rng.gamma(2.0, 5.0, 5000), 3),
            rng.integers(0, 10**12, 2000).astype(np.float64),
        ]
    )


@pytest.mark.parametrize(
    "value",
    [
        12.5,
        0.1,
        0.1 + 0.2,
        1 / 3,
        100.0,
        0.0,
        -0.0,
        -3.0,
        9999.0,
        12345678.0,
        1e-05,
        1.5e-07,
        0.0001,
        9.999999999999999e-05,
        1e22,
        1e16,
        1e13,
        1.5e14,
        123456789012.5,
        -12.345678901234567,
        5e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        float("inf"),
        float("-inf"),
        float("nan"),
    ],
)
def test_format_is_repr_on_chosen_values(value):
    # Alone (the integer fast path when integral) and among other values.
    assert _texts(np.array([value])) == [repr(value)]
    assert _texts(np.array([value, 0.5, 7.0]))[0] == repr(value)


def test_format_reads_back_exactly_and_is_as_short_as_repr():
    values = _many_values()
    # A strided 2-D view, as blocks of a matrix may be.
    block = values.reshape(-1, 2)[:, ::-1]
    texts = _texts(block)
    values = block.reshape(-1)
    back = np.array([float(t) for t in texts])
    np.testing.assert_array_equal(back, values)
    assert np.array_equal(np.signbit(back), np.signbit(values))
    reprs = [repr(float(v)) for v in values]
    differ = [(t, r) for t, r in zip(texts, reprs, strict=True) if t != r]
    # Each a valid number as repr writes them, no separators or spaces.
    assert all(t.strip() == t and "," not in t and "\0" not in t for t in texts)
    # Rarely one digit more, or another last digit of as many: never worse.
    assert len(differ) <= values.size // 1000
    assert all(len(t) <= len(r) + 1 for t, r in differ)
    assert all(("e" in t) == ("e" in r) for t, r in differ)


@given(arrays(np.float64, st.integers(1, 40), elements=st.floats(width=64)))
def test_any_float64_reads_back_from_its_text(values):
    texts = _texts(values)
    back = np.array([float(t) for t in texts])
    np.testing.assert_array_equal(back, values)
    assert np.array_equal(
        np.signbit(back[~np.isnan(back)]), np.signbit(values[~np.isnan(values)])
    )
    assert all(
        len(t) <= len(repr(float(v))) + 1 for t, v in zip(texts, values, strict=True)
    )


def _stream(target, values, dt=0.01, t_start=0.0, dtype=np.float64, chunk=700):
    n_rows, n_units = values.shape
    t = t_start + (np.arange(n_rows) + 1) * dt
    attrs = {"dt": dt, "t_start": t_start}
    with sio.open_matrix_writer(
        target,
        None,
        n_rows=n_rows,
        unit_ids=np.arange(n_units) + 3,
        dtype=dtype,
        attrs=attrs,
    ) as writer:
        for k0 in range(0, n_rows, chunk):
            writer.append(t[k0 : k0 + chunk], values[k0 : k0 + chunk])
    return t


def _kernel_rates(n_rows, n_units, dt, seed=3):
    from scipy.ndimage import gaussian_filter1d

    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.05, size=(n_rows, n_units)).astype(np.float64)
    return gaussian_filter1d(counts / dt, sigma=4.0, axis=0)


@pytest.mark.parametrize("ext", ["csv", "tsv"])
def test_streamed_rates_read_back_bit_for_bit(tmp_path, ext):
    rates = _kernel_rates(3000, 7, 0.01)
    rates[5] = [0.0, -0.0, 1e-30, 3.0, 1e300, 2.5e-5, 123456.75]
    target = tmp_path / f"r.{ext}"
    t = _stream(target, rates)
    sep = "," if ext == "csv" else "\t"
    lines = target.read_text().splitlines()
    assert lines[0] == sep.join(["t", *(str(u) for u in range(3, 10))])
    # Oracle: repr of each value, the grid's decimals for the time.
    assert lines[6] == sep.join(["0.06", *(repr(float(v)) for v in rates[5])])
    assert lines[1].split(sep)[0] == "0.01" and lines[-1].split(sep)[0] == "30.0"
    table = pd.read_csv(target, sep=sep, index_col="t")
    np.testing.assert_array_equal(table.to_numpy(), rates)
    # The times read back as the grid's decimals k/100 (within float noise
    # of the products k*dt).
    grid = np.arange(1, 3001) / 100
    np.testing.assert_array_equal(table.index.to_numpy(), grid)
    np.testing.assert_allclose(grid, t, rtol=4e-16, atol=0)
    back = sio.read_spikes(target, values="amplitude")
    np.testing.assert_array_equal(back.spikes, rates)


def test_streamed_counts_print_as_integers(tmp_path):
    rng = np.random.default_rng(5)
    counts = rng.poisson(0.3, size=(500, 4)) * 100.0
    counts[0] = [-0.0, 9999.0, 10000.0, -42.0]
    target = tmp_path / "c.csv"
    _stream(target, counts)
    lines = target.read_text().splitlines()
    assert lines[1] == "0.01,-0.0,9999.0,10000.0,-42.0"
    for line, row in zip(lines[2:], counts[1:], strict=True):
        assert line.split(",")[1:] == [f"{int(v)}.0" for v in row]


def test_streamed_float32_reads_back_as_float32(tmp_path):
    rates = _kernel_rates(800, 3, 0.01).astype(np.float32)
    target = tmp_path / "r32.csv"
    _stream(target, rates, dtype=np.float32, chunk=300)
    table = pd.read_csv(target, index_col="t")
    np.testing.assert_array_equal(table.to_numpy().astype(np.float32), rates)


def test_streamed_matrix_without_units_writes_the_times(tmp_path):
    target = tmp_path / "none.csv"
    _stream(target, np.zeros((5, 0)), dt=0.25, t_start=1.0)
    assert target.read_text().splitlines() == [
        "t",
        "1.25",
        "1.5",
        "1.75",
        "2.0",
        "2.25",
    ]


def test_streamed_text_does_not_depend_on_the_chunks(tmp_path):
    rates = _kernel_rates(1000, 5, 0.001)
    rates[::97, 2] = 1e-9
    one, many = tmp_path / "one.csv", tmp_path / "many.csv"
    _stream(one, rates, dt=0.001, chunk=1000)
    _stream(many, rates, dt=0.001, chunk=37)
    assert one.read_bytes() == many.read_bytes()


@pytest.mark.parametrize(
    ("t_start", "dt", "n"),
    [
        (0.0, 0.01, 5000),
        (-0.5, 0.25, 9),
        (0.44, 0.001, 3000),
        (1e6, 0.0025, 2000),
        (0.0, 1 / 30000, 50),  # no decimal step: repr of each time
        (3.0, 1e-9, 100),
        (0.0, 7.0, 20),
    ],
)
def test_grid_time_cells_are_the_grid_texts(t_start, dt, n):
    from spikerates.io.csv import GridText

    t = t_start + (np.arange(n) + 1) * dt
    grid = GridText(t_start, dt)
    cells = grid.cells(t)
    assert [bytes(c[c != 0]).decode() for c in cells] == grid.format(t)
    inferred = GridText.from_times(t)
    cells = inferred.cells(t)
    assert [bytes(c[c != 0]).decode() for c in cells] == inferred.format(t)
