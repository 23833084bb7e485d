"""Files written by the field's tools (SpikeInterface, pynapple, neo with
NIX, Phy) read with exact times and the tools' own unit ids; flat spike
arrays; interval tables; formats refused with one clear line."""

from __future__ import annotations

import os
import warnings
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest

import spikerates.io as sio
from spikerates.errors import ParameterError, SpikeDataError

FS = 30000.0
# SpikeInterface ids (text, in SpikeInterface's order) -> spike samples.
SI_UNITS = {"u3": np.array([10, 500, 900, 29999]), "u25": np.array([5, 1500])}


def _si_sorting(segments: int = 1):
    si = pytest.importorskip("spikeinterface.core")
    dicts = [{k: v + 7 * seg for k, v in SI_UNITS.items()} for seg in range(segments)]
    sorting = si.NumpySorting.from_unit_dict(dicts, sampling_frequency=FS)
    sorting.set_property("quality", np.array(["good", "mua"]))
    return sorting


def _check_si(trains, sorting, segment: int = 0) -> None:
    assert trains.unit_ids.tolist() == list(sorting.get_unit_ids())
    for uid, got in zip(trains.unit_ids, trains.spike_times, strict=True):
        want = sorting.get_unit_spike_train(uid, segment_index=segment) / FS
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("layout", ["numpy_folder", "npz_folder"])
def test_spikeinterface_folders(tmp_path, layout):
    sorting = _si_sorting()
    folder = tmp_path / layout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sorting.save(folder=folder, format=layout)
    assert sio.detect_format(folder) == "spikeinterface"
    trains = sio.read_spikes(folder)
    _check_si(trains, sorting)
    assert trains.labels.tolist() == ["good", "mua"]
    assert trains.label_column == "quality"
    assert trains.info["layout"] == layout
    assert sio.read_spikes(folder, "si").n_units == 2


def test_spikeinterface_single_npz(tmp_path):
    si = pytest.importorskip("spikeinterface.core")
    sorting = _si_sorting()
    path = tmp_path / "sorting.npz"
    si.NpzSortingExtractor.write_sorting(sorting, path)
    trains = sio.read_spikes(path)
    _check_si(trains, sorting)
    assert trains.info["layout"] == "spikeinterface npz"


def test_spikeinterface_segments(tmp_path):
    si = pytest.importorskip("spikeinterface.core")
    sorting = _si_sorting(segments=2)
    path = tmp_path / "two.npz"
    si.NpzSortingExtractor.write_sorting(sorting, path)
    folder = tmp_path / "two_folder"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sorting.save(folder=folder, format="numpy_folder")
    for source in (path, folder):
        with pytest.raises(
            ParameterError, match="2 segments; choose one with --segment"
        ):
            sio.read_spikes(source)
        _check_si(sio.read_spikes(source, segment=1), sorting, segment=1)
        with pytest.raises(ParameterError, match="got segment 5"):
            sio.read_spikes(source, segment=5)


def test_pynapple_tsgroup_npz(tmp_path):
    nap = pytest.importorskip("pynapple")
    times = {3: np.array([0.1, 0.5, 0.9, 0.30000000000000004]), 25: np.array([0.05])}
    group = nap.TsGroup(
        {k: nap.Ts(np.sort(v)) for k, v in times.items()},
        time_support=nap.IntervalSet(0, 2),
    )
    group.set_info(quality=["good", "mua"])  # pickled by pynapple; not read
    path = tmp_path / "group.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group.save(os.fspath(path))
    trains = sio.read_spikes(path)
    assert trains.unit_ids.tolist() == [int(k) for k in group.keys()]
    for uid, got in zip(trains.unit_ids, trains.spike_times, strict=True):
        np.testing.assert_array_equal(got, group[int(uid)].index.values)
    assert (trains.t_start, trains.t_stop) == (0.0, 2.0)
    np.testing.assert_array_equal(trains.obs_intervals[0], [[0.0, 2.0]])
    assert trains.info["layout"] == "pynapple TsGroup"


def _neo_block(n_segments: int = 1):
    neo = pytest.importorskip("neo")
    pq = pytest.importorskip("quantities")
    pytest.importorskip("nixio")
    block = neo.Block(name="block")
    for s in range(n_segments):
        segment = neo.Segment(name=f"seg{s}")
        block.segments.append(segment)
        segment.spiketrains.append(
            neo.SpikeTrain([0.1, 0.25, 0.5 + s] * pq.s, t_stop=3 * pq.s, name="cell A")
        )
        segment.spiketrains.append(
            neo.SpikeTrain(
                [300.0, 1200.0] * pq.ms,
                t_start=100 * pq.ms,
                t_stop=3000 * pq.ms,
                name="cell B",
            )
        )
    return block


