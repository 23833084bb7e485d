"""``spikerates rates kernel`` and ``spikerates rates isi`` through CliRunner.

Outputs are read back with numpy/h5py (not spikerates.io) and compared with
nengo_extras' estimators, the library's whole-array estimators and plain
loops over the binning rule.
"""

from __future__ import annotations

import io as pyio
import os

import nengo_extras.neurons as reference
import numpy as np
import pytest

from spikerates import estimators

N_UNITS = 4
DT = 0.001

KERNEL_CASES = [("gauss", 0.04), ("expon", 0.02), ("alpha", 0.03), ("expogauss", 0.04)]
ISI_CASES = [
    ("zero", False),
    ("linear", False),
    ("linear", True),
    ("nearest-up", False),
    ("cubic", True),
]


# ----------------------------------------------------------------------------
# Parity: rates through the CLI equal the library and the reference


@pytest.mark.parametrize("fmt", ["npz", "h5", "csv"])
@pytest.mark.parametrize("kind,tau", KERNEL_CASES)
def test_kernel_parity(cli, files, tmp_path, dense_spikes, dense_files, fmt, kind, tau):
    t, spikes = dense_spikes
    out = tmp_path / "rates.npz"
    args = ["rates", "kernel", dense_files[fmt], "-o", out, "--kind", kind]
    result = cli.run([*args, "--tau", tau])
    assert result.exit_code == 0, result.stderr
    # at most a note that the sampled kernel's mass is not 1 (expon, alpha)
    for line in cli.error_lines(result):
        assert line.startswith("spikerates: note: ") and "mass" in line, line
    t_out, rates, ids = files.read_rates(out)
    np.testing.assert_array_equal(t_out, t)
    assert ids == [str(j) for j in range(N_UNITS)]
    assert rates.dtype == np.float64
    expected = estimators.rates_kernel(t, spikes, kind=kind, tau=tau)
    cli.assert_same_rates(rates, expected)
    cli.assert_same_rates(rates, reference.rates_kernel(t, spikes, kind=kind, tau=tau))


@pytest.mark.parametrize("fmt", ["npz", "h5", "csv"])
@pytest.mark.parametrize("interp,midpoint", ISI_CASES)
def test_isi_parity(
    cli, files, tmp_path, dense_spikes, dense_files, fmt, interp, midpoint
):
    t, spikes = dense_spikes
    out = tmp_path / "rates.h5"
    args = ["rates", "isi", dense_files[fmt], "-o", out, "--interp", interp]
    result = cli.run(args + (["--midpoint"] if midpoint else []))
    assert result.exit_code == 0, result.stderr
    t_out, rates, ids = files.read_rates(out)
    np.testing.assert_array_equal(t_out, t)
    expected = reference.rates_isi(t, spikes, midpoint=midpoint, interp=interp)
    cli.assert_same_rates(rates, expected)
    cli.assert_same_rates(
        rates, estimators.rates_isi(t, spikes, midpoint=midpoint, interp=interp)
    )


def test_to_stdout_csv(cli, files, dense_spikes, dense_files):
    t, spikes = dense_spikes
    result = cli.run(["rates", "kernel", dense_files["npz"], "--output", "-"])
    assert result.exit_code == 0, result.stderr
    t_out, rates, ids = files.parse_matrix_csv(result.stdout)
    np.testing.assert_allclose(t_out, t, rtol=1e-12)
    cli.assert_same_rates(rates, reference.rates_kernel(t, spikes))
    assert ids == [str(j) for j in range(N_UNITS)]


def test_from_stdin(cli, files, dense_spikes, dense_files):
    t, spikes = dense_spikes
    with open(dense_files["npz"], "rb") as f:
        data = f.read()
    result = cli.run(["rates", "isi", "-", "--to", "npz"], input=data)
    assert result.exit_code == 0, result.stderr
    with np.load(pyio.BytesIO(result.stdout_bytes)) as z:
        cli.assert_same_rates(z["rates"], reference.rates_isi(t, spikes))
    with open(dense_files["csv"]) as f:
        text = f.read()
    result = cli.run(["rates", "kernel", "-", "--from", "csv"], input=text)
    assert result.exit_code == 0, result.stderr
    cli.assert_same_rates(
        files.parse_matrix_csv(result.stdout)[1], reference.rates_kernel(t, spikes)
    )


# ----------------------------------------------------------------------------
# Estimator and output options


