"""``spikerates info`` through CliRunner."""

from __future__ import annotations

import csv
import io as pyio
import json

import numpy as np
import pytest


def _events_npz(path, trains, ids):
    np.savez(
        path,
        spike_times=np.concatenate(trains),
        spike_times_index=np.cumsum([t.size for t in trains]),
        unit_ids=np.asarray(ids),
    )
    return str(path)


@pytest.fixture
def two_files(tmp_path, rng):
    a = [np.sort(rng.uniform(0, 50, m)) for m in (100, 0, 7)]
    b = [np.sort(rng.uniform(0, 20, 30))]
    return (
        _events_npz(tmp_path / "a.npz", a, [5, 6, 7]),
        _events_npz(tmp_path / "b.npz", b, [1]),
        a,
        b,
    )


def test_readable_table(cli, two_files):
    path, _, trains, _ = two_files
    result = cli.run(["info", path])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == path
    assert "format: npz" in lines[1] and "layout: events" in lines[1]
    assert lines[2].startswith("  3 units, 107 spikes")
    header = lines[3].split()
    assert header == [
        "unit_id",
        "label",
        "num_spikes",
        "first_spike",
        "last_spike",
        "observed_duration",
        "firing_rate",
    ]
    # The empty unit: no first or last spike, a rate of 0.
    assert lines[5].split()[:2] == ["6", "0"]
    assert lines[5].split()[2:4] == ["-", "-"]


def test_tsv_of_several_files(cli, two_files, tmp_path):
    a, b, trains_a, trains_b = two_files
    out = tmp_path / "units.tsv"
    result = cli.run(["info", a, b, "-o", out])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(open(out, newline=""), delimiter="\t"))
    assert [r["file"] for r in rows] == [a, a, a, b]
    assert [r["unit_id"] for r in rows] == ["5", "6", "7", "1"]
    assert [int(r["num_spikes"]) for r in rows] == [100, 0, 7, 30]
    assert float(rows[0]["first_spike"]) == trains_a[0][0]
    assert rows[1]["first_spike"] == "nan"
    span = max(t.max() for t in trains_a if t.size) - min(
        t.min() for t in trains_a if t.size
    )
    assert float(rows[0]["observed_duration"]) == pytest.approx(span, rel=1e-12)
    assert float(rows[0]["firing_rate"]) == pytest.approx(100 / span, rel=1e-12)


def test_json_carries_provenance(cli, two_files):
    a, b, _, _ = two_files
    result = cli.run(["info", a, b, "--to", "json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    files = doc["attrs"]["files"]
    assert [f["file"] for f in files] == [a, b]
    assert files[0]["format"] == "npz" and files[0]["n_units"] == 3
    assert doc["rows"][1]["first_spike"] is None


def test_nwb_observation_intervals_and_labels(cli, nwb_file):
    result = cli.run(["info", nwb_file.path, "--to", "csv"])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(pyio.StringIO(result.stdout)))
    assert [r["unit_id"] for r in rows] == ["1001", "7", "-3"]
    assert [r["label"] for r in rows] == ["good", "mua", "good"]
    assert [float(r["observed_duration"]) for r in rows] == [2.5, 2.5, 2.5]
    assert float(rows[0]["firing_rate"]) == pytest.approx(4 / 2.5)
    result = cli.run(
        ["info", nwb_file.path, "--to", "csv", "--label", "good", "--t-stop", "1.0"]
    )
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(pyio.StringIO(result.stdout)))
    assert [r["unit_id"] for r in rows] == ["1001", "-3"]
    assert [float(r["observed_duration"]) for r in rows] == [1.0, 0.5]


def test_dense_input(cli, tmp_path):
    t = 0.001 * np.arange(1, 1001)
    spikes = np.zeros((1000, 2))
    spikes[[10, 500, 999], [0, 0, 1]] = 1000.0
    path = tmp_path / "dense.npz"
    np.savez(path, t=t, spikes=spikes)
    result = cli.run(["info", path, "--to", "tsv"])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(pyio.StringIO(result.stdout), delimiter="\t"))
    assert [int(r["num_spikes"]) for r in rows] == [2, 1]
    assert float(rows[0]["first_spike"]) == pytest.approx(0.011)
    assert float(rows[0]["observed_duration"]) == pytest.approx(1.0)


def test_errors(cli, tmp_path, two_files):
    result = cli.run(["info", tmp_path / "missing.npz"])
    cli.assert_one_line_error(result, "missing.npz")
    result = cli.run(["info", two_files[0], "--to", "xlsx"])
    cli.assert_usage_error(result, "--to")
    result = cli.run(["info", two_files[0], "--t-start", "5", "--t-stop", "1"])
    cli.assert_usage_error(result, "--t-stop")
