"""``spikerates rates count`` and ``rates kernel --tau auto`` through CliRunner."""

from __future__ import annotations

import csv
import io as pyio

import h5py
import numpy as np
import pytest

from spikerates.auto_tau import choose_taus
from spikerates.driver import compute_rates
from spikerates.spiketrains import Grid, SpikeTrains, bin_spikes


@pytest.fixture
def recording(tmp_path, rng):
    trains = [np.sort(rng.uniform(0, 20, m)) for m in (400, 60, 0)]
    t = trains[0]
    keep = rng.uniform(size=t.size) < 0.5 * (1 + np.sin(2 * np.pi * 0.5 * t))
    trains[0] = t[keep]
    path = tmp_path / "rec.npz"
    np.savez(
        path,
        spike_times=np.concatenate(trains),
        spike_times_index=np.cumsum([x.size for x in trains]),
        unit_ids=np.array([3, 1, 2]),
    )
    return str(path), trains


def test_counts_csv(cli, recording):
    path, trains = recording
    result = cli.run(
        ["rates", "count", path, "--dt", "0.5", "--t-start", "0", "--t-stop", "20"]
    )
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(pyio.StringIO(result.stdout)))
    assert rows[0] == ["t", "3", "1", "2"]
    counts = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    want = bin_spikes(trains, Grid(0.0, 0.5, 40))
    np.testing.assert_array_equal(counts, want)
    assert counts.sum() == sum(t.size for t in trains)


@pytest.mark.parametrize("chunk", ["0.7", "60"])
def test_rate_hdf5_streamed(cli, recording, tmp_path, chunk):
    path, trains = recording
    out = tmp_path / "c.h5"
    result = cli.run(
        [
            "rates",
            "count",
            path,
            "--dt",
            "0.1",
            "--as",
            "rate",
            "--t-start",
            "2",
            "--t-stop",
            "12",
            "--chunk-duration",
            chunk,
            "--units",
            "1,3",
            "-o",
            out,
            "--plot",
            tmp_path / "c.png",
        ]
    )
    assert result.exit_code == 0, result.stderr
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["unit_ids"][()], [3, 1])
        np.testing.assert_allclose(f["t"][()], 2 + 0.1 * np.arange(1, 101), rtol=1e-12)
        want = bin_spikes(trains[:2], Grid(2.0, 0.1, 100)) / 0.1
        np.testing.assert_allclose(f["rates"][()], want, rtol=1e-15)
        assert f.attrs["values"] == "rate" and f.attrs["units"] == "Hz"
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    # Spikes outside the window are counted in a note.
    assert "outside the window" in result.stderr


def test_count_bad_parameters(cli, recording):
    path, _ = recording
    cli.assert_usage_error(cli.run(["rates", "count", path, "--as", "hz"]), "--as")
    cli.assert_usage_error(cli.run(["rates", "count", path, "--dt", "0"]), "--dt")


def test_tau_auto_per_unit_and_pooled(cli, recording, tmp_path):
    path, trains = recording
    out = tmp_path / "r.h5"
    result = cli.run(
        ["-v", "rates", "kernel", path, "--tau", "auto", "--dt", "0.005", "-o", out]
    )
    assert result.exit_code == 0, result.stderr
    st = SpikeTrains(trains, unit_ids=np.array([3, 1, 2]))
    taus = choose_taus(st, 0.005)
    assert "tau auto: 3: " in result.stderr
    with h5py.File(out) as f:
        np.testing.assert_allclose(f.attrs["tau"], taus, rtol=1e-12)
        rates = f["rates"][()]
    for u in range(2):
        one = compute_rates(
            st.select_units([st.unit_ids[u]]),
            "kernel",
            tau=taus[u],
            dt=0.005,
            t_start=0.0,
            t_stop=rates.shape[0] * 0.005,
        )
        np.testing.assert_allclose(rates[:, u], one.rates[:, 0], rtol=1e-9, atol=1e-12)
    pooled = tmp_path / "p.h5"
    result = cli.run(
        [
            "rates",
            "kernel",
            path,
            "--tau",
            "auto",
            "--pool",
            "--dt",
            "0.005",
            "-o",
            pooled,
        ]
    )
    assert result.exit_code == 0, result.stderr
    with h5py.File(pooled) as f:
        assert f.attrs["tau"] == pytest.approx(choose_taus(st, 0.005, pool=True)[0])


def test_tau_auto_usage(cli, recording):
    path, _ = recording
    cli.assert_usage_error(
        cli.run(["rates", "kernel", path, "--tau", "auto", "--kind", "alpha"]), "gauss"
    )
    cli.assert_usage_error(cli.run(["rates", "kernel", path, "--pool"]), "--pool")
    cli.assert_usage_error(cli.run(["rates", "kernel", path, "--tau", "soon"]), "--tau")
