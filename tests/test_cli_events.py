"""``spikerates events`` through CliRunner.

Outputs are read back with numpy/h5py/csv (not spikerates.io) and compared
with the spike times written into the inputs.
"""

from __future__ import annotations

import io as pyio
import os

import h5py
import numpy as np
import pytest

N_UNITS = 4


@pytest.mark.parametrize("fmt_in", ["npz", "h5", "csv"])
@pytest.mark.parametrize("fmt_out", ["npz", "h5", "nwb", "csv"])
def test_from_dense(cli, files, tmp_path, dense_spikes, dense_files, fmt_in, fmt_out):
    t, spikes = dense_spikes
    out = tmp_path / f"events.{fmt_out}"
    result = cli.run(["events", dense_files[fmt_in], "-o", out])
    assert result.exit_code == 0, result.stderr
    trains, ids = files.read_events(out)
    assert ids == [str(j) for j in range(N_UNITS)]
    for got, want in zip(trains, files.times_of(t, spikes), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_to_stdout_and_units(cli, files, dense_spikes, dense_files):
    t, spikes = dense_spikes
    result = cli.run(["events", dense_files["npz"], "--units", "3,1"])
    assert result.exit_code == 0, result.stderr
    trains, ids = files.parse_events_csv(result.stdout)
    assert ids == ["1", "3"]
    for got, j in zip(trains, [1, 3], strict=True):
        np.testing.assert_allclose(got, files.times_of(t, spikes)[j], rtol=1e-12)


def test_to_stdout_npz(cli, dense_spikes, dense_files):
    t, spikes = dense_spikes
    result = cli.run(["events", dense_files["h5"], "--to", "npz"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes[:4] == b"PK\x03\x04"  # a zip file
    with np.load(pyio.BytesIO(result.stdout_bytes)) as z:
        assert len(z["spike_times"]) == np.count_nonzero(spikes)


def test_window_and_empty_unit(cli, files, tmp_path, events_file):
    path, trains = events_file
    out = tmp_path / "ev.npz"
    args = ["events", path, "-o", out, "--t-start", "0.05", "--t-stop", "0.25"]
    result = cli.run(args)
    assert result.exit_code == 0, result.stderr
    got, ids = files.read_events(out)
    assert ids == ["7", "3", "11"]
    want = [s[(s > 0.05) & (s <= 0.25)] for s in trains]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    n_outside = sum(len(s) for s in trains) - sum(len(w) for w in want)
    assert cli.error_lines(result) == [
        f"spikerates: note: {path}: {n_outside} spikes outside the window "
        "(0.05, 0.25] s were left out"
    ]
    quiet = cli.run(["-q", *args])
    assert quiet.exit_code == 0
    assert quiet.stderr == ""


def test_window_follows_the_binning_rule(cli, files, tmp_path):
    """Spikes within 1e-9 dt of a window bound are on the side a spike
    exactly on it would be; --t-stop snaps to the grid of --dt."""
    dt = 0.01
    times = np.array([0.1, 0.1 + 1e-13, 0.1 + 1e-6, 0.3 - 1e-13, 0.3, 0.3 + 1e-6])
    path = files.write_events_npz(tmp_path / "edges.npz", [times], np.array([1]))
    out = tmp_path / "w.npz"
    args = ["events", path, "-o", out, "--dt", dt, "--t-start", "0.1"]
    result = cli.run([*args, "--t-stop", "0.3004"])
    assert result.exit_code == 0, result.stderr
    got = files.read_events(out)[0][0]
    np.testing.assert_array_equal(got, times[2:5])
    assert "3 spikes outside the window (0.1, 0.3] s" in result.stderr


def test_phy_labels(cli, files, phy_dir):
    root, trains = phy_dir
    result = cli.run(["events", root, "--label", "good", "--to", "csv"])
    assert result.exit_code == 0, result.stderr
    got, ids = files.parse_events_csv(result.stdout)
    assert ids == ["0", "5"]
    for g, c in zip(got, [0, 5], strict=True):
        np.testing.assert_allclose(g, trains[c], rtol=1e-12)
    args = ["events", root, "--label", "good", "--label", "mua", "--from", "phy"]
    result = cli.run(args)
    assert result.exit_code == 0, result.stderr
    assert files.parse_events_csv(result.stdout)[1] == ["0", "2", "5"]


def test_from_dataset_and_from_format(cli, files, tmp_path, dense_spikes):
    t, spikes = dense_spikes
    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as f:
        f["a/t"] = t
        f["a/spikes"] = spikes
        f["b/t"] = t
        f["b/spikes"] = spikes[:, :2]
    result = cli.run(["events", path, "--dataset", "/b/spikes", "--to", "csv"])
    assert result.exit_code == 0, result.stderr
    assert files.parse_events_csv(result.stdout)[1] == ["0", "1"]
    # a file without a known extension, format given by --from
    odd = tmp_path / "spikes.dat"
    files.write_dense(tmp_path / "x.npz", t, spikes)
    os.replace(tmp_path / "x.npz", odd)
    result = cli.run(["events", odd, "--from", "npz", "-o", tmp_path / "e.csv"])
    assert result.exit_code == 0, result.stderr
    assert files.read_events(tmp_path / "e.csv")[1] == [str(j) for j in range(N_UNITS)]


def test_dt_checks_dense(cli, tmp_path, dense_files):
    out = tmp_path / "e.npz"
    result = cli.run(["events", dense_files["csv"], "--dt", "0.001", "-o", out])
    assert result.exit_code == 0, result.stderr
    os.remove(out)
    result = cli.run(["events", dense_files["csv"], "--dt", "0.005", "-o", out])
    cli.assert_one_line_error(result, dense_files["csv"])
    assert not out.exists()


def test_plot(cli, files, tmp_path, dense_files):
    fig = tmp_path / "fig.png"
    out = tmp_path / "out.npz"
    result = cli.run(["events", dense_files["npz"], "-o", out, "--plot", fig])
    assert result.exit_code == 0, result.stderr
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(files.read_events(out)[0]) == N_UNITS


def test_usage_error(cli, tmp_path, dense_files):
    cli.assert_usage_error(
        cli.run(["events", dense_files["npz"], "--label"]), "--label"
    )


def test_data_errors(cli, tmp_path, dense_files):
    out = tmp_path / "o.npz"
    result = cli.run(["events", dense_files["npz"], "--label", "good", "-o", out])
    cli.assert_one_line_error(result, dense_files["npz"], "label")
    path = tmp_path / "ev.npz"
    np.savez(
        path,
        spike_times=np.array([0.1, 0.2]),
        spike_times_index=[1, 3],
        unit_ids=[0, 1],
    )
    result = cli.run(["events", path, "-o", out])
    cli.assert_one_line_error(result, "ev.npz", "spike_times_index")
    np.savez(
        path,
        spike_times=np.array([0.1, 0.2]),
        spike_times_index=[1, 2],
        unit_ids=[0, 1, 2],
    )
    result = cli.run(["events", path, "-o", out])
    cli.assert_one_line_error(result, "ev.npz", "unit")
    assert not out.exists()


def test_single_input_into_directory(cli, tmp_path, dense_files):
    out = tmp_path / "results"
    out.mkdir()
    result = cli.run(["events", dense_files["csv"], "-o", out])
    assert result.exit_code == 0, result.stderr
    assert cli.entries(out) == ["spikes.npz"]
