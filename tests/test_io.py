"""Readers and writers: round trips across formats, NWB and Phy input, pipes,
streaming writers, atomic output and malformed files."""

from __future__ import annotations

import io
import itertools
import os
import sys
import tempfile
import tracemalloc

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import spikerates.io as sio
from spikerates.errors import ParameterError, SpikeDataError
from spikerates.io import csv as csv_format
from spikerates.spiketrains import (
    DenseSpikes,
    SpikeTrains,
    bin_spikes,
    decide_values,
    dense_to_events,
    events_to_dense,
)

WRITE_FORMATS = ["hdf5", "npz", "csv", "tsv"]
EXT = {"hdf5": ".h5", "npz": ".npz", "csv": ".csv", "tsv": ".tsv"}
PAIRS = list(itertools.product(WRITE_FORMATS, repeat=2))
# Formats that keep unit labels and the recording window.
RICH = {"hdf5", "npz"}
TEXT = {"csv", "tsv"}
EPS = np.finfo(np.float64).eps


def grid_decimals(t_start: float, dt: float, n: int) -> np.ndarray:
    """Times ``t_start + (k+1)*dt`` computed in decimal from the shortest
    texts of ``t_start`` and ``dt``."""
    from decimal import Decimal

    texts = (repr(float(t_start)), repr(float(dt)))
    start, step = (Decimal(x) for x in texts)
    return np.array([float(start + (k + 1) * step) for k in range(n)])


def assert_same_trains(a: SpikeTrains, b: SpikeTrains) -> None:
    assert a.unit_ids.tolist() == b.unit_ids.tolist()
    assert a.n_units == b.n_units
    for x, y in zip(a.spike_times, b.spike_times, strict=True):
        assert x.dtype == y.dtype == np.float64
        np.testing.assert_array_equal(x, y)


# --- strategies --------------------------------------------------------------

spike_time = st.one_of(
    # Exactly on bin edges of dt = 1 ms, negative ones included.
    st.integers(-100, 300).map(lambda j: j * 0.001),
    st.floats(-2.0, 5.0, allow_nan=False, allow_infinity=False),
    # float32 data.
    st.floats(-2.0, 5.0, width=32, allow_nan=False, allow_infinity=False),
)


@st.composite
def spike_trains(draw) -> SpikeTrains:
    units = draw(st.lists(st.lists(spike_time, max_size=8), max_size=4))
    ids = draw(
        st.lists(
            st.integers(-5, 10**6),
            min_size=len(units),
            max_size=len(units),
            unique=True,
        )
    )
    # Units in ascending id order: CSV long format reads ids ascending.
    ids.sort()
    float32 = draw(st.booleans())
    times = [np.array(u, dtype=np.float32 if float32 else np.float64) for u in units]
    labels = draw(
        st.lists(
            st.sampled_from(["good", "mua", "noise", ""]),
            min_size=len(units),
            max_size=len(units),
        )
    )
    return SpikeTrains(times, unit_ids=np.array(ids, dtype=np.int64), labels=labels)


@st.composite
def dense_spikes(draw) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    n_steps = draw(st.integers(2, 25))
    n_units = draw(st.integers(0, 4))
    dt = draw(st.sampled_from([0.001, 0.1, 1 / 30000, 0.0025]))
    t0 = draw(st.sampled_from([0.0, -0.5, 100.0]))
    counts = draw(arrays(np.int64, (n_steps, n_units), elements=st.integers(0, 3)))
    kind = draw(st.sampled_from(["counts", "amplitude", "float32", "float32 counts"]))
    t = t0 + dt * np.arange(1, n_steps + 1)
    if kind == "counts":
        spikes = counts
    elif kind == "amplitude":
        spikes = counts / dt
    elif kind == "float32":
        spikes = (counts / dt).astype(np.float32)
    else:
        spikes = counts.astype(np.float32)
    ids = np.arange(n_units, dtype=np.int64) * 3 + 1
    return t, spikes, ids, dt


# --- round trips ---------------------------------------------------------------


@pytest.mark.parametrize("fmt_a, fmt_b", PAIRS)
@settings(max_examples=20, deadline=None)
@given(trains=spike_trains())
def test_events_round_trip_across_formats(fmt_a, fmt_b, trains):
    with tempfile.TemporaryDirectory() as tmp:
        first = os.path.join(tmp, "a" + EXT[fmt_a])
        second = os.path.join(tmp, "b" + EXT[fmt_b])
        sio.write_events(first, trains)
        back = sio.read_spikes(first)
        assert isinstance(back, SpikeTrains)
        sio.write_events(second, back)
        again = sio.read_spikes(second)
    assert_same_trains(trains, back)
    assert_same_trains(trains, again)
    if fmt_a in RICH and fmt_b in RICH:
        assert again.labels.tolist() == trains.labels.tolist()


