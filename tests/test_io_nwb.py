"""NWB output checked with the field's own readers (pynwb, pynapple,
SpikeInterface), and NWB input: unit ids, intervals, session metadata."""

from __future__ import annotations

import json
import os
import tracemalloc
import warnings
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest

import spikerates.io as sio
from spikerates.errors import ParameterError
from spikerates.spiketrains import SpikeTrains

pynwb = pytest.importorskip("pynwb")


def validate(path) -> None:
    """pynwb's schema validation finds nothing, and pynwb reads the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert pynwb.validate(path=os.fspath(path)) == []
        with pynwb.NWBHDF5IO(os.fspath(path), "r") as io:
            io.read()


def read_nwb(path):
    """(units DataFrame, NWBFile) through pynwb."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        io = pynwb.NWBHDF5IO(os.fspath(path), "r")
        nwbfile = io.read()
    return io, nwbfile


@pytest.fixture
def trains() -> SpikeTrains:
    return SpikeTrains(
        [
            np.array([0.5, 0.001, 0.25, 0.30000000000000004]),
            np.array([]),
            np.array([1.2]),
        ],
        unit_ids=np.array([25, 3, 7]),
        labels=np.array(["good", "mua", "noise"]),
        label_column="quality",
        t_start=0.0,
        t_stop=2.0,
        obs_intervals=[
            np.array([[0.0, 2.0]]),
            np.array([[0.0, 0.5], [1.0, 2.0]]),
            np.array([[0.5, 2.0]]),
        ],
    )


# --- events --------------------------------------------------------------------


def test_events_are_a_valid_units_table(tmp_path, trains):
    path = tmp_path / "events.nwb"
    sio.write_events(path, trains, attrs={"dt": 0.001})
    validate(path)
    io, nwbfile = read_nwb(path)
    with io:
        units = nwbfile.units
        assert units.id[:].tolist() == [25, 3, 7]
        for i, want in enumerate(trains.spike_times):
            np.testing.assert_array_equal(units["spike_times"][i], want)
        # The labels keep the name of the column they came from.
        assert list(units["quality"][:]) == ["good", "mua", "noise"]
        for i, want in enumerate(trains.obs_intervals):
            np.testing.assert_array_equal(units["obs_intervals"][i], want)
        assert units.resolution == 0.001
    back = sio.read_spikes(path)
    assert back.unit_ids.tolist() == [25, 3, 7]
    assert back.label_column == "quality"
    assert back.labels.tolist() == ["good", "mua", "noise"]
    assert (back.t_start, back.t_stop) == (0.0, 2.0)
    for got, want in zip(back.obs_intervals, trains.obs_intervals, strict=True):
        np.testing.assert_array_equal(got, want)
    assert back.info["format"] == "nwb" and back.info["table"] == "/units"


def test_text_unit_ids_go_to_unit_name(tmp_path):
    trains = SpikeTrains([np.array([0.1]), np.array([0.2, 0.3])], unit_ids=["a", "b7"])
    path = tmp_path / "names.nwb"
    sio.write_events(path, trains)
    validate(path)
    io, nwbfile = read_nwb(path)
    with io:
        assert nwbfile.units.id[:].tolist() == [0, 1]
        assert list(nwbfile.units["unit_name"][:]) == ["a", "b7"]
    back = sio.read_spikes(path)
    assert back.unit_ids.tolist() == ["a", "b7"]
    assert back.info["id_column"] == "unit_name"


def test_events_open_in_pynapple(tmp_path, trains):
    nap = pytest.importorskip("pynapple")
    path = tmp_path / "events.nwb"
    # pynapple takes the time support of a group from its first unit, so the
    # first unit spans the others' spikes.
    trains.spike_times[0] = np.append(trains.spike_times[0], 1.5)
    sio.write_events(path, trains)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = nap.load_file(os.fspath(path))
        group = data["units"]
    assert sorted(group.keys()) == [3, 7, 25]
    for uid, want in zip(trains.unit_ids, trains.spike_times, strict=True):
        np.testing.assert_array_equal(group[int(uid)].index.values, np.sort(want))
    assert list(group.metadata["quality"][[25, 3, 7]]) == ["good", "mua", "noise"]


