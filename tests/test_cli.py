"""Command-line tests driven through click's CliRunner.

Outputs are read back with numpy/h5py directly (not with spikerates.io) and
compared with independent oracles: nengo / nengo_extras for the numerics,
closed forms and plain loops for the data layouts.
"""

from __future__ import annotations

import csv
import io as pyio
import os

import h5py
import nengo
import nengo_extras.neurons as reference
import numpy as np
import pytest
from click.testing import CliRunner

from spikerates import __version__, estimators
from spikerates.cli import cli

DT = 0.001
N_STEPS = 600
N_UNITS = 4


def make_runner() -> CliRunner:
    # click < 8.2 mixes stderr into stdout unless told not to
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def run(args, *, input=None):
    """Invoke the CLI; ``args`` are converted to strings."""
    return make_runner().invoke(
        cli, [str(a) for a in args], input=input, catch_exceptions=False
    )


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_one_line_error(result, *fragments: str) -> str:
    """Exit 1 and exactly one 'spikerates: error:' line naming the fragments."""
    assert result.exit_code == 1, (result.exit_code, result.stderr, result.stdout)
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("spikerates: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.stderr
    return lines[0]


def assert_usage_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    assert "Traceback" not in result.stderr


def directory_entries(path) -> list[str]:
    return sorted(os.listdir(path))


# ----------------------------------------------------------------------------
# Test data written without spikerates.io (independent of the readers)


@pytest.fixture(scope="module")
def dense():
    """nengo-style dense spikes: t = dt*(1..M), values 1/dt."""
    rng = np.random.default_rng(1234)
    t = DT * np.arange(1, N_STEPS + 1)
    spikes = (rng.random((N_STEPS, N_UNITS)) < 0.04) / DT
    # The reference's ISI estimator fails on spikes in the first/last steps.
    spikes[:3] = 0.0
    spikes[-3:] = 0.0
    assert np.all(np.count_nonzero(spikes, axis=0) >= 5)
    return t, spikes


def write_dense_file(path, t, spikes, *, unit_ids=None):
    path = str(path)
    if path.endswith(".npz"):
        arrays = {"t": t, "spikes": spikes}
        if unit_ids is not None:
            arrays["unit_ids"] = np.asarray(unit_ids)
        np.savez(path, **arrays)
    elif path.endswith((".h5", ".hdf5")):
        with h5py.File(path, "w") as f:
            f["t"] = t
            f["spikes"] = spikes
            if unit_ids is not None:
                f["unit_ids"] = np.asarray(unit_ids)
    elif path.endswith(".csv"):
        ids = range(spikes.shape[1]) if unit_ids is None else unit_ids
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["t", *[str(u) for u in ids]])
            for k in range(len(t)):
                writer.writerow(
                    [repr(float(t[k]))] + [repr(float(v)) for v in spikes[k]]
                )
    else:
        raise AssertionError(path)
    return path


def write_events_npz(path, spike_times, unit_ids):
    flat = np.concatenate(spike_times) if spike_times else np.empty(0)
    index = np.cumsum([len(s) for s in spike_times])
    np.savez(path, spike_times=flat, spike_times_index=index, unit_ids=unit_ids)
    return str(path)


def read_rates(path):
    """(t, rates, unit_ids as str) from an NPZ, HDF5 or CSV rates file."""
    path = str(path)
    if path.endswith(".npz"):
        with np.load(path) as z:
            return z["t"], z["rates"], [str(u) for u in z["unit_ids"]]
    if path.endswith((".h5", ".hdf5")):
        with h5py.File(path, "r") as f:
            ids = [
                u.decode() if isinstance(u, bytes) else str(u) for u in f["unit_ids"]
            ]
            return f["t"][()], f["rates"][()], ids
    with open(path) as f:
        return parse_matrix_csv(f.read())


def parse_matrix_csv(text: str):
    lines = text.strip().splitlines()
    header = lines[0].split(",")
    assert header[0] == "t", header
    values = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    return values[:, 0], values[:, 1:], header[1:]


def read_events(path):
    """(list of spike-time arrays, unit ids as str) from an events file."""
    path = str(path)
    if path.endswith(".npz"):
        with np.load(path) as z:
            flat, index, ids = z["spike_times"], z["spike_times_index"], z["unit_ids"]
    elif path.endswith((".h5", ".nwb")):
        with h5py.File(path, "r") as f:
            flat = f["units/spike_times"][()]
            index = f["units/spike_times_index"][()]
            ids = f["units/id"][()]
    else:
        with open(path) as f:
            return parse_events_csv(f.read())
    bounds = np.r_[0, index].astype(int)
    trains = [flat[bounds[i] : bounds[i + 1]] for i in range(len(index))]
    return trains, [str(u) for u in ids]


def parse_events_csv(text: str, unit_order=None):
    rows = list(csv.reader(pyio.StringIO(text)))
    assert rows[0] == ["unit", "time"], rows[0]
    by_unit: dict[str, list[float]] = {}
    for unit, time in rows[1:]:
        by_unit.setdefault(unit, []).append(float(time))
    ids = list(by_unit) if unit_order is None else list(unit_order)
    return [np.array(by_unit.get(u, [])) for u in ids], ids


def times_of(t, spikes):
    return [t[spikes[:, j] != 0] for j in range(spikes.shape[1])]


@pytest.fixture(scope="module")
def dense_files(tmp_path_factory, dense):
    t, spikes = dense
    root = tmp_path_factory.mktemp("dense")
    return {
        fmt: write_dense_file(root / f"spikes.{fmt}", t, spikes)
        for fmt in ("npz", "h5", "csv")
    }


@pytest.fixture(scope="module")
def events_file(tmp_path_factory):
    """Spike times in the events layout with non-grid times and an empty unit."""
    root = tmp_path_factory.mktemp("events")
    trains = [
        np.array([0.0105, 0.0502, 0.1, 0.2512, 0.3]),
        np.array([]),
        np.array([0.02, 0.021, 0.15, 0.29]),
    ]
    return write_events_npz(root / "events.npz", trains, np.array([7, 3, 11])), trains