@pytest.mark.parametrize("fmt_a, fmt_b", PAIRS)
@settings(max_examples=20, deadline=None)
@given(data=dense_spikes())
def test_dense_round_trip_across_formats(fmt_a, fmt_b, data):
    t, spikes, ids, dt = data
    t0 = round(float(t[0] - dt), 6)  # the drawn start: 0, -0.5 or 100
    with tempfile.TemporaryDirectory() as tmp:
        first = os.path.join(tmp, "a" + EXT[fmt_a])
        second = os.path.join(tmp, "b" + EXT[fmt_b])
        sio.write_dense(first, t, spikes, ids)
        back = sio.read_spikes(first)
        assert isinstance(back, DenseSpikes)
        sio.write_dense(second, back.t, back.spikes, back.unit_ids)
        again = sio.read_spikes(second, dt=dt)
    expected_values = decide_values(spikes, dt)
    # Text prints the decimals of the grid (0.3, not 0.30000000000000004):
    # within float noise of t, exactly the decimal times for a decimal step,
    # and the same again when read back and written again.
    decimals = grid_decimals(t0, dt, t.size) if dt != 1 / 30000 else None
    for dense, text in ((back, fmt_a in TEXT), (again, bool(TEXT & {fmt_a, fmt_b}))):
        if not text:
            np.testing.assert_array_equal(dense.t, t)
            continue
        np.testing.assert_allclose(dense.t, t, rtol=0, atol=64 * EPS * (abs(t0) + 1))
        if decimals is not None:
            np.testing.assert_array_equal(dense.t, decimals)
    if fmt_a in TEXT:
        np.testing.assert_array_equal(again.t, back.t)
    for dense in (back, again):
        assert dense.unit_ids.tolist() == ids.tolist()
        assert dense.values == expected_values
        stored = np.asarray(dense.spikes)
        assert stored.shape == spikes.shape
        # CSV keeps float32 values to float32 precision.
        np.testing.assert_array_equal(stored.astype(spikes.dtype), spikes)
        scale = dense.dt if expected_values == "counts" else 1.0
        np.testing.assert_allclose(
            dense.amplitude_chunk(), spikes.astype(np.float64) / scale, rtol=1e-6
        )


@pytest.mark.parametrize("fmt_events, fmt_dense", PAIRS)
@settings(max_examples=10, deadline=None)
@given(trains=spike_trains(), dt=st.sampled_from([0.001, 0.05, 0.3]))
def test_events_to_dense_files_and_back(fmt_events, fmt_dense, trains, dt):
    """events file -> bin -> dense file -> events -> same counts on the grid."""
    with tempfile.TemporaryDirectory() as tmp:
        events_path = os.path.join(tmp, "e" + EXT[fmt_events])
        dense_path = os.path.join(tmp, "d" + EXT[fmt_dense])
        sio.write_events(events_path, trains)
        read = sio.read_spikes(events_path)
        grid = read.grid(dt)
        if grid.n_steps < 2:
            return
        counts = bin_spikes(read.spike_times, grid)
        assert counts.sum() == read.n_spikes
        sio.write_dense(dense_path, grid.times(), counts, read.unit_ids)
        dense = sio.read_spikes(dense_path, values="counts")
        back = dense_to_events(dense)
        sio.write_events(events_path, back)
        final = sio.read_spikes(events_path)
    window = final.grid(dt, t_start=grid.t_start, t_stop=grid.t_stop)
    np.testing.assert_array_equal(events_to_dense(final, window), counts)


def test_float32_spike_times_read_exactly(tmp_path):
    times = np.array([0.1, 0.2, 0.7], dtype=np.float32)
    np.savez(
        tmp_path / "e.npz",
        spike_times=times,
        spike_times_index=np.array([1, 3], dtype=np.uint16),
        unit_ids=np.array([4, 5]),
    )
    with h5py.File(tmp_path / "e.h5", "w") as f:
        f["units/spike_times"] = times
        f["units/spike_times_index"] = np.array([1, 3], dtype=np.uint16)
        f["units/id"] = np.array([4, 5])
    for name in ("e.npz", "e.h5"):
        trains = sio.read_spikes(tmp_path / name)
        assert trains.spike_times[1].tolist() == times[1:].astype(float).tolist()


def test_empty_and_one_spike_units_survive_every_format(tmp_path, sample_trains):
    for fmt in WRITE_FORMATS:
        path = tmp_path / f"s{EXT[fmt]}"
        sio.write_events(path, sample_trains)
        back = sio.read_spikes(path)
        order = np.argsort(sample_trains.unit_ids)
        if fmt in RICH:
            order = np.arange(sample_trains.n_units)
            assert back.labels.tolist() == sample_trains.labels.tolist()
        assert back.unit_ids.tolist() == sample_trains.unit_ids[order].tolist()
        sizes = [sample_trains.spike_times[i].size for i in order]
        assert [t.size for t in back.spike_times] == sizes


def test_extra_arrays_and_attrs(tmp_path, sample_trains):
    extra = {"gain": np.array([1.0, 2.0]), "input": np.arange(5.0)}
    sio.write_events(tmp_path / "e.h5", sample_trains, extra=extra, attrs={"a": 1})
    sio.write_events(tmp_path / "e.npz", sample_trains, extra=extra)
    with h5py.File(tmp_path / "e.h5") as f:
        np.testing.assert_array_equal(f["gain"][()], extra["gain"])
        assert f.attrs["a"] == 1 and "spikerates_version" in f.attrs
    with np.load(tmp_path / "e.npz") as z:
        np.testing.assert_array_equal(z["input"], extra["input"])
    sio.write_dense(
        tmp_path / "d.h5",
        [0.1, 0.2],
        np.ones((2, 1)),
        [3],
        name="rates",
        attrs={"estimator": "kernel", "tau": 0.04, "units": "Hz", "skip": None},
    )
    with h5py.File(tmp_path / "d.h5") as f:
        assert f["rates"].attrs["estimator"] == "kernel"
        assert f.attrs["units"] == "Hz" and "skip" not in f.attrs


