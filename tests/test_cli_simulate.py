"""``spikerates simulate`` through CliRunner.

Simulations are compared with nengo's LIF stepped on the population saved
with them, and with the analytic rates of nengo's LIFRate.
"""

from __future__ import annotations

import h5py
import nengo
import numpy as np
import pytest


@pytest.mark.parametrize("model", ["lif", "fastlif"])
def test_dense_layout(cli, files, tmp_path, model):
    out = tmp_path / "sim.npz"
    args = ["simulate", "--model", model, "--n-neurons", 8, "--seed", 4]
    result = cli.run([*args, "--duration", "0.5", "--dt", "0.0005", "-o", out])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    data = files.load(out)
    assert {"t", "spikes", "input", "gain", "bias", "encoders"} <= set(data)
    np.testing.assert_allclose(data["t"], 0.0005 * np.arange(1, 1001), rtol=1e-12)
    assert data["spikes"].shape == (1000, 8)
    assert set(np.unique(data["spikes"])) <= {0.0, 1 / 0.0005}
    np.testing.assert_array_equal(data["input"], np.full(1000, 0.5))
    # spike counts follow the analytic rates of the saved population
    x = 0.5 * data["encoders"][None, :]
    rates = nengo.LIFRate().rates(x, data["gain"], data["bias"])
    counts = np.count_nonzero(data["spikes"], axis=0)
    tol = 2 if model == "lif" else 2 + 0.1 * rates[0] * 0.5
    assert np.all(np.abs(counts - rates[0] * 0.5) <= tol)


def test_matches_nengo_lif(cli, files, tmp_path):
    """The dense output equals nengo's LIF.step run on the saved population."""
    out = tmp_path / "sim.h5"
    args = ["simulate", "--n-neurons", 5, "--seed", 9, "--input", "sine:3:0.9"]
    result = cli.run([*args, "--duration", "0.3", "--amplitude", "0.5", "-o", out])
    assert result.exit_code == 0, result.stderr
    data = files.load(out)
    lif = nengo.LIF(amplitude=0.5)
    voltage, ref_time = np.zeros(5), np.zeros(5)
    output = np.zeros(5)
    expected = []
    for x in data["input"]:
        lif.step(
            0.001,
            data["gain"] * data["encoders"] * x + data["bias"],
            output,
            voltage,
            ref_time,
        )
        expected.append(output.copy())
    np.testing.assert_allclose(data["spikes"], np.array(expected), rtol=1e-12)
    np.testing.assert_allclose(
        data["input"], 0.9 * np.sin(2 * np.pi * 3 * data["t"]), atol=1e-12
    )