def test_events_open_in_spikeinterface(tmp_path, trains):
    extractors = pytest.importorskip("spikeinterface.extractors")
    path = tmp_path / "events.nwb"
    fs = 30000.0
    # Times on the sample grid, so SpikeInterface's frames are exact.
    on_grid = SpikeTrains(
        [np.array([3, 30, 3000]) / fs, np.array([]), np.array([15000]) / fs],
        unit_ids=[25, 3, 7],
    )
    sio.write_events(path, on_grid, attrs={"dt": 1 / fs})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sorting = extractors.read_nwb_sorting(os.fspath(path))
    assert sorting.get_sampling_frequency() == fs
    assert [int(u) for u in sorting.get_unit_ids()] == [25, 3, 7]
    for uid, want in zip([25, 3, 7], on_grid.spike_times, strict=True):
        frames = sorting.get_unit_spike_train(uid)
        np.testing.assert_array_equal(frames, np.rint(want * fs).astype(int))


def test_extra_arrays_and_attrs_keep_the_file_valid(tmp_path, trains):
    path = tmp_path / "sim.nwb"
    extra = {"gain": np.arange(3.0), "encoders": np.ones((3, 1))}
    sio.write_events(path, trains, extra=extra, attrs={"model": "lif"})
    validate(path)
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["gain"][()], extra["gain"])
        assert f.attrs["model"] == "lif" and "spikerates_version" in f.attrs


def test_session_metadata_is_carried_over(tmp_path, nwb_file):
    trains = sio.read_spikes(nwb_file.path)
    assert trains.info["session_description"] == "spikerates test session"
    assert trains.info["source_identifier"] == "spikerates-test"
    out = tmp_path / "copy.nwb"
    sio.write_events(out, trains)
    validate(out)
    io, nwbfile = read_nwb(out)
    with io:
        assert nwbfile.session_description == "spikerates test session"
        assert nwbfile.session_start_time == datetime(2024, 1, 1, tzinfo=timezone.utc)
        assert nwbfile.identifier != "spikerates-test"
        assert list(nwbfile.units["quality"][:]) == nwb_file.labels.tolist()
    again = sio.read_spikes(out)
    assert again.unit_ids.tolist() == nwb_file.unit_ids.tolist()
    for a, b in zip(again.obs_intervals, trains.obs_intervals, strict=True):
        np.testing.assert_array_equal(a, b)


def test_dense_and_arrays_are_valid_nwb(tmp_path):
    t = 0.01 * np.arange(1, 6)
    spikes = np.array([[0, 1], [0, 0], [2, 0], [0, 0], [1, 1]])
    sio.write_dense(tmp_path / "d.nwb", t, spikes, [5, 6])
    validate(tmp_path / "d.nwb")
    back = sio.read_spikes(tmp_path / "d.nwb", values="counts")
    np.testing.assert_array_equal(back.t, t)
    np.testing.assert_array_equal(back.spikes, spikes)
    assert back.unit_ids.tolist() == [5, 6]
    sio.write_arrays(tmp_path / "a.nwb", {"x": np.arange(3.0)}, attrs={"m": "lif"})
    validate(tmp_path / "a.nwb")
    assert sio.read_table(tmp_path / "a.nwb")["x"].tolist() == [0.0, 1.0, 2.0]


# --- rates -----------------------------------------------------------------------


def _stream(target, n_rows, ids, *, dt=0.001, t_start=-0.5, block=700, expect=True):
    attrs = {
        "estimator": "kernel",
        "kind": "gauss",
        "tau": 0.04,
        "dt": dt,
        "t_start": t_start,
        "units": "Hz",
    }
    # Blocks are made as they are written, so that memory measurements see
    # only what the writer keeps.
    with sio.open_matrix_writer(
        target, None, n_rows=n_rows, unit_ids=ids, attrs=attrs
    ) as writer:
        for k0 in range(0, n_rows, block):
            k = np.arange(k0, min(k0 + block, n_rows))
            chunk = np.add.outer(k, np.arange(len(ids))).astype(float)
            writer.append(t_start + (k + 1) * dt, chunk)
    if not expect:
        return None
    k = np.arange(n_rows)
    return t_start + (k + 1) * dt, np.add.outer(k, np.arange(len(ids))).astype(float)