def test_write_arrays_all_formats(tmp_path):
    arrays = {"x": np.linspace(-1, 1, 5), "rates": np.ones((5, 2))}
    sio.write_arrays(tmp_path / "t.npz", arrays)
    sio.write_arrays(tmp_path / "t.h5", arrays, attrs={"model": "lif"})
    columns = {"x": arrays["x"], "rate_0": arrays["rates"][:, 0]}
    sio.write_arrays(tmp_path / "t.csv", arrays, csv_columns=columns)
    table = sio.read_table(tmp_path / "t.csv")
    assert list(table) == ["x", "rate_0"]
    np.testing.assert_array_equal(table["x"], arrays["x"])
    assert set(sio.read_table(tmp_path / "t.npz")) == {"x"}
    assert set(sio.read_table(tmp_path / "t.h5")) == {"x"}
    with pytest.raises(ValueError, match="1-D of one length"):
        sio.write_arrays(tmp_path / "bad.csv", arrays)
    assert not (tmp_path / "bad.csv").exists()


# --- NWB -----------------------------------------------------------------------


def test_pynwb_file_read_exactly(nwb_file):
    trains = sio.read_spikes(nwb_file.path)
    assert trains.unit_ids.tolist() == nwb_file.unit_ids.tolist()
    for got, want in zip(trains.spike_times, nwb_file.spike_times, strict=True):
        np.testing.assert_array_equal(got, want)
    assert trains.labels.tolist() == nwb_file.labels.tolist()
    assert (trains.t_start, trains.t_stop) == (nwb_file.t_start, nwb_file.t_stop)
    assert sio.read_spikes(nwb_file.path, "nwb").n_units == 3


def test_pynwb_file_many_units(tmp_path, rng, nwb_writer):
    units = [
        {
            "spike_times": np.sort(rng.uniform(0, 10, rng.integers(0, 50))),
            "id": int(i) * 7 + 100,
            "quality": "good" if i % 2 else "mua",
        }
        for i in range(300)
    ]
    path = nwb_writer(tmp_path / "big.nwb", units)
    with h5py.File(path) as f:
        # pynwb picks a wider index type for more spikes.
        assert f["units/spike_times_index"].dtype.kind == "u"
    trains = sio.read_spikes(path)
    assert trains.unit_ids.tolist() == [u["id"] for u in units]
    for got, unit in zip(trains.spike_times, units, strict=True):
        np.testing.assert_array_equal(got, unit["spike_times"])
    assert trains.t_start is None and trains.t_stop is None


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int32, np.int64]
)
def test_spike_times_index_of_any_integer_type(tmp_path, dtype):
    path = tmp_path / "u.h5"
    with h5py.File(path, "w") as f:
        f["units/spike_times"] = np.array([0.3, 0.1, 0.5, 0.2])
        f["units/spike_times_index"] = np.array([2, 2, 4], dtype=dtype)
        f["units/id"] = np.array([10, 20, 30])
    trains = sio.read_spikes(path)
    assert [t.tolist() for t in trains.spike_times] == [[0.1, 0.3], [], [0.2, 0.5]]
    assert trains.labels is None


def test_units_table_elsewhere_needs_dataset(tmp_path, nwb_file):
    path = tmp_path / "moved.nwb"
    with h5py.File(nwb_file.path) as src, h5py.File(path, "w") as dst:
        src.copy("units", dst, name="processing/ecephys/sorting")
        src.copy("units", dst, name="processing/ecephys/curated")
    with pytest.raises(SpikeDataError, match="--dataset") as info:
        sio.read_spikes(path)
    assert "/processing/ecephys/curated/spike_times" in str(info.value)
    for dataset in (
        "/processing/ecephys/sorting",
        "processing/ecephys/sorting/",
        "/processing/ecephys/sorting/spike_times",
        "/processing/ecephys/sorting/spike_times_index",
    ):
        trains = sio.read_spikes(path, dataset=dataset)
        assert trains.unit_ids.tolist() == nwb_file.unit_ids.tolist()


def test_root_units_table_is_the_obvious_choice(tmp_path, nwb_file):
    path = tmp_path / "two.nwb"
    with h5py.File(nwb_file.path) as src, h5py.File(path, "w") as dst:
        src.copy("units", dst, name="units")
        src.copy("units", dst, name="processing/other")
        del dst["processing/other/id"]
    trains = sio.read_spikes(path)
    assert trains.unit_ids.tolist() == nwb_file.unit_ids.tolist()
    other = sio.read_spikes(path, dataset="/processing/other")
    assert other.unit_ids.tolist() == [0, 1, 2]


def test_dense_dataset_by_path(tmp_path):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f["session/t"] = 0.01 * np.arange(1, 6)
        f["session/binned"] = np.eye(5, 2)
        f["session/unit_ids"] = np.array([b"a", b"b"])
    dense = sio.read_spikes(path, dataset="/session/binned", values="counts")
    assert dense.unit_ids.tolist() == ["a", "b"]
    np.testing.assert_array_equal(dense.counts_chunk(), np.eye(5, 2))


# --- Phy -----------------------------------------------------------------------


def test_phy_folder_read_exactly(phy_folder):
    trains = sio.read_spikes(phy_folder.path)
    assert trains.unit_ids.tolist() == phy_folder.unit_ids.tolist()
    for got, want in zip(trains.spike_times, phy_folder.spike_times, strict=True):
        np.testing.assert_array_equal(got, want)
    assert trains.labels.tolist() == phy_folder.labels.tolist()
    assert trains.select_labels("good").unit_ids.tolist() == [2, 9]
    assert sio.read_spikes(phy_folder.path, "phy").n_units == 4