def test_events_layout(cli, files, tmp_path):
    dense_out, events_out = tmp_path / "d.npz", tmp_path / "e.nwb"
    args = ["simulate", "--n-neurons", 6, "--seed", 1, "--input", "ramp:-1:1"]
    assert cli.run([*args, "-o", dense_out]).exit_code == 0
    result = cli.run([*args, "--events", "-o", events_out])
    assert result.exit_code == 0, result.stderr
    dense = files.load(dense_out)
    trains, ids = files.read_events(events_out)
    assert ids == [str(j) for j in range(6)]
    for got, want in zip(
        trains, files.times_of(dense["t"], dense["spikes"]), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    with h5py.File(events_out, "r") as f:
        assert {"input", "gain", "bias", "encoders"} <= set(f)
        np.testing.assert_array_equal(f["gain"][()], dense["gain"])
    np.testing.assert_allclose(dense["input"], np.linspace(-1, 1, 1000))


def test_csv_carries_only_t_and_units(cli, files):
    args = ["simulate", "--n-neurons", 3, "--seed", 1, "--duration", "0.1"]
    result = cli.run(args)
    assert result.exit_code == 0, result.stderr
    t, spikes, ids = files.parse_matrix_csv(result.stdout)
    assert ids == ["0", "1", "2"]
    np.testing.assert_allclose(t, 0.001 * np.arange(1, 101), rtol=1e-9)
    assert set(np.unique(spikes)) <= {0.0, 1000.0}


def test_initial_voltage_and_seed(cli, files, tmp_path):
    def simulate(*extra, duration="0.05"):
        out = tmp_path / "s.npz"
        args = ["simulate", "--n-neurons", 20, "--duration", duration, "-o", out]
        result = cli.run([*args, *extra])
        assert result.exit_code == 0, result.stderr
        return files.load(out)

    zero = simulate("--seed", 5)
    uniform = simulate("--seed", 5, "--initial-voltage", "uniform")
    again = simulate("--seed", 5, "--initial-voltage", "uniform")
    np.testing.assert_array_equal(zero["gain"], uniform["gain"])
    np.testing.assert_array_equal(uniform["spikes"], again["spikes"])
    # starting from U(0, 1) voltages the first spikes come earlier
    first = lambda d: np.argmax(d["spikes"] != 0, axis=0)  # noqa: E731
    active = np.any(zero["spikes"] != 0, axis=0)
    assert np.mean(first(uniform)[active]) < np.mean(first(zero)[active])
    noise_a = simulate("--seed", 5, "--input", "white:5", duration="0.5")
    noise_b = simulate("--seed", 6, "--input", "white:5", duration="0.5")
    assert not np.array_equal(noise_a["input"], noise_b["input"])
    noise_c = simulate("--seed", 5, "--input", "white:5", duration="0.5")
    np.testing.assert_array_equal(noise_a["input"], noise_c["input"])


def test_input_file_and_neurons_file(cli, files, tmp_path):
    signal = tmp_path / "signal.csv"
    t_file = np.linspace(0, 0.2, 21)
    signal.write_text(
        "t,x\n" + "".join(f"{float(a)!r},{float(2 * a)!r}\n" for a in t_file)
    )
    neurons = tmp_path / "neurons.csv"
    neurons.write_text("max_rate,intercept,encoder\n100,-0.5,1\n200,0.0,-1\n")
    out = tmp_path / "s.npz"
    args = ["simulate", "--input", signal, "--neurons", neurons, "--duration", "0.2"]
    result = cli.run([*args, "--model", "fastlif", "-o", out])
    assert result.exit_code == 0, result.stderr
    data = files.load(out)
    np.testing.assert_allclose(data["input"], 2 * data["t"], rtol=1e-9)
    np.testing.assert_array_equal(data["encoders"], [1.0, -1.0])
    gain, bias = nengo.LIFRate().gain_bias(
        np.array([100.0, 200.0]), np.array([-0.5, 0])
    )
    np.testing.assert_allclose(data["gain"], gain, rtol=1e-12)
    np.testing.assert_allclose(data["bias"], bias, rtol=1e-12)


def test_min_voltage_and_tau(cli, files, tmp_path):
    out = tmp_path / "s.npz"
    args = ["simulate", "--n-neurons", 4, "--seed", 2, "--input", "sine:5"]
    args += ["--tau-rc", "0.05", "--tau-ref", "0.004", "--min-voltage", "-1"]
    args += ["--max-rates", "50:200"]
    result = cli.run([*args, "--duration", "0.2", "-o", out])
    assert result.exit_code == 0, result.stderr
    data = files.load(out)
    lif = nengo.LIF(tau_rc=0.05, tau_ref=0.004, min_voltage=-1)
    voltage, ref_time, output = np.zeros(4), np.zeros(4), np.zeros(4)
    expected = []
    for x in data["input"]:
        lif.step(
            0.001,
            data["gain"] * data["encoders"] * x + data["bias"],
            output,
            voltage,
            ref_time,
        )
        expected.append(output.copy())
    np.testing.assert_allclose(data["spikes"], np.array(expected), rtol=1e-12)


def test_plot(cli, files, tmp_path):
    fig = tmp_path / "sim.png"
    out = tmp_path / "sim.npz"
    result = cli.run(["simulate", "--n-neurons", 5, "--plot", fig, "-o", out])
    assert result.exit_code == 0, result.stderr
    assert fig.read_bytes()[:4] == b"\x89PNG"
    fig = tmp_path / "ev.png"
    result = cli.run(["simulate", "--events", "--plot", fig, "-o", tmp_path / "e.npz"])
    assert result.exit_code == 0, result.stderr
    assert fig.exists()


# ----------------------------------------------------------------------------
# Usage errors: exit 2, click's usage text, nothing written

USAGE_CASES = [
    (["--model", "softlif"], "--model"),
    (["--input", "square:3"], "--input"),
    (["--input", "white:abc"], "--input"),
    (["--input", "ramp:1"], "--input"),
    (["--input", "sine:-2"], "--input"),
    (["--dt", "0"], "--dt"),
    (["--duration", "0.0001"], "--duration"),
    (["--initial-voltage", "random"], "--initial-voltage"),
    (["--sigma", "1"], "--sigma"),
    (["--plot", "x.jpeg"], "--plot"),
    (["--max-rates", "600"], "--max-rates"),
    (["--seed", "-1"], "--seed"),
]


@pytest.mark.parametrize("args,fragment", USAGE_CASES)
def test_usage_errors(cli, tmp_path, args, fragment):
    before = cli.entries(tmp_path)
    result = cli.run(["simulate", *args, "-o", tmp_path / "s.npz"])
    cli.assert_usage_error(result, fragment)
    assert cli.entries(tmp_path) == before


# ----------------------------------------------------------------------------
# Data errors: exit 1, one line naming the file


def test_bad_neurons_and_input_files(cli, tmp_path):
    neurons = tmp_path / "neurons.csv"
    neurons.write_text("gain,offset\n1,2\n")
    out = tmp_path / "o.npz"
    result = cli.run(["simulate", "--neurons", neurons, "-o", out])
    cli.assert_one_line_error(result, "neurons.csv")
    signal = tmp_path / "signal.csv"
    signal.write_text("time,value\n0,1\n1,2\n")
    result = cli.run(["simulate", "--input", signal, "-o", out])
    cli.assert_one_line_error(result, "signal.csv", "x")
    signal.write_text("t,x\n0,1\n0.5,2\n")
    result = cli.run(["simulate", "--input", signal, "-o", out])
    cli.assert_one_line_error(result, "signal.csv", "cover")
    assert not out.exists()
