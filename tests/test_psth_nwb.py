"""PSTH output in NWB (per-trial rates as a pynwb TimeSeries), checked with
pynwb's reader and validator, and read back by spikerates in every format."""

from __future__ import annotations

import os
import warnings

import h5py
import numpy as np
import pytest
from session_helpers import write_trials_session

from spikerates.errors import SpikeDataError
from spikerates.psth import compute_psth, read_psth
from spikerates.spiketrains import SpikeTrains

pynwb = pytest.importorskip("pynwb")

EVENTS = np.arange(1.0, 20.0, 1.5)  # 13 trials
CONDITIONS = np.array(["a" if i % 2 else "b" for i in range(EVENTS.size)])


@pytest.fixture
def session(tmp_path, rng):
    """A pynwb file: three units (one silent, one observed from 2 s only)
    and a trials table with a condition column."""
    trains = [
        np.sort(np.concatenate([rng.uniform(0, 21, 300), EVENTS + 0.04])),
        np.sort(rng.uniform(0, 21, 80)),
        np.zeros(0),
    ]
    observed = [[[0.0, 21.0]], [[2.0, 21.0]], [[0.0, 21.0]]]
    path = write_trials_session(
        tmp_path / "session.nwb", trains, (5, 9, 12), EVENTS, CONDITIONS, observed
    )
    st = SpikeTrains(
        trains,
        unit_ids=np.array([5, 9, 12]),
        obs_intervals=[np.array(o) for o in observed],
    )
    return path, st


def _run(cli, path, out, *extra):
    result = cli.run(
        [
            "psth",
            path,
            "--events",
            "trials",
            "--window",
            "-0.5:0.5",
            "--dt",
            "0.05",
            "--group-by",
            "condition",
            "--bootstrap",
            "40",
            "-o",
            out,
            *extra,
        ]
    )
    assert result.exit_code == 0, result.stderr
    return result


def _expected(trains, **kwargs):
    return compute_psth(
        trains,
        EVENTS,
        (-0.5, 0.5),
        dt=0.05,
        groups=CONDITIONS,
        n_bootstrap=40,
        keep_trials=True,
        **kwargs,
    )


def test_trials_in_nwb_open_validate_and_read_back(cli, session, tmp_path):
    path, trains = session
    out = tmp_path / "psth.nwb"
    _run(cli, path, out, "--trials")
    want = _expected(trains)
    # The trial of the event at 1 s leaves unit 9's observation (from 2 s).
    assert np.isnan(want.trials[0, :, 1]).all()
    assert np.isfinite(want.trials[1:]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert pynwb.validate(path=os.fspath(out)) == []
        with pynwb.NWBHDF5IO(os.fspath(out), "r") as io:
            nwbfile = io.read()
            module = nwbfile.processing["spikerates"]
            series = module["trials"]
            data = series.data[()]
            assert data.shape == (20, EVENTS.size, 3)  # (time, trial, unit)
            np.testing.assert_array_equal(
                np.moveaxis(data, 1, 0), want.trials
            )  # NaN where they are
            assert series.unit == "Hz"
            assert series.rate == pytest.approx(20.0)
            assert series.starting_time == pytest.approx(-0.45)
            units = module["trials_units"].to_dataframe()
            assert units["unit_id"].tolist() == [5, 9, 12]
            events = module["trials_events"].to_dataframe()
            np.testing.assert_array_equal(events["event_time"], EVENTS)
            assert events["group"].tolist() == CONDITIONS.tolist()
    got = read_psth(os.fspath(out))
    np.testing.assert_array_equal(got.trials, want.trials)
    np.testing.assert_allclose(got.t, want.t, rtol=0, atol=1e-15)
    for name in ("mean", "sem", "ci_low", "ci_high"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    np.testing.assert_array_equal(got.n_trials, want.n_trials)
    np.testing.assert_array_equal(got.n_dropped, [[0, 0, 0], [0, 1, 0]])
    assert got.groups.tolist() == ["a", "b"]
    assert got.event_groups.tolist() == CONDITIONS.tolist()
    np.testing.assert_array_equal(got.unit_ids, [5, 9, 12])
    assert got.attrs["dt"] == 0.05 and got.attrs["kind"] == "binned"


def test_nwb_without_trials_and_with_kernel_tau(cli, session, tmp_path):
    path, trains = session
    out = tmp_path / "psth.nwb"
    _run(cli, path, out, "--kind", "gauss", "--tau", "0.08")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert pynwb.validate(path=os.fspath(out)) == []
    with h5py.File(out) as f:
        assert "processing" not in f or "spikerates" not in f["processing"]
    got = read_psth(os.fspath(out))
    want = _expected(trains, kind="gauss", tau=0.08)
    assert got.trials is None
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(got.tau, [0.08] * 3)


@pytest.mark.parametrize("ext", ["npz", "h5"])
def test_read_back_npz_and_hdf5(cli, session, tmp_path, ext):
    path, trains = session
    out = tmp_path / f"psth.{ext}"
    _run(cli, path, out, "--trials")
    got = read_psth(os.fspath(out))
    want = _expected(trains)
    np.testing.assert_array_equal(got.trials, want.trials)
    np.testing.assert_array_equal(got.mean, want.mean)
    assert got.groups.tolist() == ["a", "b"]
    assert got.attrs["n_bootstrap"] == 40


def test_read_psth_refuses_other_files(tmp_path):
    other = tmp_path / "x.npz"
    np.savez(other, t=np.arange(3.0))
    with pytest.raises(SpikeDataError, match="not a PSTH output: no unit_ids"):
        read_psth(os.fspath(other))