@pytest.fixture(scope="module")
def phy_dir(tmp_path_factory):
    """A small Phy/Kilosort folder: clusters 0 (good), 2 (mua), 5 (good)."""
    root = tmp_path_factory.mktemp("phy") / "sorting"
    root.mkdir()
    sample_rate = 30000.0
    rng = np.random.default_rng(5)
    samples = np.sort(rng.choice(np.arange(300, 30000), size=90, replace=False))
    clusters = np.resize(np.array([0, 2, 5]), 90)
    np.save(root / "spike_times.npy", samples.astype(np.uint64))
    np.save(root / "spike_clusters.npy", clusters.astype(np.int32))
    (root / "params.py").write_text(
        "dat_path = 'x.bin'\nn_channels_dat = 4\ndtype = 'int16'\n"
        f"offset = 0\nsample_rate = {sample_rate}\nhp_filtered = False\n"
    )
    (root / "cluster_group.tsv").write_text(
        "cluster_id\tgroup\n0\tgood\n2\tmua\n5\tgood\n"
    )
    trains = {c: samples[clusters == c] / sample_rate for c in (0, 2, 5)}
    return str(root), trains


# ----------------------------------------------------------------------------
# Global options and help


def test_version():
    result = run(["--version"])
    assert result.exit_code == 0
    assert __version__ in result.stdout


COMMANDS = [
    ["events"],
    ["rates", "kernel"],
    ["rates", "isi"],
    ["tuning"],
    ["simulate"],
]


@pytest.mark.parametrize("command", [[], ["rates"], *COMMANDS])
def test_help(command):
    result = run([*command, "--help"])
    assert result.exit_code == 0
    assert "Usage: " in result.stdout
    assert "Examples:" in result.stdout
    if command in COMMANDS:
        assert "[default:" in result.stdout


def test_no_command_shows_usage():
    result = run([])
    assert result.exit_code in (0, 2)
    assert "Usage:" in result.stdout + result.stderr


def test_verbose_and_quiet_conflict():
    assert_usage_error(run(["-v", "-q", "tuning"]), "-v and -q")


# ----------------------------------------------------------------------------
# Parity: rates through the CLI equal the library and the reference


def assert_same_rates(actual, expected):
    """1e-9 relative; 1e-12 absolute (scaled by the peak) where ~0."""
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12 * scale)


KERNEL_CASES = [("gauss", 0.04), ("expon", 0.02), ("alpha", 0.03), ("expogauss", 0.04)]
ISI_CASES = [
    ("zero", False),
    ("linear", False),
    ("linear", True),
    ("nearest-up", False),
    ("cubic", True),
]


@pytest.mark.parametrize("fmt", ["npz", "h5", "csv"])
@pytest.mark.parametrize("kind,tau", KERNEL_CASES)
def test_rates_kernel_parity(tmp_path, dense, dense_files, fmt, kind, tau):
    t, spikes = dense
    out = tmp_path / "rates.npz"
    args = ["rates", "kernel", dense_files[fmt], "-o", out, "--kind", kind]
    result = run([*args, "--tau", tau])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    t_out, rates, ids = read_rates(out)
    np.testing.assert_array_equal(t_out, t)
    assert ids == [str(j) for j in range(N_UNITS)]
    assert rates.dtype == np.float64
    assert_same_rates(rates, estimators.rates_kernel(t, spikes, kind=kind, tau=tau))
    assert_same_rates(rates, reference.rates_kernel(t, spikes, kind=kind, tau=tau))


@pytest.mark.parametrize("fmt", ["npz", "h5", "csv"])
@pytest.mark.parametrize("interp,midpoint", ISI_CASES)
def test_rates_isi_parity(tmp_path, dense, dense_files, fmt, interp, midpoint):
    t, spikes = dense
    out = tmp_path / "rates.h5"
    args = ["rates", "isi", dense_files[fmt], "-o", out, "--interp", interp]
    result = run(args + (["--midpoint"] if midpoint else []))
    assert result.exit_code == 0, result.stderr
    t_out, rates, ids = read_rates(out)
    np.testing.assert_array_equal(t_out, t)
    expected = reference.rates_isi(t, spikes, midpoint=midpoint, interp=interp)
    assert_same_rates(rates, expected)
    assert_same_rates(
        rates, estimators.rates_isi(t, spikes, midpoint=midpoint, interp=interp)
    )


def test_rates_to_stdout_csv(dense, dense_files):
    t, spikes = dense
    result = run(["rates", "kernel", dense_files["npz"], "--output", "-"])
    assert result.exit_code == 0, result.stderr
    t_out, rates, ids = parse_matrix_csv(result.stdout)
    np.testing.assert_allclose(t_out, t, rtol=1e-12)
    assert_same_rates(rates, reference.rates_kernel(t, spikes))
    assert ids == [str(j) for j in range(N_UNITS)]


def test_rates_from_stdin(dense, dense_files):
    t, spikes = dense
    with open(dense_files["npz"], "rb") as f:
        data = f.read()
    result = run(["rates", "isi", "-", "--to", "npz"], input=data)
    assert result.exit_code == 0, result.stderr
    with np.load(pyio.BytesIO(result.stdout_bytes)) as z:
        assert_same_rates(z["rates"], reference.rates_isi(t, spikes))
    with open(dense_files["csv"]) as f:
        text = f.read()
    result = run(["rates", "kernel", "-", "--from", "csv"], input=text)
    assert result.exit_code == 0, result.stderr
    assert_same_rates(
        parse_matrix_csv(result.stdout)[1], reference.rates_kernel(t, spikes)
    )


# ----------------------------------------------------------------------------
# Rates options