def test_phy_recording_length_from_the_raw_file(tmp_path, phy_writer):
    folder = phy_writer(tmp_path / "ks", np.array([30, 60, 90]), np.array([1, 1, 0]))
    assert sio.read_spikes(folder).t_stop is None  # no recording.dat: unknown
    # 385 int16 channels x 4500 samples after a 16-byte offset: 0.15 s at 30 kHz
    with open(os.path.join(folder, "params.py"), "a") as fh:
        fh.write("offset = 16\n")
    (tmp_path / "ks" / "recording.dat").write_bytes(bytes(16 + 385 * 2 * 4500))
    trains = sio.read_spikes(folder)
    assert (trains.t_start, trains.t_stop) == (0.0, 4500 / 30000.0)
    # a raw file shorter than the spikes is not theirs: the length stays unknown
    (tmp_path / "ks" / "recording.dat").write_bytes(bytes(16 + 385 * 2 * 60))
    assert sio.read_spikes(folder).t_stop is None


def test_params_py_is_not_executed(tmp_path, monkeypatch, phy_writer):
    monkeypatch.chdir(tmp_path)
    folder = phy_writer(
        tmp_path / "ks",
        np.array([30, 60, 90]),
        np.array([1, 1, 0]),
        sample_rate=None,
        params_extra=(
            "import pathlib\npathlib.Path('EXECUTED').touch()\n"
            "sample_rate = 3e4  # Hz\nscale = 1.0 / 3\n"
        ),
    )
    trains = sio.read_spikes(folder)
    assert not (tmp_path / "EXECUTED").exists()
    assert [t.tolist() for t in trains.spike_times] == [[0.003], [0.001, 0.002]]
    assert trains.labels is None


def test_phy_labels_kslabel_only(tmp_path, phy_writer):
    folder = phy_writer(
        tmp_path / "ks",
        np.array([1, 2, 3], dtype=np.uint64).reshape(-1, 1),
        np.array([4, 3, 4]),
        ks_label={3: "good", 4: "mua"},
    )
    trains = sio.read_spikes(folder)
    assert trains.unit_ids.tolist() == [3, 4]
    assert trains.labels.tolist() == ["good", "mua"]


# --- CSV variants --------------------------------------------------------------


@pytest.mark.parametrize(
    "text, ids, times",
    [
        ("unit,time\n2,0.5\n10,0.1\n2,0.25\n", [2, 10], [[0.25, 0.5], [0.1]]),
        ("cluster,t\n1,0.5\n", [1], [[0.5]]),
        ("sender\ttime_ms\n3\t1.5\n3\t0.5\n", [3], [[0.0005, 0.0015]]),
        ("# NEST\n# comment\nsender,time_ms\n1,2\n", [1], [[0.002]]),
        ("neuron,spike_time\nb,0.2\na,0.1\n", ["a", "b"], [[0.1], [0.2]]),
        ("id,spike_times,amp\n9,1.0,3\n", [9], [[1.0]]),
        ("Unit ID,Time (ms)\n1,250\n", [1], [[0.25]]),
        ("time,unit\n0.3,5\n0.1,4\n", [4, 5], [[0.1], [0.3]]),
        ("unit,time\n1,\n2,0.1\n", [1, 2], [[], [0.1]]),
        ("unit,time\n", [], []),
    ],
)
def test_csv_event_variants(tmp_path, text, ids, times):
    suffix = ".tsv" if "\t" in text else ".csv"
    path = tmp_path / f"events{suffix}"
    path.write_text(text)
    trains = sio.read_spikes(path)
    assert trains.unit_ids.tolist() == ids
    assert [t.tolist() for t in trains.spike_times] == times


