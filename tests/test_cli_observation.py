"""Observation intervals end to end: pynwb-written ``obs_intervals`` with a
gap and ``invalid_times``, and a CSV epochs file, through the commands."""

from __future__ import annotations

import csv
from datetime import datetime, timezone

import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")
nengo_extras = pytest.importorskip("nengo_extras.neurons")

DT = 0.01
T_STOP = 10.0
# Unit 0 is observed in [0, 4] and [6, 10]; the file is invalid in [8, 9].
OBS = [np.array([[0.0, 4.0], [6.0, 10.0]]), np.array([[0.0, 10.0]])]
INVALID = (8.0, 9.0)


def _spikes(rng, intervals, rate=20.0):
    """Poisson spikes inside ``intervals`` (none in the gaps or invalid time)."""
    times = []
    for a, b in intervals:
        n = rng.poisson(rate * (b - a))
        times.append(rng.uniform(a, b, n))
    times = np.sort(np.concatenate(times))
    keep = ~((times > INVALID[0]) & (times < INVALID[1]))
    return np.round(times[keep], 6)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    rng = np.random.default_rng(11)
    trains = [_spikes(rng, iv) for iv in OBS]
    path = tmp_path_factory.mktemp("obs") / "session.nwb"
    nwbfile = pynwb.NWBFile(
        session_description="observation intervals",
        identifier="obs-test",
        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )
    for times, iv in zip(trains, OBS, strict=True):
        nwbfile.add_unit(spike_times=times, obs_intervals=iv)
    nwbfile.add_invalid_time_interval(start_time=INVALID[0], stop_time=INVALID[1])
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return str(path), trains


def _reference_rates(trains, t_stop):
    """nengo_extras' kernel rates of the binned trains, all time observed."""
    from nengo_extras.neurons import rates_kernel

    n = int(round(t_stop / DT))
    t = (np.arange(n) + 1) * DT
    spikes = np.zeros((n, len(trains)))
    for u, times in enumerate(trains):
        k = np.ceil(np.round(times / DT, 9)).astype(int) - 1
        np.add.at(spikes[:, u], k, 1.0 / DT)
    return t, rates_kernel(t, spikes, kind="gauss", tau=0.04)


def _observed(t, intervals):
    return np.any([(t >= a - 1e-9) & (t <= b + 1e-9) for a, b in intervals], axis=0)


def test_rates_are_nan_outside_and_the_reference_inside(cli, recording, tmp_path):
    path, trains = recording
    out = tmp_path / "rates.npz"
    result = cli.run(["-q", "rates", "kernel", path, "--dt", DT, "-o", out])
    assert result.exit_code == 0, result.stderr
    with np.load(out) as f:
        t, rates = f["t"], f["rates"]
    t_ref, reference = _reference_rates(trains, T_STOP)
    np.testing.assert_allclose(t, t_ref, rtol=0, atol=1e-12)
    valid = [(0.0, INVALID[0]), (INVALID[1], T_STOP)]
    for u, iv in enumerate(OBS):
        seen = _observed(t, iv) & _observed(t, valid)
        assert np.all(np.isnan(rates[~seen, u]))
        np.testing.assert_allclose(
            rates[seen, u], reference[seen, u], rtol=1e-9, atol=1e-9
        )


def test_mean_rates_count_observed_time_only(cli, recording):
    path, trains = recording
    result = cli.run(["metrics", path, "--to", "csv"])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(result.stdout.splitlines()))
    observed_seconds = [4.0 + 2.0 + 1.0, 8.0 + 1.0]  # gaps and invalid time out
    for row, times, seconds in zip(rows, trains, observed_seconds, strict=True):
        assert int(row["num_spikes"]) == times.size
        assert float(row["firing_rate"]) == pytest.approx(times.size / seconds, 1e-9)


def test_csv_epochs_restrict_where_units_are_observed(cli, files, tmp_path):
    rng = np.random.default_rng(3)
    trains = [np.round(np.sort(rng.uniform(0, 5, 60)), 6) for _ in range(2)]
    source = files.write_events_npz(tmp_path / "ev.npz", trains, np.arange(2))
    epochs = tmp_path / "epochs.csv"
    epochs.write_text("start,stop\n0.5,2.0\n3.0,4.5\n")
    out = tmp_path / "rates.npz"
    args = ["-q", "rates", "kernel", source, "--dt", DT, "--t-stop", 5.0]
    result = cli.run([*args, "--epochs", epochs, "-o", out])
    assert result.exit_code == 0, result.stderr
    with np.load(out) as f:
        t, rates = f["t"], f["rates"]
    # Spikes outside the epochs are not observed: the reference sees only
    # the spikes inside them (closed intervals).
    inside = [times[_observed(times, [(0.5, 2.0), (3.0, 4.5)])] for times in trains]
    t_ref, reference = _reference_rates(inside, 5.0)
    # The output may start at the first epoch; its rows are the recording's.
    rows = np.rint(t / DT).astype(int) - 1
    np.testing.assert_allclose(t, t_ref[rows], rtol=0, atol=1e-12)
    assert t[0] <= 0.5 + DT and t[-1] == pytest.approx(5.0)
    seen = _observed(t, [(0.5, 2.0), (3.0, 4.5)])
    assert np.all(np.isnan(rates[~seen]))
    np.testing.assert_allclose(rates[seen], reference[rows][seen], rtol=1e-9, atol=1e-9)
