"""CSV output: grid times as the grid defines them, values that read back
exactly, and provenance of NPZ rates."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

import spikerates.io as sio
from spikerates.io.csv import GridText, write_events


def _stream(target, t_start, dt, n_rows, values, attrs_dt=True):
    attrs = {"dt": dt, "t_start": t_start} if attrs_dt else {}
    k = np.arange(n_rows)
    t = t_start + (k + 1) * dt
    with sio.open_matrix_writer(
        target, None, n_rows=n_rows, unit_ids=[1, 2], attrs=attrs
    ) as writer:
        for k0 in range(0, n_rows, 333):
            writer.append(t[k0 : k0 + 333], values[k0 : k0 + 333])
    return t


@pytest.mark.parametrize("attrs_dt", [True, False])
def test_rates_csv_times_are_the_grid_decimals(tmp_path, attrs_dt):
    n_rows, dt, t_start = 1500, 0.001, 0.44
    values = np.random.default_rng(1).gamma(2.0, 5.0, size=(n_rows, 2))
    target = tmp_path / "rates.csv"
    t = _stream(target, t_start, dt, n_rows, values, attrs_dt)
    lines = target.read_text().splitlines()
    printed = [line.split(",")[0] for line in lines[1:]]
    # Oracle: decimal arithmetic on the texts of t_start and dt.
    expected = [
        str((Decimal("0.44") + (k + 1) * Decimal("0.001")).normalize())
        for k in range(n_rows)
    ]
    expected = [e if "." in e else e + ".0" for e in expected]
    assert printed == expected
    assert "1.45" in printed and not any(len(p) > 6 for p in printed)
    assert (np.abs(t - np.array(printed, dtype=float)) <= 4e-16).all()
    table = pd.read_csv(target, index_col="t")
    # A time typed by hand finds its row: 1.45 = 0.44 + 1010 * 0.001.
    np.testing.assert_array_equal(table.loc[1.45].to_numpy(), values[1009])
    np.testing.assert_array_equal(table.to_numpy(), values)


def test_csv_round_trip_gives_the_same_text(tmp_path):
    t = 100.0 + 0.0025 * np.arange(1, 401)
    spikes = np.zeros((400, 2), dtype=np.int64)
    spikes[::7, 1] = 1
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    sio.write_dense(first, t, spikes, [3, 4])
    back = sio.read_spikes(first)
    sio.write_dense(second, back.t, back.spikes, back.unit_ids)
    assert first.read_text() == second.read_text()
    assert "100.0025," in first.read_text()
    np.testing.assert_allclose(back.t, t, rtol=0, atol=1e-13)


def test_grid_text_rules():
    assert GridText(0.0, 0.001).format(np.array([0.009000000000000001])) == ["0.009"]
    assert GridText(-0.5, 0.25).format(np.array([-0.25, 0.0, 0.25])) == [
        "-0.25",
        "0.0",
        "0.25",
    ]
    # A step without a short decimal, and times off the grid, print as repr.
    fs = 1 / 30000
    assert GridText(0.0, fs).format(np.array([fs])) == [repr(fs)]
    off = GridText(0.0, 0.001).format(np.array([0.0015]))
    assert off == [repr(0.0015)]
    inferred = GridText.from_times(np.array([0.1, 0.2, 0.30000000000000004]))
    assert inferred.format(np.array([0.1, 0.2, 0.30000000000000004])) == [
        "0.1",
        "0.2",
        "0.3",
    ]


@pytest.mark.parametrize(
    "value",
    [0.1 + 0.2, 1e-300, 5e-324, -1.2345678901234567e-308, 1e22, 0.0, -0.0, 1 / 3],
)
def test_values_read_back_exactly(tmp_path, value):
    spikes = np.array([[value], [1.0]])
    sio.write_dense(tmp_path / "v.csv", [1.0, 2.0], spikes, [0])
    text = (tmp_path / "v.csv").read_text().splitlines()[1]
    printed = text.split(",")[1]
    assert float(printed) == value and np.signbit(float(printed)) == np.signbit(value)


def test_float_formatting_is_exact_on_many_values():
    from spikerates.io.csv import format_float64

    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.gamma(2.0, 5.0, 20000),
            rng.standard_normal(20000) * 10.0 ** rng.integers(-307, 307, 20000),
            # Neighbours of powers of ten, where the exponent is easy to get wrong.
            np.nextafter(10.0 ** np.arange(-300, 300), 0),
            10.0 ** np.arange(-300, 300),
            [np.inf, -np.inf, np.nan, 5e-324, -0.0, 1.7976931348623157e308],
        ]
    )
    cells = format_float64(values.reshape(-1, 2))
    texts = [bytes(c[c != 0]).decode() for c in cells.reshape(-1, cells.shape[-1])]
    back = np.array([float(t) for t in texts])
    np.testing.assert_array_equal(back, values)  # NaN equals NaN here
    twelve = format_float64(np.array([12.5]))[0]
    assert bytes(twelve[twelve != 0]) == b"12.5"
    assert not any("\x00" in t or " " in t for t in texts)


def test_events_times_print_as_repr():
    from spikerates.spiketrains import SpikeTrains

    trains = SpikeTrains(
        [np.array([0.1, 0.30000000000000004]), np.array([]), np.array([2.5])],
        unit_ids=["a,b", "c", "d"],
    )
    out = io.StringIO()
    write_events(out, trains)
    assert out.getvalue() == (
        'unit,time\n"a,b",0.1\n"a,b",0.30000000000000004\nc,\nd,2.5\n'
    )


def test_npz_rates_carry_the_provenance(tmp_path):
    attrs = {"estimator": "kernel", "kind": "gauss", "tau": 0.04, "dt": 0.001}
    target = tmp_path / "r.npz"
    with sio.open_matrix_writer(
        target, None, n_rows=3, unit_ids=[7], attrs=attrs
    ) as writer:
        writer.append(np.array([0.001, 0.002, 0.003]), np.ones((3, 1)))
    with np.load(target, allow_pickle=False) as z:
        stored = json.loads(str(z["attrs"]))
        np.testing.assert_array_equal(z["rates"], np.ones((3, 1)))
    assert {k: stored[k] for k in attrs} == attrs
    assert "spikerates_version" in stored
    sio.write_dense(tmp_path / "d.npz", [1.0, 2.0], np.ones((2, 1)), attrs=attrs)
    with np.load(tmp_path / "d.npz", allow_pickle=False) as z:
        assert json.loads(str(z["attrs"]))["tau"] == 0.04