def test_csv_dense_with_string_ids_and_ms(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("t_ms,a,b\n1,0,1\n2,1,0\n3,0,0\n")
    dense = sio.read_spikes(path)
    np.testing.assert_allclose(dense.t, [0.001, 0.002, 0.003])
    assert dense.unit_ids.tolist() == ["a", "b"]
    assert dense.values == "counts"


def test_csv_written_by_pandas_with_its_index_column(tmp_path):
    t = np.arange(1, 6) * 0.001
    dense = pd.DataFrame({"t": t, "3": [0, 1000, 0, 0, 0], "7": [0, 0, 0, 1000, 0]})
    dense.to_csv(tmp_path / "dense.csv")  # leading unnamed index column
    got = sio.read_spikes(str(tmp_path / "dense.csv"))
    np.testing.assert_array_equal(got.t, t)
    np.testing.assert_array_equal(got.unit_ids, [3, 7])
    np.testing.assert_array_equal(got.amplitude_chunk(0, 5), dense[["3", "7"]])
    events = pd.DataFrame({"unit": [1, 0, 1], "time": [0.3, 0.1, 0.2]})
    events.to_csv(tmp_path / "events.csv")
    trains = sio.read_spikes(str(tmp_path / "events.csv"))
    np.testing.assert_array_equal(trains.unit_ids, [0, 1])
    np.testing.assert_array_equal(trains.spike_times[1], [0.2, 0.3])


def test_csv_numeric_unit_order(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("unit,time\n10,1\n9,1\n100,1\n")
    assert sio.read_spikes(path).unit_ids.tolist() == [9, 10, 100]


# --- format detection, pipes -------------------------------------------------------


@pytest.mark.parametrize(
    "path, explicit, for_writing, head, expected",
    [
        ("a.h5", None, False, None, "hdf5"),
        ("a.HDF5", None, True, None, "hdf5"),
        ("a.nwb", None, False, None, "nwb"),
        ("a.nwb", None, True, None, "nwb"),
        ("a.hdf", None, True, None, "hdf5"),
        ("a.npz", None, True, None, "npz"),
        ("a.csv", None, False, None, "csv"),
        ("a.tsv", None, True, None, "tsv"),
        ("a.csv", "nwb", False, None, "nwb"),
        ("a.csv", ".NPZ", False, None, "npz"),
        ("a.tab", None, False, None, "tsv"),
        ("a.csv", "H5", True, None, "hdf5"),
        ("-", None, False, b"\x89HDF\r\n\x1a\n\x00", "hdf5"),
        ("-", None, False, b"PK\x03\x04", "npz"),
        ("-", None, False, b"unit,time\n", "csv"),
        ("-", None, False, b"# x\nunit\ttime\n", "tsv"),
        ("-", None, True, None, "csv"),
        ("-", "npz", True, None, "npz"),
    ],
)
def test_detect_format(path, explicit, for_writing, head, expected):
    assert (
        sio.detect_format(path, explicit, for_writing=for_writing, head=head)
        == expected
    )


def test_detect_format_errors(tmp_path):
    with pytest.raises(ParameterError, match="unknown format"):
        sio.detect_format("a.csv", "xlsx")
    with pytest.raises(ParameterError, match="read but not written"):
        sio.detect_format("out", "phy", for_writing=True)
    with pytest.raises(SpikeDataError, match="give --to"):
        sio.detect_format(tmp_path / "out.dat", for_writing=True)
    with pytest.raises(SpikeDataError, match="give --from"):
        sio.detect_format("-")
    assert sio.detect_format(tmp_path) == "phy"
    assert sio.extension_for("nwb") == ".nwb"
    assert sio.extension_for("h5") == ".h5"
    with pytest.raises(ParameterError, match="read only"):
        sio.extension_for("phy")


def test_unknown_extension_is_sniffed(tmp_path, sample_trains):
    sio.write_events(tmp_path / "e.h5", sample_trains)
    os.rename(tmp_path / "e.h5", tmp_path / "e.bin")
    assert sio.read_spikes(tmp_path / "e.bin").n_units == sample_trains.n_units


class _Stdin(io.TextIOWrapper):
    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("fmt", WRITE_FORMATS)
def test_stdin_and_stdout_every_format(tmp_path, monkeypatch, sample_trains, fmt):
    path = tmp_path / f"e{EXT[fmt]}"
    sio.write_events(path, sample_trains)
    monkeypatch.setattr(sys, "stdin", _Stdin(io.BytesIO(path.read_bytes())))
    from_pipe = sio.read_spikes("-")
    assert_same_trains(from_pipe, sio.read_spikes(path))
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out))
    sio.write_events("-", from_pipe, fmt)
    monkeypatch.setattr(sys, "stdin", _Stdin(io.BytesIO(out.getvalue())))
    assert_same_trains(sio.read_spikes("-"), from_pipe)
    assert os.listdir(tmp_path) == [path.name]


def test_dense_through_pipe(monkeypatch, tmp_path):
    path = tmp_path / "d.npz"
    sio.write_dense(path, [1.0, 2.0, 3.0], np.array([[1.0], [0.0], [2.0]]), [8])
    monkeypatch.setattr(sys, "stdin", _Stdin(io.BytesIO(path.read_bytes())))
    dense = sio.read_spikes("-", values="counts")
    assert dense.unit_ids.tolist() == [8] and dense.source == "-"


def test_stdin_errors(monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Stdin(io.BytesIO(b"")))
    with pytest.raises(SpikeDataError, match="<stdin>: standard input is empty"):
        sio.read_spikes("-")


# --- lazy reading ----------------------------------------------------------------


def test_lazy_hdf5_dense(tmp_path):
    t = 0.001 * np.arange(1, 3001)
    spikes = np.zeros((3000, 3))
    spikes[::7, 1] = 1000.0
    sio.write_dense(tmp_path / "d.h5", t, spikes, [1, 2, 3])
    dense = sio.read_spikes(tmp_path / "d.h5", lazy=True)
    assert isinstance(dense.spikes, h5py.Dataset)
    assert dense.values == "amplitude"
    np.testing.assert_array_equal(dense.amplitude_chunk(100, 200), spikes[100:200])
    np.testing.assert_array_equal(
        dense.select_units([2]).amplitude_chunk(0, 50), spikes[:50, 1:2]
    )
    ds = dense.spikes
    dense.close()
    assert not ds.id.valid
    eager = sio.read_spikes(tmp_path / "d.h5")
    assert isinstance(eager.spikes, np.ndarray)


# --- streaming writer --------------------------------------------------------------