def test_kernel_normalize_causal(cli, files, tmp_path, dense_spikes, dense_files):
    t, spikes = dense_spikes
    out = tmp_path / "r.npz"
    args = ["rates", "kernel", dense_files["h5"], "-o", out, "--kind", "expon"]
    result = cli.run([*args, "--tau", "0.005", "--normalize", "--causal"])
    assert result.exit_code == 0, result.stderr
    expected = estimators.rates_kernel(
        t, spikes, kind="expon", tau=0.005, normalize=True, causal=True
    )
    rates = files.read_rates(out)[1]
    cli.assert_same_rates(rates, expected)
    # causal: a spike's response never starts before the spike
    first = np.argmax(spikes[:, 0] != 0)
    assert np.all(rates[:first, 0] == 0)


def test_kernel_border_correction(cli, files, tmp_path, dense_spikes, dense_files):
    t, spikes = dense_spikes
    out = tmp_path / "r.npz"
    args = ["rates", "kernel", dense_files["npz"], "-o", out, "--kind", "gauss"]
    result = cli.run([*args, "--tau", "0.01", "--border-correction"])
    assert result.exit_code == 0, result.stderr
    expected = estimators.rates_kernel(
        t, spikes, kind="gauss", tau=0.01, border_correction=True
    )
    cli.assert_same_rates(files.read_rates(out)[1], expected)


def test_dtype_and_chunks(cli, files, tmp_path, dense_spikes, dense_files):
    t, spikes = dense_spikes
    expected = reference.rates_kernel(t, spikes)
    base = ["rates", "kernel", dense_files["npz"]]
    out32 = tmp_path / "r32.npz"
    args = ["-o", out32, "--dtype", "float32", "--chunk-duration", "0.05"]
    result = cli.run([*base, *args])
    assert result.exit_code == 0, result.stderr
    rates = files.read_rates(out32)[1]
    assert rates.dtype == np.float32
    np.testing.assert_allclose(rates, expected, rtol=1e-6)
    # chunks that do not divide the recording give the same rates
    out = tmp_path / "r64.npz"
    result = cli.run([*base, "-o", out, "--chunk-duration", "0.013"])
    assert result.exit_code == 0, result.stderr
    cli.assert_same_rates(files.read_rates(out)[1], expected)


def test_units_selection(cli, files, tmp_path, dense_spikes, dense_files):
    t, spikes = dense_spikes
    out = tmp_path / "r.npz"
    result = cli.run(["rates", "isi", dense_files["npz"], "-o", out, "--units", "2,0"])
    assert result.exit_code == 0, result.stderr
    _, rates, ids = files.read_rates(out)
    assert ids == ["0", "2"]  # the source's order
    cli.assert_same_rates(rates, reference.rates_isi(t, spikes)[:, [0, 2]])


def test_window_on_dense(cli, files, tmp_path, dense_spikes, dense_files):
    t, spikes = dense_spikes
    out = tmp_path / "r.npz"
    args = ["rates", "kernel", dense_files["npz"], "-o", out]
    result = cli.run([*args, "--t-start", "0.1", "--t-stop", "0.4"])
    assert result.exit_code == 0, result.stderr
    window = (t > 0.1 + 1e-12) & (t <= 0.4 + 1e-12)
    t_out, rates, _ = files.read_rates(out)
    np.testing.assert_array_equal(t_out, t[window])
    # The window crops the output: its rows are the whole recording's.
    cli.assert_same_rates(rates, reference.rates_kernel(t, spikes)[window])
    n_outside = np.count_nonzero(spikes[~window])
    assert cli.error_lines(result) == [
        f"spikerates: note: {dense_files['npz']}: {n_outside} spikes outside "
        "the window (0.1, 0.4] s were left out"
    ]
    quiet = cli.run(["-q", *args, "--t-start", "0.1", "--t-stop", "0.4"])
    assert quiet.exit_code == 0
    assert quiet.stderr == ""


@pytest.mark.parametrize("mode", ["counts", "auto"])
def test_values_counts(cli, files, tmp_path, dense_spikes, mode):
    """Counts per bin (one bin with two spikes), told apart by 'auto'."""
    t, spikes = dense_spikes
    counts = (spikes * DT).round()
    counts[100, 1] = 2
    path = files.write_dense(tmp_path / "counts.npz", t, counts)
    out = tmp_path / f"r_{mode}.npz"
    result = cli.run(["rates", "kernel", path, "-o", out, "--values", mode])
    assert result.exit_code == 0, result.stderr
    cli.assert_same_rates(
        files.read_rates(out)[1], reference.rates_kernel(t, counts / DT)
    )


