"""Figures: every function writes a valid PNG, SVG and PDF, atomically."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from spikerates import plot
from spikerates.errors import ParameterError

#: Where figures are kept for inspection: the folder named by the environment
#: variable SPIKERATES_ARTIFACTS (e.g. tests/artifacts, ignored by git), else
#: nowhere.
ARTIFACTS = os.environ.get("SPIKERATES_ARTIFACTS")

MAGIC = {
    "png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    "pdf": lambda b: b.startswith(b"%PDF-"),
    "svg": lambda b: b"<svg" in b[:2000] and b.rstrip().endswith(b"</svg>"),
}


def check_figure(path: Path) -> None:
    """The file exists, has the format's signature, and no temporary file is
    left beside it; copied to :data:`ARTIFACTS` when that is set."""
    data = path.read_bytes()
    assert MAGIC[path.suffix[1:]](data), f"{path.name} is not a {path.suffix} file"
    leftovers = [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    if ARTIFACTS:
        os.makedirs(ARTIFACTS, exist_ok=True)
        shutil.copy(path, Path(ARTIFACTS) / f"plot_{path.name}")


@pytest.fixture(scope="module")
def spike_times():
    rng = np.random.default_rng(3)
    trains = [np.sort(rng.uniform(0, 2, rng.poisson(10 + 4 * j))) for j in range(12)]
    trains[5] = np.empty(0)  # an empty unit keeps its row
    return trains


@pytest.fixture(scope="module")
def rate_matrix():
    t = 0.001 * np.arange(1, 3001)
    phase = np.linspace(0, np.pi, 15)
    rates = 20 + 15 * np.sin(2 * np.pi * 1.5 * t[:, None] + phase)
    return t, rates


@pytest.mark.parametrize("ext", ["png", "svg", "pdf"])
def test_raster_formats(tmp_path, spike_times, ext):
    path = tmp_path / f"raster.{ext}"
    plot.plot_raster(spike_times, np.arange(100, 112), path, t_start=0.0, t_stop=2.0)
    check_figure(path)


@pytest.mark.parametrize("ext", ["png", "svg", "pdf"])
def test_rates_formats(tmp_path, rate_matrix, ext):
    t, rates = rate_matrix
    path = tmp_path / f"rates.{ext}"
    plot.plot_rates(t, rates, np.arange(15), path)
    check_figure(path)


@pytest.mark.parametrize("ext", ["png", "svg", "pdf"])
def test_tuning_formats(tmp_path, ext):
    x = np.linspace(-1, 1, 101)
    gain = np.linspace(1, 3, 8)
    rates = 40 * np.maximum(0, gain * x[:, None] + 0.3)
    measured = rates + np.random.default_rng(0).normal(0, 1, rates.shape)
    derivative = 40 * gain * (gain * x[:, None] + 0.3 > 0)
    path = tmp_path / f"tuning.{ext}"
    plot.plot_tuning(x, rates, path, measured=measured, derivative=derivative)
    check_figure(path)


def test_simulation_figure(tmp_path, spike_times):
    t = 0.001 * np.arange(1, 2001)
    path = tmp_path / "simulation.png"
    plot.plot_simulation(t, spike_times, np.sin(2 * np.pi * t), path)
    check_figure(path)


def test_raster_accepts_data_model_and_path_second(tmp_path, spike_times):
    from spikerates.spiketrains import SpikeTrains

    trains = SpikeTrains(
        spike_times=spike_times, unit_ids=np.arange(12), t_start=0.0, t_stop=2.0
    )
    path = tmp_path / "raster_trains.png"
    plot.plot_raster(trains, path)
    check_figure(path)


def test_raster_of_dense_spikes(tmp_path):
    from spikerates.spiketrains import DenseSpikes

    rng = np.random.default_rng(1)
    t = 0.001 * np.arange(1, 1001)
    spikes = (rng.random((1000, 6)) < 0.02) / 0.001
    dense = DenseSpikes(
        t=t, spikes=spikes, unit_ids=np.arange(6), values="amplitude", source=None
    )
    path = tmp_path / "raster_dense.svg"
    plot.plot_raster(dense, path)
    check_figure(path)


def test_many_spikes_drawn_as_counts(tmp_path):
    rng = np.random.default_rng(2)
    trains = [np.sort(rng.uniform(0, 600, 6000)) for _ in range(50)]
    path = tmp_path / "raster_dense_counts.png"
    plot.plot_raster(trains, None, path)
    check_figure(path)


def test_long_rates_are_decimated_from_a_lazy_array(tmp_path):
    """A long (M, N) array is read block by block, never whole."""

    class Lazy:
        def __init__(self, array):
            self.array = array
            self.shape = array.shape
            self.largest_read = 0

        def __len__(self):
            return self.shape[0]

        def __getitem__(self, index):
            part = self.array[index]
            self.largest_read = max(self.largest_read, part.size)
            return part

    t = 0.001 * np.arange(1, 200_001)
    rates = np.tile(10 + 5 * np.sin(t)[:, None], (1, 30))
    lazy = Lazy(rates)
    path = tmp_path / "rates_long.png"
    plot.plot_rates(t, lazy, None, path, max_rows=500)
    check_figure(path)
    assert 0 < lazy.largest_read <= (1 << 22)


def test_block_means_match_numpy():
    t = np.arange(10.0)
    rates = np.arange(20.0).reshape(10, 2)
    t_out, r_out, block = plot._block_means(t, rates, max_rows=4)
    assert block == 3
    np.testing.assert_allclose(t_out, [1, 4, 7, 9])
    np.testing.assert_allclose(r_out[:, 0], [2, 8, 14, 18])


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
@pytest.mark.parametrize("n_rows,max_rows", [(10, 4), (1000, 7), (5, 10), (0, 3)])
def test_block_means_in_chunks(chunk, n_rows, max_rows):
    """Fed in chunks of any size, the means are those of a plain loop."""
    rng = np.random.default_rng(n_rows + chunk)
    t = np.sort(rng.uniform(0, 10, n_rows))
    rates = rng.normal(20, 5, (n_rows, 3))
    means = plot.BlockMeans(n_rows, 3, max_rows)
    for k0 in range(0, n_rows, chunk):
        means.add(t[k0 : k0 + chunk], rates[k0 : k0 + chunk])
    t_out, r_out = means.result()
    block = max(1, -(-n_rows // max_rows))
    assert means.block == block and len(t_out) <= max_rows
    starts = range(0, n_rows, block)
    np.testing.assert_allclose(t_out, [t[k : k + block].mean() for k in starts])
    expected = [rates[k : k + block].mean(axis=0) for k in starts]
    np.testing.assert_allclose(r_out, np.reshape(expected, (-1, 3)), rtol=1e-12)


def test_block_means_refuse_extra_rows():
    means = plot.BlockMeans(3, 1, 2)
    means.add(np.arange(3.0), np.ones((3, 1)))
    with pytest.raises(ParameterError, match="4 rows added"):
        means.add([4.0], [[1.0]])


@pytest.mark.parametrize(
    "call",
    [
        lambda p: plot.plot_raster([np.array([0.1])], None, p),
        lambda p: plot.plot_rates(np.arange(3.0), np.ones((3, 2)), None, p),
        lambda p: plot.plot_tuning(np.arange(3.0), np.ones((3, 2)), p),
        lambda p: plot.plot_simulation(np.arange(3.0), [[]], np.zeros(3), p),
    ],
)
@pytest.mark.parametrize("name", ["figure.jpg", "figure", "figure.png.txt"])
def test_bad_extension(tmp_path, call, name):
    path = tmp_path / name
    with pytest.raises(ParameterError, match="must end in .png, .svg or .pdf"):
        call(path)
    assert not path.exists()


def test_bad_shapes():
    with pytest.raises(ParameterError, match="rows"):
        plot.plot_rates(np.arange(4.0), np.ones((3, 2)), None, "x.png")
    with pytest.raises(ParameterError, match="unit_ids"):
        plot.plot_rates(np.arange(3.0), np.ones((3, 2)), [1, 2, 3], "x.png")
    with pytest.raises(ParameterError, match="measured"):
        plot.plot_tuning(np.arange(3.0), np.ones((3, 2)), "x.png", np.ones((3, 5)))


def test_failed_save_leaves_nothing(tmp_path, monkeypatch, rate_matrix):
    t, rates = rate_matrix
    target = tmp_path / "rates.png"
    target.write_bytes(b"old")

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(plot.Figure, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        plot.plot_rates(t, rates, None, target)
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["rates.png"]