@pytest.mark.parametrize("fmt", WRITE_FORMATS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matrix_writer_round_trip(tmp_path, rng, fmt, dtype):
    n_rows, ids = 2500, np.array([4, 8, 15])
    t = 0.001 * np.arange(1, n_rows + 1)
    values = rng.gamma(2.0, 10.0, size=(n_rows, 3))
    target = tmp_path / f"r{EXT[fmt]}"
    attrs = {"estimator": "kernel", "kind": "gauss", "tau": 0.04, "units": "Hz"}
    with sio.open_matrix_writer(
        target, None, n_rows=n_rows, unit_ids=ids, dtype=dtype, attrs=attrs
    ) as writer:
        for k0 in range(0, n_rows, 700):
            writer.append(t[k0 : k0 + 700], values[k0 : k0 + 700])
    expected = values.astype(dtype)
    if fmt == "hdf5":
        with h5py.File(target) as f:
            assert f["rates"].dtype == dtype
            rows, columns = f["rates"].chunks
            # Chunks of whole rows, about 1 MiB (1024 rows or more if narrow).
            assert columns == 3 and rows * 3 * np.dtype(dtype).itemsize <= 2**20
            np.testing.assert_array_equal(f["rates"][()], expected)
            np.testing.assert_array_equal(f["t"][()], t)
            assert f["rates"].attrs["estimator"] == "kernel"
            assert f.attrs["units"] == "Hz" and "spikerates_version" in f.attrs
            got_ids = f["unit_ids"][()]
    elif fmt == "npz":
        with np.load(target) as z:
            assert z["rates"].dtype == dtype
            np.testing.assert_array_equal(z["rates"], expected)
            np.testing.assert_array_equal(z["t"], t)
            got_ids = z["unit_ids"]
    else:
        table = pd.read_csv(target, sep="\t" if fmt == "tsv" else ",")
        assert list(table.columns) == ["t", "4", "8", "15"]
        # The grid's decimals (0.009, not 0.009000000000000001).
        np.testing.assert_array_equal(
            table["t"].to_numpy(), grid_decimals(0.0, 0.001, n_rows)
        )
        assert "0.009," in target.read_text().replace("\t", ",")
        np.testing.assert_array_equal(table.to_numpy()[:, 1:].astype(dtype), expected)
        got_ids = ids
    assert got_ids.tolist() == ids.tolist()
    assert sorted(os.listdir(tmp_path)) == [target.name]


@pytest.mark.parametrize("fmt", WRITE_FORMATS)
def test_matrix_writer_failure_leaves_nothing(tmp_path, fmt):
    target = tmp_path / f"r{EXT[fmt]}"
    target.write_text("previous output")
    with pytest.raises(RuntimeError, match="midway"):
        with sio.open_matrix_writer(target, None, n_rows=10, unit_ids=[1]) as w:
            w.append(np.arange(5.0), np.ones((5, 1)))
            raise RuntimeError("estimator failed midway")
    assert target.read_text() == "previous output"
    assert os.listdir(tmp_path) == [target.name]
    fresh = tmp_path / f"new{EXT[fmt]}"
    with pytest.raises(ValueError, match="5 rows written of the 10"):
        with sio.open_matrix_writer(fresh, None, n_rows=10, unit_ids=[1]) as w:
            w.append(np.arange(5.0), np.ones((5, 1)))
    with pytest.raises(ValueError, match="do not match"):
        with sio.open_matrix_writer(fresh, None, n_rows=10, unit_ids=[1]) as w:
            w.append(np.arange(5.0), np.ones((5, 2)))
    assert os.listdir(tmp_path) == [target.name]


def test_matrix_writer_to_stdout_only_after_success(monkeypatch, tmp_path):
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out))
    with sio.open_matrix_writer("-", "hdf5", n_rows=4, unit_ids=[0, 1]) as w:
        w.append(np.arange(4.0), np.ones((4, 2)))
        assert out.getvalue() == b""
    with h5py.File(io.BytesIO(out.getvalue())) as f:
        np.testing.assert_array_equal(f["rates"][()], np.ones((4, 2)))
    out.seek(0)
    out.truncate()
    with pytest.raises(RuntimeError):
        with sio.open_matrix_writer("-", "csv", n_rows=4, unit_ids=[0]) as w:
            w.append(np.arange(2.0), np.ones((2, 1)))
            raise RuntimeError
    assert out.getvalue() == b""


