"""``spikerates tuning`` through CliRunner.

Curves are compared with nengo's LIFRate and nengo_extras' SoftLIFRate on
the population saved with them, and with finite differences.
"""

from __future__ import annotations

import csv
import io as pyio

import h5py
import nengo
import nengo_extras.neurons as reference
import numpy as np
import pytest


def oracle_rates(model, x, gain, bias, encoders, **params):
    x_enc = x[:, None] * encoders[None, :]
    if model == "softlif":
        return reference.SoftLIFRate(**params).rates(x_enc, gain, bias)
    return nengo.LIFRate(**params).rates(x_enc, gain, bias)


@pytest.mark.parametrize("model", ["softlif", "lifrate", "lif", "fastlif"])
def test_models(cli, files, tmp_path, model):
    out = tmp_path / "tuning.npz"
    args = ["tuning", "--model", model, "--n-neurons", 6, "--seed", 3, "-o", out]
    result = cli.run([*args, "--duration", "0.5"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    data = files.load(out)
    x = data["x"]
    np.testing.assert_allclose(x, np.linspace(-1, 1, 201))
    assert data["rates"].shape == (201, 6)
    assert set(np.unique(data["encoders"])) <= {-1.0, 1.0}
    expected = oracle_rates(model, x, data["gain"], data["bias"], data["encoders"])
    cli.assert_same_rates(data["rates"], expected)
    # max rates drawn from 200:400 Hz are reached at x = encoder
    at_encoder = np.where(data["encoders"] > 0, data["rates"][-1], data["rates"][0])
    if model != "softlif":
        assert np.all((at_encoder >= 200 - 1e-6) & (at_encoder <= 400 + 1e-6))
    if model in ("lif", "fastlif"):
        assert data["measured"].shape == (201, 6)
        # counted over 0.5 s: within 2 spikes (4 Hz) plus FastLIF's linearisation
        tol = 4.0 if model == "lif" else 4.0 + 0.1 * data["rates"]
        assert np.all(np.abs(data["measured"] - data["rates"]) <= tol)
    else:
        assert "measured" not in data


def test_derivative_and_neuron_parameters(cli, files, tmp_path):
    out = tmp_path / "t.h5"
    params = ["--tau-rc", "0.03", "--tau-ref", "0.001", "--amplitude", "0.5"]
    args = ["tuning", "--model", "softlif", "--sigma", "0.3", *params]
    result = cli.run([*args, "--derivative", "--seed", 1, "--n-neurons", 4, "-o", out])
    assert result.exit_code == 0, result.stderr
    data = files.load(out)
    x, gain, bias, enc = data["x"], data["gain"], data["bias"], data["encoders"]
    kw = {"sigma": 0.3, "tau_rc": 0.03, "tau_ref": 0.001, "amplitude": 0.5}
    cli.assert_same_rates(
        data["rates"], oracle_rates("softlif", x, gain, bias, enc, **kw)
    )
    model = reference.SoftLIFRate(**kw)
    # the reference takes one neuron's gain at a time
    expected = np.column_stack(
        [model.derivative(x * enc[j], gain[j], bias[j]) * enc[j] for j in range(4)]
    )
    cli.assert_same_rates(data["derivative"], expected)
    # and it is the slope of the curve (central differences)
    slope = np.gradient(data["rates"], x, axis=0)
    np.testing.assert_allclose(
        data["derivative"][1:-1], slope[1:-1], rtol=2e-3, atol=0.5
    )


def test_grid_options_and_csv(cli, files, tmp_path):
    args = ["tuning", "--model", "lif", "--n-neurons", 3, "--seed", 0]
    result = cli.run(
        [
            *args,
            "--x-min",
            "-0.5",
            "--x-max",
            "0.5",
            "--points",
            11,
            "--dt",
            "0.0005",
            "--duration",
            "0.2",
            "--to",
            "csv",
        ]
    )
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(pyio.StringIO(result.stdout)))
    header = rows[0]
    assert header == [
        "x",
        "rates_0",
        "rates_1",
        "rates_2",
        "measured_0",
        "measured_1",
        "measured_2",
    ]
    values = np.array(rows[1:], dtype=float)
    np.testing.assert_allclose(values[:, 0], np.linspace(-0.5, 0.5, 11))
    assert values.shape == (11, 7)


def test_population_options(cli, files, tmp_path):
    out = tmp_path / "t.npz"
    args = ["tuning", "--n-neurons", 50, "--max-rates", "100", "--intercepts", "0"]
    result = cli.run([*args, "--encoders", "positive", "--seed", 7, "-o", out])
    assert result.exit_code == 0, result.stderr
    data = files.load(out)
    assert np.all(data["encoders"] == 1)
    np.testing.assert_allclose(data["rates"][-1], 100.0, rtol=1e-9)
    x = data["x"]
    assert np.all(data["rates"][x <= 0] == 0)
    assert np.all(data["rates"][x > 0.01] > 0)
    # nengo's gain_bias is the oracle of the population
    gain, bias = nengo.LIFRate().gain_bias(np.full(50, 100.0), np.zeros(50))
    np.testing.assert_allclose(data["gain"], gain, rtol=1e-12)
    np.testing.assert_allclose(data["bias"], bias, rtol=1e-12)
    # ranges: draws inside LOW:HIGH, reproducible with --seed, random encoders
    out2 = tmp_path / "t2.npz"
    base = ["tuning", "--n-neurons", 200, "--max-rates", "10:200"]
    base += ["--intercepts", "-0.5:0.5", "--seed", 2]
    assert cli.run([*base, "-o", out]).exit_code == 0
    assert cli.run([*base, "-o", out2]).exit_code == 0
    a, b = files.load(out), files.load(out2)
    np.testing.assert_array_equal(a["gain"], b["gain"])
    max_rates, intercepts = nengo.LIFRate().max_rates_intercepts(a["gain"], a["bias"])
    assert np.all((max_rates >= 10 - 1e-6) & (max_rates <= 200 + 1e-6))
    assert np.all((intercepts >= -0.5 - 1e-9) & (intercepts <= 0.5 + 1e-9))
    assert 40 < np.count_nonzero(a["encoders"] > 0) < 160


@pytest.mark.parametrize("fmt", ["csv", "npz", "h5"])
@pytest.mark.parametrize("columns", ["gain_bias", "max_rate_intercept"])
def test_neurons_file(cli, files, tmp_path, fmt, columns):
    max_rates = np.array([50.0, 120.0, 300.0])
    intercepts = np.array([-0.5, 0.0, 0.6])
    encoders = np.array([1.0, -1.0, 1.0])
    gain, bias = nengo.LIFRate().gain_bias(max_rates, intercepts)
    if columns == "gain_bias":
        table = {"gain": gain, "bias": bias, "encoder": encoders}
    else:
        table = {"max_rate": max_rates, "intercept": intercepts, "encoder": encoders}
    path = tmp_path / f"neurons.{fmt}"
    if fmt == "csv":
        with open(path, "w") as f:
            f.write(",".join(table) + "\n")
            for i in range(3):
                f.write(",".join(repr(float(table[c][i])) for c in table) + "\n")
    elif fmt == "npz":
        np.savez(path, **table)
    else:
        with h5py.File(path, "w") as f:
            for name, values in table.items():
                f[name] = values
    out = tmp_path / "t.npz"
    result = cli.run(["tuning", "--neurons", path, "-o", out])
    assert result.exit_code == 0, result.stderr
    data = files.load(out)
    np.testing.assert_allclose(data["gain"], gain, rtol=1e-12)
    np.testing.assert_allclose(data["bias"], bias, rtol=1e-12)
    np.testing.assert_array_equal(data["encoders"], encoders)
    at_encoder = np.where(encoders > 0, data["rates"][-1], data["rates"][0])
    np.testing.assert_allclose(at_encoder, max_rates, rtol=1e-9)


def test_plot(cli, files, tmp_path):
    fig = tmp_path / "t.svg"
    args = ["tuning", "--model", "lif", "--n-neurons", 3, "--points", 21]
    result = cli.run(
        [*args, "--duration", "0.2", "-o", tmp_path / "t.npz", "--plot", fig]
    )
    assert result.exit_code == 0, result.stderr
    assert b"<svg" in fig.read_bytes()[:500]
    fig = tmp_path / "d.pdf"
    args = ["tuning", "--model", "softlif", "--derivative", "--plot", fig]
    result = cli.run([*args, "-o", tmp_path / "d.npz"])
    assert result.exit_code == 0, result.stderr
    assert fig.read_bytes()[:5] == b"%PDF-"


# ----------------------------------------------------------------------------
# Usage errors: exit 2, click's usage text, nothing written

USAGE_CASES = [
    (["--points", "1"], "--points"),
    (["--x-min", "1", "--x-max", "1"], "--x-max"),
    (["--model", "lif", "--derivative"], "--derivative"),
    (["--model", "adex"], "--model"),
    (["--max-rates", "300:100"], "--max-rates"),
    (["--max-rates", "a:b"], "--max-rates"),
    (["--max-rates", "1:2:3"], "--max-rates"),
    (["--max-rates", "0"], "--max-rates"),
    (["--max-rates", "600"], "--max-rates"),  # above 1/tau_ref
    (["--intercepts", "1"], "--intercepts"),
    (["--intercepts", "nan"], "--intercepts"),
    (["--n-neurons", "0"], "--n-neurons"),
    (["--tau-rc", "0"], "--tau-rc"),
    (["--tau-ref", "-0.001"], "--tau-ref"),
    (["--amplitude", "0"], "--amplitude"),
    (["--sigma", "0"], "--sigma"),
    (["--min-voltage", "0.5"], "--min-voltage"),
    (["--encoders", "negative"], "--encoders"),
    (["--seed", "x"], "--seed"),
    (["--seed", "-3"], "--seed"),
    (["--dt", "0"], "--dt"),
    (["--duration", "-1"], "--duration"),
    (["--model", "lif", "--duration", "0.0001"], "--duration"),
    (["--neurons", "{csv}", "--n-neurons", "3"], "--neurons"),
    (["--plot", "x.jpeg"], "--plot"),
]


@pytest.mark.parametrize("args,fragment", USAGE_CASES)
def test_usage_errors(cli, tmp_path, dense_files, args, fragment):
    args = ["tuning", *[a.format(csv=dense_files["csv"]) for a in args]]
    before = cli.entries(tmp_path)
    cli.assert_usage_error(cli.run([*args, "-o", tmp_path / "t.npz"]), fragment)
    assert cli.entries(tmp_path) == before


# ----------------------------------------------------------------------------
# Data errors: exit 1, one line naming the file


def test_bad_neurons_file(cli, tmp_path):
    neurons = tmp_path / "neurons.csv"
    neurons.write_text("gain,offset\n1,2\n")
    out = tmp_path / "o.npz"
    result = cli.run(["tuning", "--neurons", neurons, "-o", out])
    cli.assert_one_line_error(result, "neurons.csv", "bias")
    neurons.write_text("max_rate,intercept\n1000,0\n")
    result = cli.run(["tuning", "--neurons", neurons, "-o", out])
    cli.assert_one_line_error(result, "neurons.csv", "max_rate")
    assert not out.exists()