def test_rates_kernel_normalize_causal(tmp_path, dense, dense_files):
    t, spikes = dense
    out = tmp_path / "r.npz"
    args = ["rates", "kernel", dense_files["h5"], "-o", out, "--kind", "expon"]
    result = run([*args, "--tau", "0.005", "--normalize", "--causal"])
    assert result.exit_code == 0, result.stderr
    expected = estimators.rates_kernel(
        t, spikes, kind="expon", tau=0.005, normalize=True, causal=True
    )
    assert_same_rates(read_rates(out)[1], expected)
    # causal: a spike's response never starts before the spike
    first = np.argmax(spikes[:, 0] != 0)
    assert np.all(read_rates(out)[1][:first, 0] == 0)


def test_rates_kernel_border_correction(tmp_path, dense, dense_files):
    t, spikes = dense
    out = tmp_path / "r.npz"
    args = ["rates", "kernel", dense_files["npz"], "-o", out, "--kind", "gauss"]
    result = run([*args, "--tau", "0.01", "--border-correction"])
    assert result.exit_code == 0, result.stderr
    expected = estimators.rates_kernel(
        t, spikes, kind="gauss", tau=0.01, border_correction=True
    )
    assert_same_rates(read_rates(out)[1], expected)


def test_rates_dtype_and_chunks(tmp_path, dense, dense_files):
    t, spikes = dense
    out = tmp_path / "r.npz"
    base = ["rates", "kernel", dense_files["npz"], "-o", out]
    result = run([*base, "--dtype", "float32", "--chunk-duration", "0.05"])
    assert result.exit_code == 0, result.stderr
    rates = read_rates(out)[1]
    assert rates.dtype == np.float32
    np.testing.assert_allclose(rates, reference.rates_kernel(t, spikes), rtol=1e-6)
    result = run([*base, "--chunk-duration", "0.013"])
    assert_same_rates(read_rates(out)[1], reference.rates_kernel(t, spikes))


def test_rates_units_selection(tmp_path, dense, dense_files):
    t, spikes = dense
    out = tmp_path / "r.npz"
    result = run(["rates", "isi", dense_files["npz"], "-o", out, "--units", "2,0"])
    assert result.exit_code == 0, result.stderr
    _, rates, ids = read_rates(out)
    assert ids == ["0", "2"]  # the source's order
    assert_same_rates(rates, reference.rates_isi(t, spikes)[:, [0, 2]])


def test_rates_window_on_dense(tmp_path, dense, dense_files):
    t, spikes = dense
    out = tmp_path / "r.npz"
    args = ["rates", "kernel", dense_files["npz"], "-o", out]
    result = run([*args, "--t-start", "0.1", "--t-stop", "0.4"])
    assert result.exit_code == 0, result.stderr
    window = (t > 0.1 + 1e-12) & (t <= 0.4 + 1e-12)
    t_out, rates, _ = read_rates(out)
    np.testing.assert_array_equal(t_out, t[window])
    assert_same_rates(rates, reference.rates_kernel(t[window], spikes[window]))
    n_outside = np.count_nonzero(spikes[~window])
    assert error_lines(result) == [
        f"spikerates: note: {dense_files['npz']}: {n_outside} spikes outside "
        "the window (0.1, 0.4] s were left out"
    ]
    quiet = run(["-q", *args, "--t-start", "0.1", "--t-stop", "0.4"])
    assert quiet.exit_code == 0
    assert quiet.stderr == ""


def test_rates_values_counts(tmp_path, dense):
    t, spikes = dense
    counts = (spikes * DT).round()
    counts[100, 1] = 2  # a bin with two spikes
    path = write_dense_file(tmp_path / "counts.npz", t, counts)
    out = tmp_path / "r.npz"
    result = run(["rates", "kernel", path, "-o", out, "--values", "counts"])
    assert result.exit_code == 0, result.stderr
    assert_same_rates(read_rates(out)[1], reference.rates_kernel(t, counts / DT))
    # auto tells counts apart from amplitude
    result = run(["rates", "kernel", path, "-o", out, "--values", "auto"])
    assert_same_rates(read_rates(out)[1], reference.rates_kernel(t, counts / DT))
    # amplitude forced on the amplitude file: the same as the reference
    amp = write_dense_file(tmp_path / "amp.npz", t, spikes)
    result = run(["rates", "kernel", amp, "-o", out, "--values", "amplitude"])
    assert_same_rates(read_rates(out)[1], reference.rates_kernel(t, spikes))


def test_rates_dt_must_match_dense(tmp_path, dense_files):
    out = tmp_path / "r.npz"
    result = run(["rates", "kernel", dense_files["npz"], "-o", out, "--dt", "0.001"])
    assert result.exit_code == 0, result.stderr
    os.remove(out)
    result = run(["rates", "kernel", dense_files["npz"], "-o", out, "--dt", "0.002"])
    assert_one_line_error(result, dense_files["npz"], "dt")
    assert not out.exists()


def test_rates_on_events_grid(tmp_path, events_file):
    path, trains = events_file
    out = tmp_path / "r.npz"
    args = ["rates", "kernel", path, "-o", out, "--dt", "0.002", "--t-start", "0"]
    result = run([*args, "--t-stop", "0.3"])
    assert result.exit_code == 0, result.stderr
    t, rates, ids = read_rates(out)
    np.testing.assert_allclose(t, 0.002 * np.arange(1, 151), rtol=1e-12)
    assert ids == ["7", "3", "11"]
    # oracle: bin by hand with the rule t[k] - dt < s <= t[k]
    counts = np.zeros((150, 3))
    for j, times in enumerate(trains):
        for s in times:
            counts[int(np.ceil(round(s / 0.002, 6))) - 1, j] += 1
    assert_same_rates(rates, reference.rates_kernel(t, counts / 0.002))
    assert np.all(rates[:, 1] == 0)


