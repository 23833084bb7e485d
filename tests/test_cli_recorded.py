"""Rates of recorded spike times through the command line: windows crop the
output, coarse grids are noted, ISIs use exact times, border correction keeps
counts, and a folder without a recording length says so."""

from __future__ import annotations

import numpy as np
import pytest

DT = 0.01


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Poisson units at 20-46 Hz over 2 s, times rounded to 0.1 ms."""
    rng = np.random.default_rng(21)
    trains = [
        np.round(np.sort(rng.uniform(0, 2.0, rng.poisson(2.0 * rate))), 4)
        for rate in (20.0, 30.0, 46.4)
    ]
    return trains


def _rates(cli, files, tmp_path, trains, *args, name="r.npz"):
    source = files.write_events_npz(tmp_path / "ev.npz", trains, np.arange(len(trains)))
    out = tmp_path / name
    result = cli.run(["rates", *args[:1], source, *args[1:], "-o", out])
    assert result.exit_code == 0, result.stderr
    with np.load(out) as f:
        return f["t"], f["rates"], result


@pytest.mark.parametrize("method", ["kernel", "isi"])
def test_a_window_crops_the_output(cli, files, tmp_path, recording, method):
    t, full, _ = _rates(cli, files, tmp_path, recording, method, "--dt", DT)
    window = ["--t-start", 0.5, "--t-stop", 1.5]
    t_w, part, _ = _rates(
        cli, files, tmp_path, recording, method, "--dt", DT, *window, name="w.npz"
    )
    k0 = int(round(0.5 / DT))
    np.testing.assert_allclose(t_w, t[k0 : k0 + t_w.size], rtol=0, atol=1e-12)
    np.testing.assert_allclose(part, full[k0 : k0 + t_w.size], rtol=1e-9, atol=1e-9)


def test_a_coarse_grid_is_noted_and_normalize_keeps_the_mean(
    cli, files, tmp_path, recording
):
    _, _, result = _rates(cli, files, tmp_path, recording, "kernel", "--dt", 0.05)
    assert any("holds" in line and "mass" in line for line in cli.error_lines(result))
    # With the kernel's whole reach inside the output, its mean rate is the
    # spike count over the time, within 1%, even at dt = tau.
    for dt in (0.02, 0.04):
        window = ["--t-start", -0.4, "--t-stop", 2.4]
        _, rates, _ = _rates(
            cli, files, tmp_path, recording, "kernel", "--dt", dt, *window,
            "--normalize",
        )  # fmt: skip
        for u, times in enumerate(recording):
            assert rates[:, u].mean() == pytest.approx(times.size / 2.8, rel=0.01)


def test_isi_uses_exact_times_on_spike_input(cli, files, tmp_path):
    trains = [np.array([0.1, 0.105, 0.2, 0.5])]  # two spikes in one 10 ms bin
    t, rates, _ = _rates(cli, files, tmp_path, trains, "isi", "--dt", DT)
    k = np.searchsorted(t, 0.15)
    assert rates[k, 0] == pytest.approx(1 / 0.095, rel=1e-9)
    k = np.searchsorted(t, 0.3)
    assert rates[k, 0] == pytest.approx(1 / 0.3, rel=1e-9)


@pytest.mark.parametrize("kind", ["gauss", "expon", "alpha", "expogauss"])
def test_border_correction_keeps_each_units_count(
    cli, files, tmp_path, recording, kind
):
    args = ["kernel", "--dt", 0.001, "--kind", kind, "--border-correction"]
    t, rates, _ = _rates(cli, files, tmp_path, recording, *args, "--t-stop", 2.0)
    for u, times in enumerate(recording):
        assert rates[:, u].sum() * 0.001 == pytest.approx(times.size, rel=1e-6)


def test_border_correction_on_a_folder_without_a_length_is_noted(
    cli, tmp_path, phy_writer
):
    folder = phy_writer(
        tmp_path / "ks", np.array([3000, 9000, 30000]), np.array([1, 1, 1])
    )
    out = tmp_path / "r.npz"
    result = cli.run(["rates", "kernel", folder, "--border-correction", "-o", out])
    assert result.exit_code == 0, result.stderr
    assert any("how long" in line for line in cli.error_lines(result))