def test_values_amplitude(cli, files, tmp_path, dense_spikes):
    """Amplitudes forced on a file whose values could be counts (1/dt = 1)."""
    t = np.arange(1.0, 301.0)  # dt = 1 s: a spike is 1 either way
    spikes = (np.random.default_rng(3).random((300, 2)) < 0.1).astype(float)
    spikes[50, 0] = 3.0  # three spikes, or an amplitude of 3/dt
    path = files.write_dense(tmp_path / "ones.npz", t, spikes)
    outputs = {}
    for mode in ("amplitude", "counts"):
        outputs[mode] = tmp_path / f"{mode}.npz"
        args = ["rates", "kernel", path, "-o", outputs[mode], "--tau", "5"]
        result = cli.run([*args, "--values", mode])
        assert result.exit_code == 0, result.stderr
    expected = reference.rates_kernel(t, spikes, tau=5.0)
    cli.assert_same_rates(files.read_rates(outputs["amplitude"])[1], expected)
    cli.assert_same_rates(files.read_rates(outputs["counts"])[1], expected)


def test_dt_must_match_dense(cli, tmp_path, dense_files):
    out = tmp_path / "r.npz"
    args = ["rates", "kernel", dense_files["npz"], "-o", out]
    result = cli.run([*args, "--dt", "0.001"])
    assert result.exit_code == 0, result.stderr
    os.remove(out)
    result = cli.run([*args, "--dt", "0.002"])
    cli.assert_one_line_error(result, dense_files["npz"], "dt")
    assert not out.exists()


def test_events_on_grid(cli, files, tmp_path, events_file):
    path, trains = events_file
    out = tmp_path / "r.npz"
    args = ["rates", "kernel", path, "-o", out, "--dt", "0.002", "--t-start", "0"]
    result = cli.run([*args, "--t-stop", "0.3"])
    assert result.exit_code == 0, result.stderr
    t, rates, ids = files.read_rates(out)
    np.testing.assert_allclose(t, 0.002 * np.arange(1, 151), rtol=1e-12)
    assert ids == ["7", "3", "11"]
    # oracle: bin by hand with the rule t[k] - dt < s <= t[k]
    counts = np.zeros((150, 3))
    for j, times in enumerate(trains):
        for s in times:
            counts[int(np.ceil(round(s / 0.002, 6))) - 1, j] += 1
    cli.assert_same_rates(rates, reference.rates_kernel(t, counts / 0.002))
    assert np.all(rates[:, 1] == 0)


def test_isi_on_events_default_dt(cli, files, tmp_path, events_file):
    path, trains = events_file
    out = tmp_path / "r.csv"
    result = cli.run(["rates", "isi", path, "-o", out, "--t-start", "0"])
    assert result.exit_code == 0, result.stderr
    t, rates, ids = files.read_rates(out)
    assert ids == ["7", "3", "11"]
    np.testing.assert_allclose(np.diff(t), 0.001, rtol=1e-9)
    # between the 2nd and 3rd spike of unit 7 the rate is 1/ISI (exact times)
    k = np.searchsorted(t, 0.07)
    np.testing.assert_allclose(rates[k, 0], 1 / (0.1 - 0.0502), rtol=1e-6)


@pytest.mark.parametrize("method", ["kernel", "isi"])
def test_plot(cli, files, tmp_path, dense_files, method):
    fig = tmp_path / "fig.png"
    out = tmp_path / "out.npz"
    result = cli.run(["rates", method, dense_files["npz"], "-o", out, "--plot", fig])
    assert result.exit_code == 0, result.stderr
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert files.read_rates(out)[1].shape == (600, N_UNITS)


def test_plot_block_means(monkeypatch, cli, files, tmp_path, events_file):
    """--plot draws the means of blocks of consecutive rows, whatever the
    chunks: 2999 rows become 1500 blocks of 2 (the last one a single row)."""
    import spikerates.plot

    drawn = {}

    def capture(t, rates, unit_ids, path, **kwargs):
        drawn.update(t=np.asarray(t), rates=np.asarray(rates), ids=list(unit_ids))

    monkeypatch.setattr(spikerates.plot, "plot_rates", capture)
    out = tmp_path / "r.npz"
    args = ["rates", "kernel", events_file[0], "-o", out, "--plot", tmp_path / "f.png"]
    args += ["--t-start", "0", "--t-stop", "2.999", "--chunk-duration", "0.777"]
    result = cli.run(args)
    assert result.exit_code == 0, result.stderr
    t, rates, ids = files.read_rates(out)
    assert rates.shape == (2999, 3)
    blocks = [slice(k, k + 2) for k in range(0, 2999, 2)]
    np.testing.assert_allclose(drawn["t"], [t[b].mean() for b in blocks], rtol=1e-12)
    np.testing.assert_allclose(
        drawn["rates"], [rates[b].mean(axis=0) for b in blocks], rtol=1e-9, atol=1e-9
    )
    assert [str(i) for i in drawn["ids"]] == ids