def test_rates_are_a_timeseries_in_hz(tmp_path):
    path = tmp_path / "rates.nwb"
    t, values = _stream(path, 2500, np.array([4, 8, 15]))
    validate(path)
    io, nwbfile = read_nwb(path)
    with io:
        series = nwbfile.processing["spikerates"]["rates"]
        assert series.unit == "Hz"
        assert series.starting_time == t[0] and series.rate == 1000.0
        np.testing.assert_array_equal(series.data[:], values)
        params = json.loads(series.comments)
        assert params["tau"] == 0.04 and params["kind"] == "gauss"
        table = nwbfile.processing["spikerates"]["rates_units"]
        assert list(table["unit_id"][:]) == [4, 8, 15]
    with h5py.File(path) as f:
        rows, columns = f["processing/spikerates/rates/data"].chunks
        # Chunks of whole rows, at most about 1 MiB.
        assert columns == 3 and rows * 3 * 8 <= 2**20
    back = sio.read_spikes(
        path, values="amplitude", dataset="/processing/spikerates/rates"
    )
    # The grid comes back exactly as t_start + (k+1)*dt.
    np.testing.assert_array_equal(back.t, t)
    np.testing.assert_array_equal(back.spikes, values)
    assert back.unit_ids.tolist() == [4, 8, 15]