def test_rates_isi_on_events_default_dt(tmp_path, events_file):
    path, trains = events_file
    out = tmp_path / "r.csv"
    result = run(["rates", "isi", path, "-o", out, "--t-start", "0"])
    assert result.exit_code == 0, result.stderr
    t, rates, ids = read_rates(out)
    assert ids == ["7", "3", "11"]
    np.testing.assert_allclose(np.diff(t), 0.001, rtol=1e-9)
    # between the 2nd and 3rd spike of unit 7 the rate is 1/ISI (on the grid)
    k = np.searchsorted(t, 0.07)
    np.testing.assert_allclose(rates[k, 0], 1 / (0.1 - 0.051), rtol=1e-6)


# ----------------------------------------------------------------------------
# events


@pytest.mark.parametrize("fmt_in", ["npz", "h5", "csv"])
@pytest.mark.parametrize("fmt_out", ["npz", "h5", "nwb", "csv"])
def test_events_from_dense(tmp_path, dense, dense_files, fmt_in, fmt_out):
    t, spikes = dense
    out = tmp_path / f"events.{fmt_out}"
    result = run(["events", dense_files[fmt_in], "-o", out])
    assert result.exit_code == 0, result.stderr
    trains, ids = read_events(out)
    assert ids == [str(j) for j in range(N_UNITS)]
    for got, want in zip(trains, times_of(t, spikes), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_events_to_stdout_and_units(dense, dense_files):
    t, spikes = dense
    result = run(["events", dense_files["npz"], "--units", "3,1"])
    assert result.exit_code == 0, result.stderr
    trains, ids = parse_events_csv(result.stdout)
    assert ids == ["1", "3"]
    for got, j in zip(trains, [1, 3], strict=True):
        np.testing.assert_allclose(got, times_of(t, spikes)[j], rtol=1e-12)


def test_events_to_stdout_npz(dense, dense_files):
    t, spikes = dense
    result = run(["events", dense_files["h5"], "--to", "npz"])
    assert result.exit_code == 0, result.stderr
    assert zipfile_signature(result.stdout_bytes)
    with np.load(pyio.BytesIO(result.stdout_bytes)) as z:
        assert len(z["spike_times"]) == np.count_nonzero(spikes)


def zipfile_signature(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04"


def test_events_window_and_empty_unit(tmp_path, events_file):
    path, trains = events_file
    out = tmp_path / "ev.npz"
    args = ["events", path, "-o", out, "--t-start", "0.05", "--t-stop", "0.25"]
    result = run(args)
    assert result.exit_code == 0, result.stderr
    got, ids = read_events(out)
    assert ids == ["7", "3", "11"]
    want = [s[(s > 0.05) & (s <= 0.25)] for s in trains]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    n_outside = sum(len(s) for s in trains) - sum(len(w) for w in want)
    assert error_lines(result) == [
        f"spikerates: note: {path}: {n_outside} spikes outside the window "
        "(0.05, 0.25] s were left out"
    ]
    assert run(["-q", *args]).stderr == ""


def test_events_phy_labels(tmp_path, phy_dir):
    root, trains = phy_dir
    result = run(["events", root, "--label", "good", "--to", "csv"])
    assert result.exit_code == 0, result.stderr
    got, ids = parse_events_csv(result.stdout)
    assert ids == ["0", "5"]
    for g, c in zip(got, [0, 5], strict=True):
        np.testing.assert_allclose(g, trains[c], rtol=1e-12)
    result = run(["events", root, "--label", "good", "--label", "mua", "--from", "phy"])
    assert parse_events_csv(result.stdout)[1] == ["0", "2", "5"]


def test_events_from_dataset_and_from_format(tmp_path, dense):
    t, spikes = dense
    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as f:
        f["a/t"] = t
        f["a/spikes"] = spikes
        f["b/t"] = t
        f["b/spikes"] = spikes[:, :2]
    result = run(["events", path, "--dataset", "/b/spikes", "--to", "csv"])
    assert result.exit_code == 0, result.stderr
    assert parse_events_csv(result.stdout)[1] == ["0", "1"]
    # a file without a known extension, format given by --from
    odd = tmp_path / "spikes.dat"
    write_dense_file(tmp_path / "x.npz", t, spikes)
    os.replace(tmp_path / "x.npz", odd)
    result = run(["events", odd, "--from", "npz", "-o", tmp_path / "e.csv"])
    assert result.exit_code == 0, result.stderr
    assert read_events(tmp_path / "e.csv")[1] == [str(j) for j in range(N_UNITS)]


def test_events_dt_checks_dense(tmp_path, dense_files):
    out = tmp_path / "e.npz"
    assert (
        run(["events", dense_files["csv"], "--dt", "0.001", "-o", out]).exit_code == 0
    )
    os.remove(out)
    result = run(["events", dense_files["csv"], "--dt", "0.005", "-o", out])
    assert_one_line_error(result, dense_files["csv"])
    assert not out.exists()


@pytest.mark.parametrize("command", [["events"], ["rates", "kernel"], ["rates", "isi"]])
def test_plot_from_spikes(tmp_path, dense_files, command):
    fig = tmp_path / "fig.png"
    out = tmp_path / "out.npz"
    result = run([*command, dense_files["npz"], "-o", out, "--plot", fig])
    assert result.exit_code == 0, result.stderr
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.exists()


# ----------------------------------------------------------------------------
# tuning


def load_npz(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def load_h5(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}


def oracle_rates(model, x, gain, bias, encoders, **params):
    x_enc = x[:, None] * encoders[None, :]
    if model == "softlif":
        return reference.SoftLIFRate(**params).rates(x_enc, gain, bias)
    return nengo.LIFRate(**params).rates(x_enc, gain, bias)


@pytest.mark.parametrize("model", ["softlif", "lifrate", "lif", "fastlif"])
def test_tuning_models(tmp_path, model):
    out = tmp_path / "tuning.npz"
    args = ["tuning", "--model", model, "--n-neurons", 6, "--seed", 3, "-o", out]
    result = run([*args, "--duration", "0.5"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    data = load_npz(out)
    x = data["x"]
    np.testing.assert_allclose(x, np.linspace(-1, 1, 201))
    assert data["rates"].shape == (201, 6)
    assert set(np.unique(data["encoders"])) <= {-1.0, 1.0}
    expected = oracle_rates(model, x, data["gain"], data["bias"], data["encoders"])
    assert_same_rates(data["rates"], expected)
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


def test_tuning_derivative_and_neuron_parameters(tmp_path):
    out = tmp_path / "t.h5"
    params = ["--tau-rc", "0.03", "--tau-ref", "0.001", "--amplitude", "0.5"]
    args = ["tuning", "--model", "softlif", "--sigma", "0.3", *params]
    result = run([*args, "--derivative", "--seed", 1, "--n-neurons", 4, "-o", out])
    assert result.exit_code == 0, result.stderr
    data = load_h5(out)
    x, gain, bias, enc = data["x"], data["gain"], data["bias"], data["encoders"]
    kw = {"sigma": 0.3, "tau_rc": 0.03, "tau_ref": 0.001, "amplitude": 0.5}
    assert_same_rates(data["rates"], oracle_rates("softlif", x, gain, bias, enc, **kw))
    model = reference.SoftLIFRate(**kw)
    # the reference takes one neuron's gain at a time
    expected = np.column_stack(
        [model.derivative(x * enc[j], gain[j], bias[j]) * enc[j] for j in range(4)]
    )
    assert_same_rates(data["derivative"], expected)
    # and it is the slope of the curve (central differences)
    slope = np.gradient(data["rates"], x, axis=0)
    np.testing.assert_allclose(
        data["derivative"][1:-1], slope[1:-1], rtol=2e-3, atol=0.5
    )


def test_tuning_grid_options_and_csv(tmp_path):
    args = ["tuning", "--model", "lif", "--n-neurons", 3, "--seed", 0]
    result = run(
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


def test_tuning_population_options(tmp_path):
    out = tmp_path / "t.npz"
    args = ["tuning", "--n-neurons", 50, "--max-rates", "100", "--intercepts", "0"]
    result = run([*args, "--encoders", "positive", "--seed", 7, "-o", out])
    assert result.exit_code == 0, result.stderr
    data = load_npz(out)
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
    assert run([*base, "-o", out]).exit_code == 0
    assert run([*base, "-o", out2]).exit_code == 0
    a, b = load_npz(out), load_npz(out2)
    np.testing.assert_array_equal(a["gain"], b["gain"])
    max_rates, intercepts = nengo.LIFRate().max_rates_intercepts(a["gain"], a["bias"])
    assert np.all((max_rates >= 10 - 1e-6) & (max_rates <= 200 + 1e-6))
    assert np.all((intercepts >= -0.5 - 1e-9) & (intercepts <= 0.5 + 1e-9))
    assert 40 < np.count_nonzero(a["encoders"] > 0) < 160


@pytest.mark.parametrize("fmt", ["csv", "npz", "h5"])
@pytest.mark.parametrize("columns", ["gain_bias", "max_rate_intercept"])
def test_tuning_neurons_file(tmp_path, fmt, columns):
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
    result = run(["tuning", "--neurons", path, "-o", out])
    assert result.exit_code == 0, result.stderr
    data = load_npz(out)
    np.testing.assert_allclose(data["gain"], gain, rtol=1e-12)
    np.testing.assert_allclose(data["bias"], bias, rtol=1e-12)
    np.testing.assert_array_equal(data["encoders"], encoders)
    at_encoder = np.where(encoders > 0, data["rates"][-1], data["rates"][0])
    np.testing.assert_allclose(at_encoder, max_rates, rtol=1e-9)


def test_tuning_plot(tmp_path):
    fig = tmp_path / "t.svg"
    args = ["tuning", "--model", "lif", "--n-neurons", 3, "--points", 21]
    result = run([*args, "--duration", "0.2", "-o", tmp_path / "t.npz", "--plot", fig])
    assert result.exit_code == 0, result.stderr
    assert b"<svg" in fig.read_bytes()[:500]
    fig = tmp_path / "d.pdf"
    args = ["tuning", "--model", "softlif", "--derivative", "--plot", fig]
    result = run([*args, "-o", tmp_path / "d.npz"])
    assert result.exit_code == 0, result.stderr
    assert fig.read_bytes()[:5] == b"%PDF-"


# ----------------------------------------------------------------------------
# simulate


@pytest.mark.parametrize("model", ["lif", "fastlif"])
def test_simulate_dense_layout(tmp_path, model):
    out = tmp_path / "sim.npz"
    args = ["simulate", "--model", model, "--n-neurons", 8, "--seed", 4]
    result = run([*args, "--duration", "0.5", "--dt", "0.0005", "-o", out])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    data = load_npz(out)
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


def test_simulate_matches_nengo_lif(tmp_path):
    """The dense output equals nengo's LIF.step run on the saved population."""
    out = tmp_path / "sim.h5"
    args = ["simulate", "--n-neurons", 5, "--seed", 9, "--input", "sine:3:0.9"]
    result = run([*args, "--duration", "0.3", "--amplitude", "0.5", "-o", out])
    assert result.exit_code == 0, result.stderr
    data = load_h5(out)
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


def test_simulate_events_layout(tmp_path):
    dense_out, events_out = tmp_path / "d.npz", tmp_path / "e.nwb"
    args = ["simulate", "--n-neurons", 6, "--seed", 1, "--input", "ramp:-1:1"]
    assert run([*args, "-o", dense_out]).exit_code == 0
    result = run([*args, "--events", "-o", events_out])
    assert result.exit_code == 0, result.stderr
    dense = load_npz(dense_out)
    trains, ids = read_events(events_out)
    assert ids == [str(j) for j in range(6)]
    for got, want in zip(trains, times_of(dense["t"], dense["spikes"]), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    with h5py.File(events_out, "r") as f:
        assert {"input", "gain", "bias", "encoders"} <= set(f)
        np.testing.assert_array_equal(f["gain"][()], dense["gain"])
    np.testing.assert_allclose(dense["input"], np.linspace(-1, 1, 1000))


def test_simulate_csv_carries_only_t_and_units():
    args = ["simulate", "--n-neurons", 3, "--seed", 1, "--duration", "0.1"]
    result = run(args)
    assert result.exit_code == 0, result.stderr
    t, spikes, ids = parse_matrix_csv(result.stdout)
    assert ids == ["0", "1", "2"]
    np.testing.assert_allclose(t, 0.001 * np.arange(1, 101), rtol=1e-9)
    assert set(np.unique(spikes)) <= {0.0, 1000.0}


def test_simulate_initial_voltage_and_seed(tmp_path):
    def simulate(*extra, duration="0.05"):
        out = tmp_path / "s.npz"
        args = ["simulate", "--n-neurons", 20, "--duration", duration, "-o", out]
        result = run([*args, *extra])
        assert result.exit_code == 0, result.stderr
        return load_npz(out)

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


def test_simulate_input_file_and_neurons_file(tmp_path):
    signal = tmp_path / "signal.csv"
    t_file = np.linspace(0, 0.2, 21)
    signal.write_text(
        "t,x\n" + "".join(f"{float(a)!r},{float(2 * a)!r}\n" for a in t_file)
    )
    neurons = tmp_path / "neurons.csv"
    neurons.write_text("max_rate,intercept,encoder\n100,-0.5,1\n200,0.0,-1\n")
    out = tmp_path / "s.npz"
    args = ["simulate", "--input", signal, "--neurons", neurons, "--duration", "0.2"]
    result = run([*args, "--model", "fastlif", "-o", out])
    assert result.exit_code == 0, result.stderr
    data = load_npz(out)
    np.testing.assert_allclose(data["input"], 2 * data["t"], rtol=1e-9)
    np.testing.assert_array_equal(data["encoders"], [1.0, -1.0])
    gain, bias = nengo.LIFRate().gain_bias(
        np.array([100.0, 200.0]), np.array([-0.5, 0])
    )
    np.testing.assert_allclose(data["gain"], gain, rtol=1e-12)
    np.testing.assert_allclose(data["bias"], bias, rtol=1e-12)


def test_simulate_min_voltage_and_tau(tmp_path):
    out = tmp_path / "s.npz"
    args = ["simulate", "--n-neurons", 4, "--seed", 2, "--input", "sine:5"]
    args += ["--tau-rc", "0.05", "--tau-ref", "0.004", "--min-voltage", "-1"]
    args += ["--max-rates", "50:200"]
    result = run([*args, "--duration", "0.2", "-o", out])
    assert result.exit_code == 0, result.stderr
    data = load_npz(out)
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


def test_simulate_plot(tmp_path):
    fig = tmp_path / "sim.png"
    out = tmp_path / "sim.npz"
    result = run(["simulate", "--n-neurons", 5, "--plot", fig, "-o", out])
    assert result.exit_code == 0, result.stderr
    assert fig.read_bytes()[:4] == b"\x89PNG"
    fig = tmp_path / "ev.png"
    result = run(["simulate", "--events", "--plot", fig, "-o", tmp_path / "e.npz"])
    assert result.exit_code == 0, result.stderr
    assert fig.exists()


# ----------------------------------------------------------------------------
# Usage errors: exit 2, Click's usage text, nothing written


USAGE_CASES = [
    (["rates", "kernel", "{npz}", "--tau", "0"], "--tau"),
    (["rates", "kernel", "{npz}", "--tau", "-0.1"], "--tau"),
    (["rates", "kernel", "{npz}", "--kind", "box"], "--kind"),
    (["rates", "isi", "{npz}", "--interp", "spline"], "--interp"),
    (["rates", "kernel", "{npz}", "--dt", "-1"], "--dt"),
    (["rates", "kernel", "{npz}", "--chunk-duration", "0"], "--chunk-duration"),
    (["rates", "kernel", "{npz}", "--dtype", "int8"], "--dtype"),
    (["rates", "kernel", "{npz}", "--jobs", "0"], "--jobs"),
    (["rates", "kernel", "{npz}", "--values", "bits"], "--values"),
    (["rates", "kernel", "{npz}", "--t-start", "0.5", "--t-stop", "0.2"], "--t-stop"),
    (["rates", "kernel", "{npz}", "--units", "1,,2"], "--units"),
    (["rates", "kernel", "{npz}", "--from", "xls"], "--from"),
    (["rates", "kernel", "{npz}", "--to", "phy"], "--to"),
    (["rates", "kernel", "{npz}", "--plot", "fig.txt"], "--plot"),
    (["rates", "kernel", "{npz}", "{csv}"], "-o DIR"),
    (["rates", "kernel", "{npz}", "{csv}", "-o", "{tmp}/out.npz"], "directory"),
    (["rates", "kernel", "{npz}", "-o", "{npz}"], "overwrite"),
    (["rates", "kernel", "-", "-", "-o", "{tmp}/d"], "standard input"),
    (["rates", "kernel"], "INPUT"),
    (["events", "{npz}", "--label"], "--label"),
    (["tuning", "--points", "1"], "--points"),
    (["tuning", "--x-min", "1", "--x-max", "1"], "--x-max"),
    (["tuning", "--model", "lif", "--derivative"], "--derivative"),
    (["tuning", "--model", "adex"], "--model"),
    (["tuning", "--max-rates", "300:100"], "--max-rates"),
    (["tuning", "--max-rates", "a:b"], "--max-rates"),
    (["tuning", "--max-rates", "1:2:3"], "--max-rates"),
    (["tuning", "--max-rates", "0"], "--max-rates"),
    (["tuning", "--max-rates", "600"], "--max-rates"),  # above 1/tau_ref
    (["tuning", "--intercepts", "-1:1"], "--intercepts"),
    (["tuning", "--intercepts", "nan"], "--intercepts"),
    (["tuning", "--n-neurons", "0"], "--n-neurons"),
    (["tuning", "--tau-rc", "0"], "--tau-rc"),
    (["tuning", "--tau-ref", "-0.001"], "--tau-ref"),
    (["tuning", "--amplitude", "0"], "--amplitude"),
    (["tuning", "--sigma", "0"], "--sigma"),
    (["tuning", "--min-voltage", "0.5"], "--min-voltage"),
    (["tuning", "--encoders", "negative"], "--encoders"),
    (["tuning", "--seed", "x"], "--seed"),
    (["tuning", "--seed", "-3"], "--seed"),
    (["tuning", "--dt", "0"], "--dt"),
    (["tuning", "--duration", "-1"], "--duration"),
    (["tuning", "--neurons", "{csv}", "--n-neurons", "3"], "--neurons"),
    (["simulate", "--model", "softlif"], "--model"),
    (["simulate", "--input", "square:3"], "--input"),
    (["simulate", "--input", "white:abc"], "--input"),
    (["simulate", "--input", "ramp:1"], "--input"),
    (["simulate", "--input", "sine:-2"], "--input"),
    (["simulate", "--dt", "0"], "--dt"),
    (["simulate", "--duration", "0.0001"], "--duration"),
    (["simulate", "--initial-voltage", "random"], "--initial-voltage"),
    (["simulate", "--sigma", "1"], "--sigma"),
    (["simulate", "--plot", "x.jpeg"], "--plot"),
]


@pytest.mark.parametrize("args,fragment", USAGE_CASES)
def test_usage_errors(tmp_path, dense_files, args, fragment):
    values = {"npz": dense_files["npz"], "csv": dense_files["csv"], "tmp": tmp_path}
    args = [a.format(**values) for a in args]
    before = directory_entries(tmp_path)
    result = run(args)
    assert_usage_error(result, fragment)
    assert "Error: " in result.stderr
    assert directory_entries(tmp_path) == before


# ----------------------------------------------------------------------------
# Data and I/O errors: exit 1, one line naming the file, nothing left behind


def test_missing_input(tmp_path):
    out = tmp_path / "out.npz"
    result = run(["rates", "kernel", tmp_path / "nope.npz", "-o", out])
    assert_one_line_error(result, "nope.npz")
    assert directory_entries(tmp_path) == []


def test_glob_without_match(tmp_path):
    result = run(["events", str(tmp_path / "*.npz"), "-o", tmp_path / "out.csv"])
    assert_one_line_error(result, "*.npz", "no file matches")


@pytest.mark.parametrize(
    "name,content,fragments",
    [
        ("junk.npz", b"this is not a zip file", ["junk.npz"]),
        ("junk.h5", b"\x89HDF\r\n\x1a\n garbage", ["junk.h5"]),
        ("bad.csv", b"t,0,1\n0.001,0,1000\n0.002,x,0\n", ["bad.csv"]),
        ("empty.csv", b"", ["empty.csv"]),
        ("nonuniform.csv", b"t,0\n0.001,0\n0.002,1000\n0.004,0\n", ["nonuniform.csv"]),
        (
            "ambiguous.csv",
            b"t,0\n0.001,0\n0.002,0.5\n0.003,0\n",
            ["ambiguous.csv", "--values"],
        ),
    ],
)
@pytest.mark.parametrize("command", [["events"], ["rates", "kernel"], ["rates", "isi"]])
def test_bad_data(tmp_path, name, content, fragments, command):
    data_dir = tmp_path / "in"
    data_dir.mkdir()
    path = data_dir / name
    path.write_bytes(content)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "result.h5"
    result = run([*command, path, "-o", out, "--plot", out_dir / "f.png"])
    assert_one_line_error(result, *fragments)
    assert directory_entries(out_dir) == []


def test_bad_events_data(tmp_path):
    path = tmp_path / "ev.npz"
    np.savez(
        path, spike_times=np.array([0.1, np.nan]), spike_times_index=[2], unit_ids=[0]
    )
    result = run(["rates", "isi", path, "-o", tmp_path / "o.npz"])
    assert_one_line_error(result, "ev.npz", "spike_times")
    assert not (tmp_path / "o.npz").exists()
    np.savez(
        path,
        spike_times=np.array([0.1, 0.2]),
        spike_times_index=[1, 3],
        unit_ids=[0, 1],
    )
    result = run(["events", path, "-o", tmp_path / "o.npz"])
    assert_one_line_error(result, "ev.npz", "spike_times_index")
    np.savez(
        path,
        spike_times=np.array([0.1, 0.2]),
        spike_times_index=[1, 2],
        unit_ids=[0, 1, 2],
    )
    result = run(["events", path, "-o", tmp_path / "o.npz"])
    assert_one_line_error(result, "ev.npz", "unit")
    assert not (tmp_path / "o.npz").exists()


def test_data_errors_in_options(tmp_path, dense_files, events_file):
    out = tmp_path / "o.npz"
    result = run(["rates", "kernel", dense_files["npz"], "--units", "9", "-o", out])
    assert_one_line_error(result, dense_files["npz"], "9")
    result = run(["events", dense_files["npz"], "--label", "good", "-o", out])
    assert_one_line_error(result, dense_files["npz"], "label")
    result = run(["rates", "kernel", dense_files["npz"], "--dataset", "/x", "-o", out])
    assert result.exit_code == 1
    assert len(error_lines(result)) == 1
    result = run(["rates", "kernel", events_file[0], "--t-start", "5", "-o", out])
    assert_one_line_error(result, events_file[0])
    assert not out.exists()


def test_bad_neurons_and_input_files(tmp_path):
    neurons = tmp_path / "neurons.csv"
    neurons.write_text("gain,offset\n1,2\n")
    out = tmp_path / "o.npz"
    result = run(["tuning", "--neurons", neurons, "-o", out])
    assert_one_line_error(result, "neurons.csv", "bias")
    result = run(["simulate", "--neurons", neurons, "-o", out])
    assert_one_line_error(result, "neurons.csv")
    neurons.write_text("max_rate,intercept\n1000,0\n")
    result = run(["tuning", "--neurons", neurons, "-o", out])
    assert_one_line_error(result, "neurons.csv", "max_rate")
    signal = tmp_path / "signal.csv"
    signal.write_text("time,value\n0,1\n1,2\n")
    result = run(["simulate", "--input", signal, "-o", out])
    assert_one_line_error(result, "signal.csv", "x")
    signal.write_text("t,x\n0,1\n0.5,2\n")
    result = run(["simulate", "--input", signal, "-o", out])
    assert_one_line_error(result, "signal.csv", "cover")
    assert not out.exists()


def test_unwritable_output(tmp_path, dense_files):
    target = tmp_path / "missing_dir" / "out.npz"
    result = run(["rates", "kernel", dense_files["npz"], "-o", target])
    assert_one_line_error(result, "missing_dir")


def test_verbose_prints_traceback(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"nope")
    result = run(["-v", "events", path])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("spikerates: error: ")
    result = run(["-v", "tuning", "--neurons", path])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr


def test_verbose_summary(tmp_path, dense_files):
    result = run(
        ["-v", "rates", "kernel", dense_files["npz"], "-o", tmp_path / "r.npz"]
    )
    assert result.exit_code == 0
    assert "wrote" in result.stderr and "600 steps" in result.stderr


# ----------------------------------------------------------------------------
# Many inputs


@pytest.fixture()
def batch_inputs(tmp_path, dense):
    t, spikes = dense
    folder = tmp_path / "in"
    folder.mkdir()
    paths = [
        write_dense_file(folder / "a.npz", t, spikes),
        write_dense_file(folder / "b.h5", t, spikes[:, :2]),
        write_dense_file(folder / "c.csv", t, spikes[:, 1:]),
    ]
    return folder, paths


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_batch_outputs(tmp_path, dense, batch_inputs, jobs):
    t, spikes = dense
    folder, paths = batch_inputs
    out = tmp_path / "out"
    args = ["rates", "kernel", *paths, "-o", out, "--to", "h5", "--jobs", jobs]
    result = run(args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert directory_entries(out) == ["a.h5", "b.h5", "c.h5"]
    expected = reference.rates_kernel(t, spikes)
    assert_same_rates(read_rates(out / "a.h5")[1], expected)
    assert_same_rates(read_rates(out / "b.h5")[1], expected[:, :2])
    assert_same_rates(read_rates(out / "c.h5")[1], expected[:, 1:])


def test_batch_glob_and_plot(tmp_path, batch_inputs):
    folder, _ = batch_inputs
    out = tmp_path / "ev"
    fig = tmp_path / "raster.png"
    result = run(["events", str(folder / "*"), "-o", out, "--plot", fig])
    assert result.exit_code == 0, result.stderr
    assert directory_entries(out) == ["a.npz", "b.npz", "c.npz"]
    for stem in "abc":
        assert (tmp_path / f"raster-{stem}.png").exists()


def test_batch_one_bad_input(tmp_path, batch_inputs):
    folder, paths = batch_inputs
    bad = folder / "bad.npz"
    bad.write_bytes(b"broken")
    out = tmp_path / "out"
    result = run(
        ["rates", "isi", paths[0], str(bad), paths[2], "-o", out, "--jobs", "2"]
    )
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("spikerates: error: ")
    assert "bad.npz" in lines[0]
    assert directory_entries(out) == ["a.npz", "c.npz"]


def test_single_input_into_directory(tmp_path, dense_files):
    out = tmp_path / "results"
    out.mkdir()
    result = run(["events", dense_files["csv"], "-o", out])
    assert result.exit_code == 0, result.stderr
    assert directory_entries(out) == ["spikes.npz"]


# ----------------------------------------------------------------------------
# Every option of every command is exercised above


def _all_option_names():
    import click

    names = set()

    def walk(command):
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                walk(sub)
        for param in command.params:
            if isinstance(param, click.Option):
                names.update(o for o in param.opts if o.startswith("--"))

    walk(cli)
    return names - {"--help", "--version", "--verbose", "--quiet"}


def test_every_option_is_tested():
    with open(__file__) as f:
        source = f.read()
    untested = sorted(n for n in _all_option_names() if f'"{n}"' not in source)
    assert untested == []


@pytest.mark.parametrize("fmt", ["npz", "h5", "csv"])
def test_failure_mid_stream_leaves_nothing(tmp_path, monkeypatch, dense_files, fmt):
    """An error after some chunks were written removes the partial output."""
    import spikerates.pipeline

    class FailingFilter(spikerates.pipeline.KernelFilter):
        calls = 0

        def process(self, chunk):
            FailingFilter.calls += 1
            if FailingFilter.calls == 3:
                raise ValueError("simulated failure in the third chunk")
            return super().process(chunk)

    monkeypatch.setattr(spikerates.pipeline, "KernelFilter", FailingFilter)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = ["rates", "kernel", dense_files["npz"], "-o", out_dir / f"r.{fmt}"]
    result = run([*args, "--chunk-duration", "0.1"])
    assert_one_line_error(result, dense_files["npz"], "third chunk")
    assert FailingFilter.calls == 3
    assert directory_entries(out_dir) == []


def test_allow_external_data_follows_an_external_link(tmp_path):
    """HDF5 data in another file is refused unless --allow-external-data."""
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.eye(4, dtype=np.int64)
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["t"] = np.arange(1, 5) * 1e-3
        f["spikes"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/data")
    out = tmp_path / "out.npz"
    refused = run(["events", tmp_path / "in.h5", "-o", out])
    assert_one_line_error(refused, "/spikes", "--allow-external-data")
    assert not out.exists()
    result = run(["events", tmp_path / "in.h5", "--allow-external-data", "-o", out])
    assert result.exit_code == 0, result.stderr
    with np.load(out) as npz:
        times = npz["spike_times"]
    assert times.tolist() == pytest.approx([0.001, 0.002, 0.003, 0.004])
