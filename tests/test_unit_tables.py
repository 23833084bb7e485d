"""Per-unit tables out and events tables in."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest

from spikerates.errors import ParameterError, SpikeDataError
from spikerates.io.unit_tables import (
    format_text_table,
    read_events_table,
    table_format,
    write_unit_table,
)
from spikerates.metrics import UnitTable


@pytest.fixture
def table():
    return UnitTable(
        {
            "cluster_id": np.array([3, 10]),
            "quality": np.array(["good", "mua"]),
            "num_spikes": np.array([5, 0]),
            "firing_rate": np.array([0.1 + 0.2, np.nan]),
        },
        {"presence_bin": 60.0},
    )


@pytest.mark.parametrize("fmt", ["tsv", "csv"])
def test_text_tables_round_trip(tmp_path, table, fmt):
    path = tmp_path / f"t.{fmt}"
    write_unit_table(path, table, fmt)
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t" if fmt == "tsv" else ","))
    assert rows[0] == ["cluster_id", "quality", "num_spikes", "firing_rate"]
    assert rows[1] == ["3", "good", "5", repr(0.1 + 0.2)]
    assert rows[2] == ["10", "mua", "0", "nan"]
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(path, sep="\t" if fmt == "tsv" else ",")
    assert frame["firing_rate"][0] == 0.1 + 0.2
    assert np.isnan(frame["firing_rate"][1])


def test_json_table(tmp_path, table):
    path = tmp_path / "t.json"
    write_unit_table(path, table, "json")
    doc = json.loads(path.read_text())
    assert doc["attrs"] == {"presence_bin": 60.0}
    assert doc["columns"] == list(table.columns)
    assert doc["rows"][1] == {
        "cluster_id": 10,
        "quality": "mua",
        "num_spikes": 0,
        "firing_rate": None,
    }


def test_binary_tables(tmp_path, table):
    write_unit_table(tmp_path / "t.npz", table, "npz")
    with np.load(tmp_path / "t.npz") as z:
        np.testing.assert_array_equal(z["cluster_id"], [3, 10])
        np.testing.assert_array_equal(z["quality"], ["good", "mua"])
    write_unit_table(tmp_path / "t.h5", table, "hdf5")
    with h5py.File(tmp_path / "t.h5") as f:
        assert f.attrs["presence_bin"] == 60.0
        assert [v.decode() for v in f["quality"][()]] == ["good", "mua"]
        np.testing.assert_array_equal(f["num_spikes"][()], [5, 0])


def test_table_format_rules():
    assert table_format("x.tsv", None) == "tsv"
    assert table_format("x.h5", None) == "hdf5"
    assert table_format("-", None) == "tsv"
    assert table_format("x.tsv", "json") == "json"
    assert table_format("x", "h5") == "hdf5"
    with pytest.raises(ParameterError, match="extension"):
        table_format("x.xlsx", None)
    with pytest.raises(ParameterError, match="must be one of"):
        table_format("x.tsv", "xlsx")


def test_text_layout(table):
    text = format_text_table(table)
    lines = text.splitlines()
    assert lines[0].split() == ["cluster_id", "quality", "num_spikes", "firing_rate"]
    assert lines[1].split() == ["3", "good", "5", "0.3"]
    assert lines[2].split() == ["10", "mua", "0", "-"]
    assert len({len(line) for line in lines[:1]}) == 1
    assert format_text_table(table, max_rows=1).splitlines()[-1] == "... 1 more units"


def test_read_events_csv_tsv_npz(tmp_path):
    (tmp_path / "e.csv").write_text("time,condition\n1.5,left\n2.5,right\n\n")
    cols = read_events_table(tmp_path / "e.csv")
    np.testing.assert_array_equal(cols["time"], ["1.5", "2.5"])
    np.testing.assert_array_equal(cols["condition"], ["left", "right"])
    (tmp_path / "e.tsv").write_text("time\tcondition\n1.5\tleft\n")
    assert list(read_events_table(tmp_path / "e.tsv")) == ["time", "condition"]
    np.savez(tmp_path / "e.npz", time=np.array([1.0, 2.0]), cond=np.array([0, 1]))
    cols = read_events_table(tmp_path / "e.npz")
    np.testing.assert_array_equal(cols["time"], [1.0, 2.0])


def test_read_nwb_trials_table(tmp_path):
    pynwb = pytest.importorskip("pynwb")
    nwb = pynwb.NWBFile(
        session_description="s",
        identifier="id",
        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )
    nwb.add_trial_column("condition", "stimulus side")
    for start, cond in [(1.0, "left"), (3.0, "right"), (5.0, "left")]:
        nwb.add_trial(start_time=start, stop_time=start + 1, condition=cond)
    path = tmp_path / "s.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    cols = read_events_table(path)
    np.testing.assert_array_equal(cols["start_time"], [1.0, 3.0, 5.0])
    np.testing.assert_array_equal(cols["condition"], ["left", "right", "left"])
    with pytest.raises(SpikeDataError, match=r"/intervals/epochs.*holds trials"):
        read_events_table(path, table="epochs")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "empty"),
        ("time,time\n1,2\n", "repeated"),
        ("time,c\n1\n", "line 2 has 1 fields"),
    ],
)
def test_bad_events_files(tmp_path, content, match):
    path = tmp_path / "e.csv"
    path.write_text(content)
    with pytest.raises(SpikeDataError, match=match):
        read_events_table(path)


def test_missing_events_file(tmp_path):
    with pytest.raises(SpikeDataError, match="no such events file"):
        read_events_table(tmp_path / "none.csv")