# ----------------------------------------------------------------------------
# Usage errors: exit 2, click's usage text, nothing written

USAGE_CASES = [
    (["kernel", "{npz}", "--tau", "0"], "--tau"),
    (["kernel", "{npz}", "--tau", "-0.1"], "--tau"),
    (["kernel", "{npz}", "--kind", "box"], "--kind"),
    (["isi", "{npz}", "--interp", "spline"], "--interp"),
    (["kernel", "{npz}", "--dt", "-1"], "--dt"),
    (["kernel", "{npz}", "--chunk-duration", "0"], "--chunk-duration"),
    (["kernel", "{npz}", "--dtype", "int8"], "--dtype"),
    (["kernel", "{npz}", "--jobs", "0"], "--jobs"),
    (["kernel", "{npz}", "--values", "bits"], "--values"),
    (["kernel", "{npz}", "--t-start", "0.5", "--t-stop", "0.2"], "--t-stop"),
    (["kernel", "{npz}", "--units", "1,,2"], "--units"),
    (["kernel", "{npz}", "--from", "xls"], "--from"),
    (["kernel", "{npz}", "--to", "phy"], "--to"),
    (["kernel", "{npz}", "--plot", "fig.txt"], "--plot"),
    (["kernel", "{npz}", "{csv}"], "-o DIR"),
    (["kernel", "{npz}", "{csv}", "-o", "{tmp}/out.npz"], "directory"),
    (["kernel", "{npz}", "-o", "{npz}"], "overwrite"),
    (["kernel", "-", "-", "-o", "{tmp}/d"], "standard input"),
    (["kernel"], "INPUT"),
]


@pytest.mark.parametrize("args,fragment", USAGE_CASES)
def test_usage_errors(cli, tmp_path, dense_files, args, fragment):
    values = {"npz": dense_files["npz"], "csv": dense_files["csv"], "tmp": tmp_path}
    args = ["rates", *[a.format(**values) for a in args]]
    before = cli.entries(tmp_path)
    cli.assert_usage_error(cli.run(args), fragment)
    assert cli.entries(tmp_path) == before


# ----------------------------------------------------------------------------
# Data errors: exit 1, one line naming the file, nothing left behind


def test_window_without_steps(cli, tmp_path, events_file):
    out = tmp_path / "o.npz"
    result = cli.run(["rates", "kernel", events_file[0], "--t-start", "5", "-o", out])
    cli.assert_one_line_error(result, events_file[0], "t_stop")
    assert not out.exists()


def test_unknown_unit_and_dataset(cli, tmp_path, dense_files):
    out = tmp_path / "o.npz"
    args = ["rates", "kernel", dense_files["npz"], "-o", out]
    cli.assert_one_line_error(cli.run([*args, "--units", "9"]), dense_files["npz"], "9")
    cli.assert_one_line_error(cli.run([*args, "--dataset", "/x"]), dense_files["npz"])
    assert not out.exists()


def test_bad_events_data(cli, tmp_path):
    path = tmp_path / "ev.npz"
    np.savez(
        path, spike_times=np.array([0.1, np.nan]), spike_times_index=[2], unit_ids=[0]
    )
    result = cli.run(["rates", "isi", path, "-o", tmp_path / "o.npz"])
    cli.assert_one_line_error(result, "ev.npz", "spike_times")
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("fmt", ["npz", "h5", "csv"])
def test_failure_mid_stream_leaves_nothing(
    cli, tmp_path, monkeypatch, dense_files, fmt
):
    """An error after some chunks were written removes the partial output."""
    import spikerates.driver
    from spikerates.errors import SpikeDataError

    class FailingFilter(spikerates.driver.KernelFilter):
        calls = 0

        def process(self, chunk):
            FailingFilter.calls += 1
            if FailingFilter.calls == 3:
                raise SpikeDataError("simulated failure in the third chunk")
            return super().process(chunk)

    monkeypatch.setattr(spikerates.driver, "KernelFilter", FailingFilter)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = ["rates", "kernel", dense_files["npz"], "-o", out_dir / f"r.{fmt}"]
    result = cli.run([*args, "--chunk-duration", "0.1"])
    cli.assert_one_line_error(result, dense_files["npz"], "third chunk")
    assert FailingFilter.calls == 3
    assert cli.entries(out_dir) == []
