"""``spikerates psth`` through CliRunner, with a pynwb trials table end to end."""

from __future__ import annotations

import csv
import io as pyio

import h5py
import numpy as np
import pytest
from session_helpers import write_trials_session

from spikerates.psth import compute_psth
from spikerates.spiketrains import SpikeTrains

EVENTS = np.arange(2.0, 60.0, 2.0)  # 29 trials
CONDITIONS = np.array(["left" if i % 3 else "right" for i in range(EVENTS.size)])


def _trains(rng):
    """Two units responding 50 ms after each event, one silent."""
    base = [np.sort(rng.uniform(0, 62, 600)), np.sort(rng.uniform(0, 62, 100))]
    evoked = EVENTS + 0.05 + rng.normal(0, 0.01, EVENTS.size)
    return [np.sort(np.concatenate([base[0], evoked])), base[1], np.zeros(0)]


@pytest.fixture
def session(tmp_path, rng):
    """An NWB file written by pynwb: a Units table and a trials table with a
    condition column."""
    pytest.importorskip("pynwb")
    trains = _trains(rng)
    path = write_trials_session(
        tmp_path / "session.nwb",
        trains,
        (21, 22, 23),
        EVENTS,
        CONDITIONS,
        [[[0.0, 62.0]]] * 3,
        description="stimulus side",
    )
    st = SpikeTrains(
        trains,
        unit_ids=np.array([21, 22, 23]),
        obs_intervals=[np.array([[0.0, 62.0]])] * 3,
    )
    return path, st


def test_nwb_trials_table_end_to_end(cli, session, tmp_path):
    path, trains = session
    out = tmp_path / "psth.h5"
    fig = tmp_path / "psth.png"
    result = cli.run(
        [
            "psth",
            path,
            "--events",
            "trials",
            "--window",
            "-0.5:1.0",
            "--dt",
            "0.05",
            "--group-by",
            "condition",
            "--bootstrap",
            "200",
            "--seed",
            "3",
            "-o",
            out,
            "--plot",
            fig,
        ]
    )
    assert result.exit_code == 0, result.stderr
    want = compute_psth(
        trains,
        EVENTS,
        (-0.5, 1.0),
        dt=0.05,
        groups=CONDITIONS,
        n_bootstrap=200,
        seed=3,
    )
    with h5py.File(out) as f:
        assert [g.decode() for g in f["groups"][()]] == ["left", "right"]
        np.testing.assert_array_equal(f["unit_ids"][()], [21, 22, 23])
        for name in ("mean", "sem", "ci_low", "ci_high"):
            np.testing.assert_allclose(f[name][()], getattr(want, name), rtol=1e-12)
        np.testing.assert_array_equal(f["n_trials"][()], [[19] * 3, [10] * 3])
        assert f.attrs["units"] == "Hz"
    # The response 50 ms after the event stands out in the mean.
    assert want.mean[0, :, 0].max() > 1.5 * np.median(want.mean[0, :, 0])
    assert 0.0 < want.t[np.argmax(want.mean[0, :, 0])] <= 0.1
    assert fig.read_bytes().startswith(b"\x89PNG")


def test_events_csv_align_to_and_long_csv(cli, session, tmp_path):
    path, trains = session
    events = tmp_path / "events.csv"
    with open(events, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["onset", "side"])
        for e, c in zip(EVENTS, CONDITIONS, strict=True):
            w.writerow([repr(float(e)), c])
    result = cli.run(
        [
            "psth",
            path,
            "--events",
            events,
            "--align-to",
            "onset",
            "--window",
            "0:0.2",
            "--dt",
            "0.1",
            "--bootstrap",
            "50",
        ]
    )
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(pyio.StringIO(result.stdout)))
    assert list(rows[0]) == [
        "group",
        "unit",
        "t",
        "mean",
        "sem",
        "ci_low",
        "ci_high",
        "n_trials",
    ]
    assert len(rows) == 2 * 3
    want = compute_psth(trains, EVENTS, (0.0, 0.2), dt=0.1, n_bootstrap=50)
    got = np.array([float(r["mean"]) for r in rows]).reshape(2, 3)
    np.testing.assert_allclose(got, want.mean[0], rtol=1e-15)
    assert {r["n_trials"] for r in rows} == {"29"}


def test_kernel_tau_auto_trials_and_notes(cli, session, tmp_path):
    path, trains = session
    out = tmp_path / "psth.npz"
    result = cli.run(
        [
            "-v",
            "psth",
            path,
            "--events",
            "trials",
            "--window",
            "-2.5:1.0",
            "--dt",
            "0.01",
            "--kind",
            "gauss",
            "--tau",
            "auto",
            "--trials",
            "--bootstrap",
            "20",
            "-o",
            out,
        ]
    )
    assert result.exit_code == 0, result.stderr
    # The first trial's window starts at -0.5 s, before the recording.
    assert f"spikerates: note: {path}: 1 of 29 trials left out" in result.stderr
    assert f"spikerates: {path}: tau per unit: 21:" in result.stderr
    with np.load(out) as z:
        assert z["trials"].shape == (29, 350, 3)
        assert np.all(np.isnan(z["trials"][0]))
        np.testing.assert_array_equal(z["n_dropped"], [[1, 1, 1]])
        tau = z["tau"]
    want = compute_psth(
        trains, EVENTS, (-2.5, 1.0), dt=0.01, kind="gauss", tau="auto", n_bootstrap=20
    )
    np.testing.assert_allclose(tau, want.tau, rtol=1e-12)
    assert 0.02 <= tau[0] < 0.2


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--window", "1:0"], ["--window"]),
        (["--window", "0:0.25", "--dt", "0.1"], ["--window", "whole number"]),
        (["--window", "0:1", "--tau", "0.1"], ["--kind"]),
        (["--window", "0:1", "--kind", "gauss"], ["--tau"]),
        (["--window", "0:1", "--kind", "expon", "--tau", "auto"], ["--tau", "gauss"]),
        (["--window", "0:1", "--pool"], ["--pool"]),
        (["--window", "0:1", "--trials"], ["--trials"]),
        (["--window", "0:1", "--ci", "1"], ["--ci"]),
    ],
)
def test_usage_errors(cli, session, args, fragments):
    path, _ = session
    result = cli.run(["psth", path, "--events", "trials", *args])
    cli.assert_usage_error(result, *fragments)


def test_data_errors(cli, session, tmp_path):
    path, _ = session
    result = cli.run(["psth", path, "--events", "epochs", "--window", "0:1"])
    cli.assert_one_line_error(result, "/intervals/epochs", "trials")
    result = cli.run(
        ["psth", path, "--events", "trials", "--window", "0:1", "--group-by", "side"]
    )
    cli.assert_one_line_error(result, "side", "condition")
    events = tmp_path / "e.csv"
    events.write_text("onset\n1.0\n")
    result = cli.run(["psth", path, "--events", events, "--window", "0:1"])
    cli.assert_one_line_error(result, "e.csv", "time")
    events.write_text("time\nsoon\n")
    result = cli.run(["psth", path, "--events", events, "--window", "0:1"])
    cli.assert_one_line_error(result, "e.csv", "numbers")
    npz = tmp_path / "x.npz"
    np.savez(npz, spike_times=np.array([1.0]), spike_times_index=np.array([1]))
    result = cli.run(["psth", npz, "--events", "trials", "--window", "0:1"])
    cli.assert_one_line_error(result, "no events file 'trials'")