def _write_nix(path, block) -> None:
    from neo.io import NixIO

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NixIO(os.fspath(path), mode="ow") as io:
            io.write_block(block)


def test_neo_nix_file(tmp_path):
    block = _neo_block()
    path = tmp_path / "session.nix"
    _write_nix(path, block)
    from neo.io import NixIO

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NixIO(os.fspath(path), mode="ro") as io:
            read_back = io.read_block()
    expected = {
        st.name: st.rescale("s").magnitude for st in read_back.segments[0].spiketrains
    }
    for name in ("session.nix", "session.h5"):
        if name != "session.nix":
            os.link(path, tmp_path / name)
        trains = sio.read_spikes(tmp_path / name)
        assert sorted(trains.unit_ids.tolist()) == ["cell A", "cell B"]
        for uid, got in zip(trains.unit_ids, trains.spike_times, strict=True):
            np.testing.assert_allclose(got, expected[uid], rtol=1e-15)
        np.testing.assert_array_equal(
            trains.select_units(["cell A"]).spike_times[0], [0.1, 0.25, 0.5]
        )
        assert (trains.t_start, trains.t_stop) == (0.0, 3.0)
        assert trains.info["format"] == "nix"


def test_nix_segments_and_unexpected_layouts(tmp_path):
    path = tmp_path / "two.nix"
    _write_nix(path, _neo_block(n_segments=2))
    with pytest.raises(ParameterError, match="2 segments with spike trains"):
        sio.read_spikes(path)
    second = sio.read_spikes(path, segment=1)
    np.testing.assert_array_equal(
        second.select_units(["cell A"]).spike_times[0], [0.1, 0.25, 1.5]
    )
    empty = tmp_path / "empty.nix"
    with h5py.File(empty, "w") as f:
        f.attrs["format"] = "nix"
        f.create_group("data/block/data_arrays")
    with pytest.raises(SpikeDataError, match="NIX file: holds no neo spike trains"):
        sio.read_spikes(empty)
    plain = tmp_path / "plain.nix"
    with h5py.File(plain, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(SpikeDataError, match="NIX file: the HDF5 root has no"):
        sio.read_spikes(plain)


def test_phy_cluster_info_labels(tmp_path, phy_writer):
    samples = np.array([30, 60, 90, 120])
    clusters = np.array([1, 2, 3, 1])
    folder = phy_writer(tmp_path / "phy", samples, clusters)
    with open(os.path.join(folder, "cluster_info.tsv"), "w") as fh:
        fh.write("cluster_id\tAmplitude\tKSLabel\tgroup\tn_spikes\n")
        fh.write("1\t10.5\tgood\tnoise\t2\n")  # curated: group wins
        fh.write("2\t8.0\tmua\t\t1\n")  # not curated: KSLabel
        fh.write("3\t9.0\tgood\t\t1\n")
    trains = sio.read_spikes(folder)
    assert trains.labels.tolist() == ["noise", "mua", "good"]
    assert trains.label_column == "KSLabel"
    with open(os.path.join(folder, "cluster_group.tsv"), "w") as fh:
        fh.write("cluster_id\tgroup\n2\tgood\n")
    trains = sio.read_spikes(folder)
    assert trains.labels.tolist() == ["noise", "good", "good"]
    assert trains.label_column == "group"


@pytest.mark.parametrize("fmt", ["npz", "h5"])
def test_flat_spike_times_and_clusters(tmp_path, fmt):
    times = np.array([0.5, 0.1, 0.30000000000000004, 0.2])
    clusters = np.array([7, 3, 7, 3])
    samples = np.array([15000, 3000, 9000, 6000], dtype=np.uint64)
    cases = {
        "seconds": {"spike_times": times, "spike_clusters": clusters},
        "samples": {
            "spike_times": samples,
            "spike_clusters": clusters,
            "sample_rate": np.float64(FS),
        },
    }
    for name, arrays in cases.items():
        path = tmp_path / f"{name}.{fmt}"
        if fmt == "npz":
            np.savez(path, **arrays)
        else:
            with h5py.File(path, "w") as f:
                for key, value in arrays.items():
                    f[key] = value
        trains = sio.read_spikes(path)
        assert trains.unit_ids.tolist() == [3, 7]
        want = times if name == "seconds" else samples / FS
        for uid, got in zip([3, 7], trains.spike_times, strict=True):
            np.testing.assert_array_equal(got, np.sort(want[clusters == uid]))
        assert trains.info["layout"] == "flat"
    bad = tmp_path / f"norate.{fmt}"
    if fmt == "npz":
        np.savez(bad, spike_times=samples, spike_clusters=clusters)
    else:
        with h5py.File(bad, "w") as f:
            f["spike_times"], f["spike_clusters"] = samples, clusters
    with pytest.raises(SpikeDataError, match="integer sample numbers.*sample rate"):
        sio.read_spikes(bad)


def test_nwb_zarr_store_is_one_clear_line(tmp_path):
    store = tmp_path / "session.nwb.zarr"
    store.mkdir()
    (store / ".zgroup").write_text('{"zarr_format": 2}')
    with pytest.raises(SpikeDataError) as info:
        sio.read_spikes(store)
    message = str(info.value)
    assert "Zarr" in message and "NWBZarrIO" in message and "\n" not in message


def test_pickled_arrays_are_never_loaded(tmp_path, monkeypatch):
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    path = tmp_path / "objects.npz"
    np.savez(
        path,
        t=np.array([0.1, 0.2]),
        index=np.array([1, 1]),
        keys=np.array([1]),
        _metadata=np.array([{"a": 1}], dtype=object),
    )
    assert sio.read_spikes(path).unit_ids.tolist() == [1]
    evil = tmp_path / "evil.npz"
    np.savez(
        evil, spike_times=np.array([{"x": 1}], dtype=object), spike_times_index=[1]
    )
    with pytest.raises(SpikeDataError, match="pickled"):
        sio.read_spikes(evil)


# --- intervals -----------------------------------------------------------------


def test_intervals_from_csv(tmp_path):
    path = tmp_path / "epochs.csv"
    path.write_text("start,stop,condition\n0.5,1.25,left\n2,3.1,right\n")
    np.testing.assert_array_equal(sio.read_intervals(path), [[0.5, 1.25], [2.0, 3.1]])
    table = sio.read_time_intervals_table(path)
    assert list(table)[:2] == ["start_time", "stop_time"]
    assert table["condition"].tolist() == ["left", "right"]
    bad = tmp_path / "bad.csv"
    bad.write_text("start,stop\n1,0.5\n")
    with pytest.raises(SpikeDataError, match="row 0: stop 0.5 is before start 1.0"):
        sio.read_intervals(bad)
    with pytest.raises(SpikeDataError, match="expected interval columns"):
        (tmp_path / "x.csv").write_text("a,b\n1,2\n")
        sio.read_intervals(tmp_path / "x.csv")


def test_intervals_from_nwb_trials(tmp_path, nwb_writer):
    pynwb = pytest.importorskip("pynwb")
    nwbfile = pynwb.NWBFile(
        session_description="trials",
        identifier="t",
        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )
    nwbfile.add_trial_column("condition", "stimulus side")
    nwbfile.add_trial_column("contrast", "stimulus contrast")
    for start, stop, side, contrast in [
        (0.0, 1.0, "left", 0.5),
        (1.5, 2.5, "right", 1.0),
        (3.0, 4.25, "left", 0.25),
    ]:
        nwbfile.add_trial(
            start_time=start, stop_time=stop, condition=side, contrast=contrast
        )
    nwbfile.add_epoch(start_time=0.0, stop_time=5.0, tags=["all"])
    path = tmp_path / "trials.nwb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pynwb.NWBHDF5IO(os.fspath(path), "w") as io:
            io.write(nwbfile)
    np.testing.assert_array_equal(
        sio.read_intervals(path), [[0.0, 1.0], [1.5, 2.5], [3.0, 4.25]]
    )
    np.testing.assert_array_equal(sio.read_intervals(path, "epochs"), [[0.0, 5.0]])
    table = sio.read_time_intervals_table(path, "/intervals/trials")
    assert table["condition"].tolist() == ["left", "right", "left"]
    np.testing.assert_array_equal(table["contrast"], [0.5, 1.0, 0.25])
    assert table["id"].tolist() == [0, 1, 2]
    epochs = sio.read_time_intervals_table(path, "epochs")
    assert [list(t) for t in epochs["tags"]] == [[b"all"]] or [
        [str(x) for x in t] for t in epochs["tags"]
    ] == [["all"]]
    with pytest.raises(SpikeDataError, match="no TimeIntervals table"):
        sio.read_intervals(path, "stimuli")
