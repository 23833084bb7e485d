"""Figures of unit metrics and PSTHs are written in the asked format."""

from __future__ import annotations

import numpy as np
import pytest

from spikerates.errors import ParameterError
from spikerates.metrics import compute_metrics
from spikerates.plot_metrics import plot_metric_distributions, plot_psth
from spikerates.psth import compute_psth
from spikerates.spiketrains import SpikeTrains

SIGNATURES = {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}


@pytest.fixture
def trains(rng):
    return SpikeTrains(
        [np.sort(rng.uniform(0, 200, m)) for m in (3000, 500, 0, 1)],
        t_start=0.0,
        t_stop=200.0,
    )


@pytest.mark.parametrize("ext", [".png", ".svg", ".pdf"])
def test_metric_distributions(tmp_path, trains, ext):
    path = tmp_path / f"m{ext}"
    plot_metric_distributions(compute_metrics(trains), path)
    assert path.read_bytes().startswith(SIGNATURES[ext])
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_psth_figure(tmp_path, trains, rng):
    events = np.sort(rng.uniform(5, 190, 30))
    groups = np.where(np.arange(30) % 2, "a", "b")
    psth = compute_psth(
        trains, events, (-0.5, 1.0), dt=0.05, groups=groups, n_bootstrap=50
    )
    path = tmp_path / "p.png"
    plot_psth(psth, path)
    assert path.read_bytes().startswith(SIGNATURES[".png"])
    plot_psth(psth, tmp_path / "q.svg", units=[1])
    assert (tmp_path / "q.svg").stat().st_size > 0


def test_bad_figure_arguments(tmp_path, trains):
    table = compute_metrics(trains)
    with pytest.raises(ParameterError, match=r"\.png"):
        plot_metric_distributions(table, tmp_path / "m.jpg")
    with pytest.raises(ParameterError, match="no metric"):
        plot_metric_distributions(table, tmp_path / "m.png", names=["snr"])
    psth = compute_psth(trains, [50.0], (0.0, 1.0), dt=0.5, n_bootstrap=5)
    with pytest.raises(ParameterError, match="no unit with id 99"):
        plot_psth(psth, tmp_path / "p.png", units=[99])
    assert list(tmp_path.iterdir()) == []
