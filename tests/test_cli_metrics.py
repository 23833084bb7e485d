"""``spikerates metrics`` through CliRunner."""

from __future__ import annotations

import csv
import io as pyio
import json

import h5py
import numpy as np
import pytest

from spikerates.metrics import METRIC_NAMES, compute_metrics
from spikerates.spiketrains import SpikeTrains


@pytest.fixture
def recording(tmp_path, rng):
    trains = [np.sort(rng.uniform(0, 300, m)) for m in (3000, 400, 2)]
    trains.append(np.sort(np.concatenate([trains[1][::20] + 0.001, trains[1]])))
    path = tmp_path / "rec.npz"
    np.savez(
        path,
        spike_times=np.concatenate(trains),
        spike_times_index=np.cumsum([t.size for t in trains]),
        unit_ids=np.array([10, 11, 12, 13]),
    )
    return str(path), trains


def _expected(trains, **kwargs):
    lo = min(t.min() for t in trains)
    hi = max(t.max() for t in trains)
    st = SpikeTrains(trains, unit_ids=np.array([10, 11, 12, 13]), t_start=lo, t_stop=hi)
    return compute_metrics(st, **kwargs)


def test_tsv_for_phy(cli, recording, tmp_path):
    path, trains = recording
    out = tmp_path / "cluster_metrics.tsv"
    result = cli.run(["metrics", path, "-o", out, "--presence-bin", "30"])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(open(out, newline=""), delimiter="\t"))
    assert list(rows[0]) == ["cluster_id", *METRIC_NAMES]
    assert [r["cluster_id"] for r in rows] == ["10", "11", "12", "13"]
    want = _expected(trains, presence_bin=30.0)
    for name in METRIC_NAMES:
        got = np.array([float(r[name]) for r in rows])
        np.testing.assert_allclose(got, want.columns[name], rtol=1e-15, err_msg=name)
    assert int(rows[3]["isi_violations_count"]) == 20
    assert rows[2]["cv"] == "nan"


def test_parameters_reach_the_metrics(cli, recording):
    path, trains = recording
    result = cli.run(
        [
            "metrics",
            path,
            "--to",
            "json",
            "--isi-threshold",
            "0.002",
            "--min-isi",
            "0.0005",
            "--fano-window",
            "2",
        ]
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["attrs"] == {
        "presence_bin": 60.0,
        "isi_threshold": 0.002,
        "min_isi": 0.0005,
        "fano_window": 2.0,
    }
    want = _expected(trains, isi_threshold=0.002, min_isi=0.0005, fano_window=2.0)
    got = [r["isi_violations_ratio"] for r in doc["rows"]]
    np.testing.assert_allclose(got, want.columns["isi_violations_ratio"], rtol=1e-15)
    assert doc["rows"][2]["cv"] is None


def test_several_inputs_one_table(cli, recording, nwb_file, tmp_path):
    path, _ = recording
    out = tmp_path / "all.csv"
    result = cli.run(["metrics", path, nwb_file.path, "-o", out])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(open(out, newline="")))
    assert [r["file"] for r in rows] == [path] * 4 + [nwb_file.path] * 3
    assert [r["cluster_id"] for r in rows] == [
        "10",
        "11",
        "12",
        "13",
        "1001",
        "7",
        "-3",
    ]
    # Only the NWB file has labels: the others' are empty.
    label = [k for k in rows[0] if k not in ("file", "cluster_id", *METRIC_NAMES)]
    assert len(label) == 1
    assert [r[label[0]] for r in rows] == ["", "", "", "", "good", "mua", "good"]


@pytest.mark.parametrize("ext", ["npz", "h5"])
def test_binary_outputs_and_plot(cli, recording, tmp_path, ext):
    path, trains = recording
    out = tmp_path / f"m.{ext}"
    fig = tmp_path / "m.png"
    result = cli.run(["metrics", path, "-o", out, "--plot", fig])
    assert result.exit_code == 0, result.stderr
    want = _expected(trains)
    if ext == "npz":
        with np.load(out) as z:
            got = {k: z[k] for k in z.files}
    else:
        with h5py.File(out) as f:
            got = {k: f[k][()] for k in f}
            assert f.attrs["presence_bin"] == 60.0
    np.testing.assert_array_equal(got["cluster_id"], [10, 11, 12, 13])
    np.testing.assert_allclose(got["lv"], want.columns["lv"], rtol=1e-15)
    assert fig.read_bytes().startswith(b"\x89PNG")


def test_errors(cli, recording, tmp_path):
    path, _ = recording
    cli.assert_usage_error(
        cli.run(["metrics", path, "--presence-bin", "0"]), "--presence-bin"
    )
    cli.assert_usage_error(
        cli.run(["metrics", path, "--min-isi", "0.002"]), "--min-isi", "below"
    )
    cli.assert_usage_error(cli.run(["metrics", path, "-o", tmp_path / "m.xlsx"]))
    cli.assert_one_line_error(cli.run(["metrics", tmp_path / "none.npz"]), "none.npz")
    assert not (tmp_path / "m.xlsx").exists()


def test_help_defines_every_metric(cli):
    result = cli.run(["metrics", "--help"])
    assert result.exit_code == 0
    for name in METRIC_NAMES:
        assert name in result.stdout
    for ref in ("Hill et al. 2011", "Holt et al. 1996", "Shinomoto et al. 2003"):
        assert ref in result.stdout


def test_stdout_is_tsv(cli, recording):
    path, _ = recording
    result = cli.run(["metrics", path, "--units", "12"])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(pyio.StringIO(result.stdout), delimiter="\t"))
    assert [r["cluster_id"] for r in rows] == ["12"]
    assert rows[0]["num_spikes"] == "2"