def test_rates_carry_session_metadata_given_in_attrs(tmp_path, nwb_file):
    info = sio.read_spikes(nwb_file.path).info
    target = tmp_path / "rates.nwb"
    with sio.open_matrix_writer(
        target, None, n_rows=2, unit_ids=[1], attrs={"dt": 0.5, **info}
    ) as writer:
        writer.append(np.array([0.5, 1.0]), np.ones((2, 1)))
    validate(target)
    io, nwbfile = read_nwb(target)
    with io:
        assert nwbfile.session_description == "spikerates test session"
        assert nwbfile.session_start_time == datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_rates_open_in_pynapple(tmp_path):
    nap = pytest.importorskip("pynapple")
    path = tmp_path / "rates.nwb"
    t, values = _stream(path, 300, np.array([1, 2]), t_start=0.0, block=128)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = nap.load_file(os.fspath(path))["rates"]
    np.testing.assert_allclose(frame.index.values, t, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(frame.values, values)


@pytest.mark.slow
def test_streamed_nwb_memory_does_not_grow_with_rows(tmp_path):
    # Load pynwb and its schema once, outside the measurement.
    _stream(tmp_path / "warm.nwb", 10, range(8))

    def peak(n_rows: int) -> int:
        tracemalloc.start()
        try:
            _stream(
                tmp_path / f"m{n_rows}.nwb", n_rows, range(8), block=500, expect=False
            )
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(5_000), peak(80_000)
    # 80 000 rows x 8 float64 = 5 MB of data; the peak does not follow it.
    assert large < small + 1_000_000


def test_nwb_rates_failure_leaves_nothing(tmp_path):
    target = tmp_path / "r.nwb"
    with pytest.raises(RuntimeError, match="midway"):
        with sio.open_matrix_writer(target, None, n_rows=10, unit_ids=[1]) as w:
            w.append(np.arange(5.0), np.ones((5, 1)))
            raise RuntimeError("estimator failed midway")
    assert os.listdir(tmp_path) == []


# --- reading NWB from other tools --------------------------------------------------


def test_sorter_ids_in_unit_name_win(tmp_path, nwb_writer):
    # As neuroconv writes SpikeInterface sortings: row ids 0..n-1, the
    # sorter's ids in unit_name.
    units = [
        {"spike_times": [0.1 * (i + 1)], "id": i, "quality": "good"} for i in range(3)
    ]
    path = nwb_writer(tmp_path / "si.nwb", units)
    with h5py.File(path, "a") as f:
        f["units"].create_dataset("unit_name", data=np.array([b"3", b"25", b"7"]))
    trains = sio.read_spikes(path)
    assert trains.unit_ids.tolist() == [3, 25, 7]
    assert trains.info["id_column"] == "unit_name"
    np.testing.assert_array_equal(trains.select_units([25]).spike_times[0], [0.2])
    rows = sio.read_spikes(path, id_column="id")
    assert rows.unit_ids.tolist() == [0, 1, 2] and rows.info["id_column"] == "id"
    with pytest.raises(ParameterError, match="no column 'cluster'.*unit_name"):
        sio.read_spikes(path, id_column="cluster")


def test_repeated_unit_names_fall_back_to_row_ids(tmp_path, nwb_writer):
    units = [{"spike_times": [0.1], "id": 10 + i, "quality": "good"} for i in range(2)]
    path = nwb_writer(tmp_path / "dup.nwb", units)
    with h5py.File(path, "a") as f:
        f["units"].create_dataset("unit_name", data=np.array([b"x", b"x"]))
    trains = sio.read_spikes(path)
    assert trains.unit_ids.tolist() == [10, 11] and trains.info["id_column"] == "id"
    with pytest.raises(ParameterError, match="repeated values"):
        sio.read_spikes(path, id_column="unit_name")


def test_neo_nwbio_names_units_by_name(tmp_path):
    neo = pytest.importorskip("neo")
    pq = pytest.importorskip("quantities")
    from neo.io import NWBIO

    block = neo.Block(name="b")
    block.annotate(session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    segment = neo.Segment(name="s")
    block.segments.append(segment)
    times = {"unit17": [0.25, 0.5], "unit4": [0.125]}
    for name, values in times.items():
        segment.spiketrains.append(
            neo.SpikeTrain(values * pq.s, t_stop=2 * pq.s, name=name)
        )
    path = tmp_path / "neo.nwb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        NWBIO(os.fspath(path), mode="w").write_all_blocks([block])
    trains = sio.read_spikes(path)
    assert trains.info["id_column"] == "_name"
    assert sorted(trains.unit_ids.tolist()) == sorted(times)
    for uid, got in zip(trains.unit_ids, trains.spike_times, strict=True):
        np.testing.assert_array_equal(got, times[str(uid)])


def test_invalid_times_are_cut_from_obs_intervals(tmp_path, nwb_file):
    path = tmp_path / "invalid.nwb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pynwb.NWBHDF5IO(nwb_file.path, "r") as src:
            nwbfile = src.read()
            nwbfile.add_invalid_time_interval(start_time=0.2, stop_time=0.6)
            with pynwb.NWBHDF5IO(os.fspath(path), "w") as dst:
                dst.export(src_io=src, nwbfile=nwbfile)
    trains = sio.read_spikes(path)
    np.testing.assert_array_equal(trains.obs_intervals[0], [[0.0, 0.2], [0.6, 2.5]])
    np.testing.assert_array_equal(
        trains.obs_intervals[1], [[0.0, 0.2], [0.6, 1.0], [1.5, 3.0]]
    )
    np.testing.assert_array_equal(trains.obs_intervals[2], [[0.6, 3.0]])


def test_two_units_tables_say_which_was_used(tmp_path, nwb_file):
    path = tmp_path / "two.nwb"
    with h5py.File(nwb_file.path) as src, h5py.File(path, "w") as dst:
        src.copy("units", dst, name="units")
        dst.create_group("processing/curated")
        src.copy("units", dst["processing/curated"], name="units")
    trains = sio.read_spikes(path)
    assert trains.info["table"] == "/units"
    assert "/processing/curated/units/spike_times" in trains.info["choice"]
    assert "--dataset" in trains.info["choice"]
    other = sio.read_spikes(path, dataset="/processing/curated/units")
    assert other.info["table"] == "/processing/curated/units"
    assert "choice" not in other.info


def test_nwb_through_standard_output_and_input(tmp_path, monkeypatch, trains):
    import io as pyio
    import sys

    out = pyio.BytesIO()
    monkeypatch.setattr(sys, "stdout", pyio.TextIOWrapper(out))
    sio.write_events("-", trains, "nwb")
    data = out.getvalue()
    (tmp_path / "piped.nwb").write_bytes(data)
    validate(tmp_path / "piped.nwb")

    class Stdin(pyio.TextIOWrapper):
        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(sys, "stdin", Stdin(pyio.BytesIO(data)))
    back = sio.read_spikes("-")
    assert back.unit_ids.tolist() == trains.unit_ids.tolist()
    assert back.info["format"] == "nwb" and back.label_column == "quality"
