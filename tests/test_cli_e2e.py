"""End-to-end tests: the installed ``spikerates`` script in subprocesses.

Real shell pipelines, standard streams and exit codes, and peer checks of
the simulated populations and rate estimates against analytic LIF rates
(nengo's ``LIFRate`` as the oracle).
"""

from __future__ import annotations

import io as pyio
import os
import subprocess
import sys

import h5py
import nengo
import nengo_extras.neurons as reference
import numpy as np
import pytest

from spikerates import estimators

# ----------------------------------------------------------------------------
# The script itself


def test_version_and_help(script):
    result = script.run("--version")
    from spikerates import __version__

    assert __version__ in result.stdout.decode()
    for command in (["events"], ["rates", "kernel"], ["rates", "isi"], ["tuning"]):
        assert b"Examples:" in script.run(*command, "--help").stdout


def test_help_imports_nothing_heavy():
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "spikerates", "--help"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.decode().splitlines()
        if line.startswith("import time:")
    }
    assert b"Usage:" in result.stdout
    assert not imported & {"numpy", "scipy", "h5py", "matplotlib", "pandas", "tqdm"}


def test_exit_codes_and_one_line_errors(script, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    result = script.run("rates", "kernel", bad, "-o", tmp_path / "o.h5", check=False)
    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spikerates: error: ")
    assert str(bad) in lines[0]
    assert sorted(os.listdir(tmp_path)) == ["bad.npz"]
    result = script.run("rates", "kernel", bad, "--tau", "0", check=False)
    assert result.returncode == 2
    assert b"--tau" in result.stderr
    result = script.run("-v", "events", bad, check=False)
    assert result.returncode == 1
    assert b"Traceback" in result.stderr


def test_closed_pipe_is_quiet(script, tmp_path):
    result = script.shell(
        "spikerates simulate --n-neurons 300 --duration 3 --seed 1 | head -c 200",
        tmp_path,
    )
    assert b"Traceback" not in result.stderr
    assert len(result.stdout) == 200


# ----------------------------------------------------------------------------
# Shell pipelines


def test_pipeline_csv(script, files, cli, tmp_path):
    sim = ["simulate", "--n-neurons", "20", "--seed", "3", "--input", "sine:2"]
    result = script.shell(
        "spikerates "
        + " ".join(sim)
        + " -o - --to csv | spikerates rates kernel - --from csv"
        " > rates.csv",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""  # nothing on stderr in a pipe
    script.run(*sim, "-o", "sim.npz", cwd=tmp_path)
    data = files.load(tmp_path / "sim.npz")
    t, rates, ids = files.parse_matrix_csv((tmp_path / "rates.csv").read_text())
    np.testing.assert_allclose(t, data["t"], rtol=1e-12)
    assert ids == [str(j) for j in range(20)]
    expected = reference.rates_kernel(data["t"], data["spikes"])
    cli.assert_same_rates(rates, expected)


def test_pipeline_npz_without_from(script, files, cli, tmp_path):
    sim = ["simulate", "--n-neurons", "15", "--seed", "8", "--input", "ramp:-1:1"]
    result = script.shell(
        "spikerates "
        + " ".join(sim)
        + " -o - --to npz | spikerates rates isi - -o out.h5",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    script.run(*sim, "-o", "sim.npz", cwd=tmp_path)
    data = files.load(tmp_path / "sim.npz")
    out = files.load(tmp_path / "out.h5")
    np.testing.assert_array_equal(out["t"], data["t"])
    cli.assert_same_rates(out["rates"], estimators.rates_isi(data["t"], data["spikes"]))
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert f["rates"].attrs["units"] in ("Hz", b"Hz")


def test_pipeline_events_round_trip(script, files, cli, tmp_path):
    """dense -> events (NWB layout, on a pipe) -> dense rates: the identity."""
    script.run(
        "simulate", "--n-neurons", "6", "--seed", "2", "-o", "sim.h5", cwd=tmp_path
    )
    result = script.shell(
        "spikerates events sim.h5 -o - --to nwb | spikerates rates kernel - "
        "--dt 0.001 --t-start 0 --t-stop 1 -o rates.npz",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr.decode()
    data = files.load(tmp_path / "sim.h5")
    out = files.load(tmp_path / "rates.npz")
    np.testing.assert_allclose(out["t"], data["t"], rtol=1e-12)
    cli.assert_same_rates(
        out["rates"], reference.rates_kernel(data["t"], data["spikes"])
    )


@pytest.mark.slow
def test_batch_glob_jobs(script, files, cli, tmp_path):
    for seed in range(3):
        script.run(
            "simulate", "--n-neurons", "4", "--seed", seed, "--duration", "0.3",
            "-o", f"rec{seed}.npz", cwd=tmp_path,
        )  # fmt: skip
    result = script.shell(
        "spikerates rates kernel 'rec*.npz' -o out --to h5 --jobs 2", tmp_path
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""  # no progress bar when stderr is not a terminal
    assert sorted(os.listdir(tmp_path / "out")) == ["rec0.h5", "rec1.h5", "rec2.h5"]
    for seed in range(3):
        data = files.load(tmp_path / f"rec{seed}.npz")
        out = files.load(tmp_path / "out" / f"rec{seed}.h5")
        cli.assert_same_rates(
            out["rates"], reference.rates_kernel(data["t"], data["spikes"])
        )


# ----------------------------------------------------------------------------
# Peer checks: simulations and estimates against analytic LIF rates


def test_fastlif_population_fires_at_analytic_rates(script, files, tmp_path):
    script.run(
        "simulate", "--model", "fastlif", "--n-neurons", "5000",
        "--max-rates", "10:200", "--intercepts", "-1:0.95", "--encoders", "positive",
        "--input", "constant:0.5", "--duration", "1", "--dt", "0.001", "--seed", "11",
        "--events", "-o", "pop.npz", cwd=tmp_path,
    )  # fmt: skip
    data = files.load(tmp_path / "pop.npz")
    assert np.all(data["encoders"] == 1)
    counts = np.diff(np.r_[0, data["spike_times_index"]])
    measured = counts / 1.0  # Hz over 1 s
    analytic = nengo.LIFRate().rates(np.array([0.5]), data["gain"], data["bias"])[0]
    assert analytic.max() > 100 and np.count_nonzero(analytic == 0) > 100
    np.testing.assert_allclose(measured, analytic, atol=1.0, rtol=0.02)


@pytest.fixture(scope="module")
def white_noise_simulation(script, files, tmp_path_factory):
    folder = tmp_path_factory.mktemp("white")
    script.run(
        "simulate", "--model", "lif", "--n-neurons", "100", "--input", "white:5",
        "--duration", "2", "--seed", "21", "-o", "sim.npz", cwd=folder,
    )  # fmt: skip
    data = files.load(folder / "sim.npz")
    x_encoded = data["input"][:, None] * data["encoders"][None, :]
    analytic = nengo.LIFRate().rates(x_encoded, data["gain"], data["bias"])
    return folder, data, analytic


@pytest.mark.parametrize(
    "method,bound", [("isi", 0.3), ("kernel", 0.25)], ids=["isi", "kernel"]
)
def test_estimated_rates_track_analytic_rates(
    script, files, white_noise_simulation, method, bound
):
    folder, data, analytic = white_noise_simulation
    script.run("rates", method, "sim.npz", "-o", f"{method}.npz", cwd=folder)
    out = files.load(folder / f"{method}.npz")
    np.testing.assert_array_equal(out["t"], data["t"])
    inside = (out["t"] > 0.1) & (out["t"] < 1.9)
    error = out["rates"][inside] - analytic[inside]
    relative_rmse = np.sqrt(np.mean(error**2)) / np.sqrt(np.mean(analytic[inside] ** 2))
    assert relative_rmse < bound, relative_rmse
    # the input varies: the rates are not just a constant
    assert np.std(analytic[inside]) > 20


def test_stdout_npz_is_a_complete_file(script, tmp_path):
    result = script.run("tuning", "--n-neurons", "3", "--seed", "1", "--to", "npz")
    with np.load(pyio.BytesIO(result.stdout)) as z:
        assert z["rates"].shape == (201, 3)