@pytest.mark.parametrize("fmt", ["npz", "csv"])
def test_matrix_writer_memory_does_not_grow_with_rows(tmp_path, fmt):
    def peak(n_rows: int) -> int:
        block = np.full((500, 8), 1.0 / 3.0)
        t = np.arange(500.0)
        tracemalloc.start()
        try:
            with sio.open_matrix_writer(
                tmp_path / f"m{n_rows}{EXT[fmt]}",
                None,
                n_rows=n_rows,
                unit_ids=range(8),
            ) as w:
                for _ in range(n_rows // 500):
                    w.append(t, block)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(5_000), peak(40_000)
    # 40 000 rows x 8 float64 = 2.5 MB of data; the peak stays that of one chunk.
    assert large < 1.5 * small + 200_000


def test_writer_failing_midway_leaves_no_file(tmp_path, monkeypatch, sample_trains):
    def broken(fh, trains, sep):
        fh.write("unit,time\n1,0.5\n")
        raise OSError("disk full")

    monkeypatch.setattr(csv_format, "write_events", broken)
    # The writer's OSError becomes one line naming the output.
    with pytest.raises(SpikeDataError, match=r"e\.csv: cannot write: disk full$"):
        sio.write_events(tmp_path / "e.csv", sample_trains)
    with pytest.raises(ValueError, match="clashes"):
        sio.write_events(
            tmp_path / "e.npz", sample_trains, extra={"spike_times": np.zeros(1)}
        )
    with pytest.raises(ValueError, match="clashes"):
        sio.write_events(tmp_path / "e.h5", sample_trains, extra={"units": np.zeros(1)})
    assert os.listdir(tmp_path) == []


def test_atomic_output(tmp_path):
    target = tmp_path / "out.txt"
    with sio.atomic_output(target, binary=False) as fh:
        fh.write("done\n")
        assert not target.exists()
    assert target.read_text() == "done\n"
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(KeyError):
        with sio.atomic_output(target, as_path=True) as tmp:
            assert tmp.endswith(".txt") and os.path.basename(tmp).startswith(".")
            raise KeyError
    assert target.read_text() == "done\n"
    assert os.listdir(tmp_path) == ["out.txt"]
    with pytest.raises(SpikeDataError, match="does not exist"):
        with sio.atomic_output(tmp_path / "missing" / "x.npz"):
            pass


def test_read_table(tmp_path):
    (tmp_path / "n.csv").write_text("gain,bias,encoder\n1.5,0.2,1\n2,-0.5,-1\n")
    table = sio.read_table(tmp_path / "n.csv")
    assert list(table) == ["gain", "bias", "encoder"]
    np.testing.assert_array_equal(table["bias"], [0.2, -0.5])
    assert table["gain"].dtype == np.float64
    (tmp_path / "x.csv").write_text("t,x\n0.1,abc\n")
    with pytest.raises(SpikeDataError, match="x.csv: column 'x': line 2: 'abc'"):
        sio.read_table(tmp_path / "x.csv")


# --- malformed inputs ---------------------------------------------------------------


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f[name.replace("__", "/")] = value
    return path


def _text(path, text):
    path.write_text(text)
    return path


def _bytes(path, data):
    path.write_bytes(data)
    return path


def _truncated(path, writer):
    writer(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _phy(path, *, samples=(10, 20, 30), clusters=(0, 1, 0), sample_rate=3e4, params=""):
    path.mkdir()
    np.save(path / "spike_times.npy", np.asarray(samples, dtype=np.int64))
    np.save(path / "spike_clusters.npy", np.asarray(clusters, dtype=np.int32))
    rate = "" if sample_rate is None else f"sample_rate = {sample_rate!r}\n"
    (path / "params.py").write_text(f"dat_path = 'x.dat'\n{rate}{params}")
    return path


T5 = 0.01 * np.arange(1, 6)
MALFORMED = {
    "empty csv": (lambda p: _text(p / "e.csv", ""), {}, "the file is empty"),
    "empty h5": (lambda p: _text(p / "e.h5", ""), {}, "the file is empty"),
    "truncated h5": (
        lambda p: _truncated(
            p / "t.h5", lambda q: _h5(q, t=T5, spikes=np.ones((5, 2)))
        ),
        {},
        "not a readable HDF5 file",
    ),
    "truncated npz": (
        lambda p: _truncated(
            p / "t.npz", lambda q: _npz(q, t=T5, spikes=np.ones((5, 99)))
        ),
        {},
        "not a readable NPZ|truncated",
    ),
    "text named npz": (
        lambda p: _text(p / "x.npz", "unit,time\n1,2\n"),
        {},
        "not a readable NPZ",
    ),
    "not a phy folder": (lambda p: p, {}, "not a Phy/Kilosort output"),
    "missing path": (lambda p: p / "nope.h5", {}, "no such file or directory"),
    "h5 without datasets": (
        lambda p: _h5(p / "x.h5", foo=np.ones(3)),
        {},
        "no spike data.*/foo",
    ),
    "h5 shapes disagree": (
        lambda p: _h5(p / "x.h5", t=T5, spikes=np.ones((4, 2))),
        {},
        "/spikes: shape \\(4, 2\\) disagrees",
    ),
    "npz transposed": (
        lambda p: _npz(p / "x.npz", t=T5, spikes=np.ones((2, 5))),
        {},
        "transposed",
    ),
    "non-uniform t": (
        lambda p: _npz(p / "x.npz", t=[0.1, 0.2, 0.4], spikes=np.ones((3, 1))),
        {},
        "t: times must be uniform",
    ),
    "decreasing t": (
        lambda p: _h5(p / "x.h5", t=[0.3, 0.2, 0.1], spikes=np.ones((3, 1))),
        {},
        "/t: times must increase",
    ),
    "nan in t": (
        lambda p: _text(p / "x.csv", "t,1\n0.1,0\nnan,1\n"),
        {},
        "column 't': line 3: nan is not a valid time",
    ),
    "nan spike values": (
        lambda p: _h5(p / "x.h5", t=T5, spikes=[[0.0], [np.nan], [1], [0], [0]]),
        {},
        "/spikes: spike values must be finite; found nan at row 1, column 0",
    ),
    "inf spike values": (
        lambda p: _npz(p / "x.npz", t=T5, spikes=[[0.0], [np.inf], [1], [0], [0]]),
        {},
        "spikes: spike values must be finite",
    ),
    "negative counts": (
        lambda p: _text(p / "x.csv", "t,a\n1,0\n2,-1\n3,2\n"),
        {},
        "column 'a': line 3: -1 is negative; spike values must be >= 0",
    ),
    "ambiguous values": (
        lambda p: _npz(p / "x.npz", t=T5, spikes=[[0.5], [0], [1], [0], [0]]),
        {},
        "give values='counts' or values='amplitude'",
    ),
    "dt disagrees": (
        lambda p: _npz(p / "x.npz", t=T5, spikes=np.zeros((5, 1))),
        {"dt": 0.02},
        "given dt = 0.02 s disagrees",
    ),
    "nan spike time npz": (
        lambda p: _npz(
            p / "x.npz", spike_times=[0.1, np.nan], spike_times_index=[1, 2]
        ),
        {},
        "spike_times: unit #1 has a nan spike time",
    ),
    "nan spike time nwb": (
        lambda p: _h5(
            p / "x.nwb",
            units__spike_times=[np.nan],
            units__spike_times_index=np.array([1], np.uint8),
        ),
        {},
        "/units/spike_times: unit #0 has a nan spike time",
    ),
    "nan spike time csv": (
        lambda p: _text(p / "x.csv", "unit,time\n1,0.5\n1,NaN\n"),
        {},
        "column 'time': line 3: nan is not a valid spike time",
    ),
    "decreasing index": (
        lambda p: _h5(
            p / "x.h5",
            units__spike_times=[0.1, 0.2, 0.3],
            units__spike_times_index=np.array([2, 1, 3], np.uint8),
        ),
        {},
        "/units/spike_times_index: offsets must not decrease",
    ),
    "index out of range": (
        lambda p: _npz(p / "x.npz", spike_times=[0.1, 0.2], spike_times_index=[1, 5]),
        {},
        "spike_times_index: offset 5 is out of range",
    ),
    "missing index": (
        lambda p: _h5(p / "x.h5", units__spike_times=[0.1]),
        {},
        "/units/spike_times_index: missing",
    ),
    "nwb ids wrong length": (
        lambda p: _h5(
            p / "x.nwb",
            units__spike_times=[0.1, 0.2],
            units__spike_times_index=[1, 2],
            units__id=[1, 2, 3],
        ),
        {},
        "/units/id: 3 ids for 2 units",
    ),
    "dense ids wrong length": (
        lambda p: _npz(p / "x.npz", t=T5, spikes=np.zeros((5, 2)), unit_ids=[1]),
        {},
        "unit_ids: 1 unit ids for 2 columns",
    ),
    "csv no header": (
        lambda p: _text(p / "x.csv", "1,0.5\n2,0.25\n"),
        {},
        "no header line: line 1 holds numbers",
    ),
    "csv non-numeric time": (
        lambda p: _text(p / "x.csv", "unit,time\n1,0.5\n2,soon\n"),
        {},
        "column 'time': line 3: 'soon' is not a number",
    ),
    "csv non-numeric value": (
        lambda p: _text(p / "x.csv", "t,a\n1,0\n2,x\n3,0\n"),
        {},
        "column 'a': line 3: 'x' is not a number",
    ),
    "csv extra fields": (
        lambda p: _text(p / "x.csv", "unit,time\n1,0.5\n1,0.6,7\n"),
        {},
        "malformed rows",
    ),
    "csv unknown header": (
        lambda p: _text(p / "x.csv", "foo,bar\n1,2\n"),
        {},
        "neither events",
    ),
    "binary named csv": (
        lambda p: _bytes(p / "x.csv", b"\xff\xfe\x00\x01\x02"),
        {},
        "binary data|not UTF-8",
    ),
    "params without sample_rate": (
        lambda p: _phy(p / "ks", sample_rate=None),
        {},
        "params.py: sample_rate: no sample_rate given as a number",
    ),
    "params syntax error": (
        lambda p: _phy(p / "ks", params="sample_rate = = 3\n"),
        {},
        "params.py: line \\d+: not valid Python",
    ),
    "phy clusters wrong length": (
        lambda p: _phy(p / "ks", clusters=[0, 1]),
        {},
        "2 cluster ids for 3 spike times",
    ),
    "phy times 2-D": (
        lambda p: _phy(p / "ks", samples=np.ones((3, 2))),
        {},
        "expected shape \\(n,\\) or \\(n, 1\\)",
    ),
    "npz pickled objects": (
        lambda p: (
            np.savez(p / "x.npz", t=T5, spikes=np.array([{}] * 5, dtype=object))
            or p / "x.npz"
        ),
        {},
        "spikes: holds Python objects",
    ),
    "npz both layouts": (
        lambda p: _npz(
            p / "x.npz",
            t=T5,
            spikes=np.zeros((5, 1)),
            spike_times=[0.1],
            spike_times_index=[1],
        ),
        {},
        "choose one with --dataset",
    ),
    "h5 several candidates": (
        lambda p: _h5(
            p / "x.h5",
            t=T5,
            spikes=np.zeros((5, 1)),
            units__spike_times=[0.1],
            units__spike_times_index=[1],
        ),
        {},
        "several spike datasets \\(/spikes, /units/spike_times\\); choose one",
    ),
    "h5 dataset not found": (
        lambda p: _h5(p / "x.h5", t=T5, spikes=np.zeros((5, 1))),
        {"dataset": "/rates"},
        "/rates: no such dataset or group",
    ),
    "phy format on a file": (
        lambda p: _text(p / "x.csv", "unit,time\n"),
        {"fmt": "phy"},
        "reads a Phy/Kilosort output folder",
    ),
    "folder as csv": (lambda p: p, {"fmt": "csv"}, "is a folder, not a csv file"),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_inputs(tmp_path, case):
    build, kwargs, match = MALFORMED[case]
    folder = tmp_path / "in"
    folder.mkdir()
    path = build(folder)
    before = sorted(os.listdir(folder))
    with pytest.raises(SpikeDataError, match=match) as info:
        sio.read_spikes(path, **kwargs)
    # The message names the file (or a file inside the folder given).
    assert str(info.value).startswith(os.fspath(path))
    assert sorted(os.listdir(folder)) == before
    assert os.listdir(tmp_path) == ["in"]


def test_matrix_writer_without_with(tmp_path):
    writer = sio.open_matrix_writer(tmp_path / "r.npz", None, n_rows=3, unit_ids=[1])
    writer.append([0.1, 0.2], [[1.0], [2.0]])
    writer.append([0.3], [[3.0]])
    writer.close()
    with np.load(tmp_path / "r.npz") as z:
        np.testing.assert_array_equal(z["rates"][:, 0], [1.0, 2.0, 3.0])
    dropped = sio.open_matrix_writer(tmp_path / "x.h5", None, n_rows=3, unit_ids=[1])
    dropped.append([0.1], [[1.0]])
    dropped.abort()
    assert os.listdir(tmp_path) == ["r.npz"]


def test_lazy_dense_to_events(tmp_path, rng):
    counts = rng.poisson(0.2, size=(2000, 3))
    t = 5.0 + 0.002 * np.arange(1, 2001)
    sio.write_dense(tmp_path / "d.h5", t, counts, [3, 4, 5])
    with sio.read_spikes(tmp_path / "d.h5", lazy=True) as dense:
        trains = dense_to_events(dense, block_rows=300)
    np.testing.assert_array_equal(events_to_dense(trains, trains.grid(0.002)), counts)
