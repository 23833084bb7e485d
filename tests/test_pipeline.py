"""Streamed rate estimation equals the whole-array estimators.

The oracle is the in-memory path: the events put on the full dense grid
(``events_to_dense``) and passed whole to ``rates_kernel`` / ``rates_isi``.
The streamed path bins (or reads) chunk by chunk and must agree to 1e-9 for
every kernel kind and tau, for chunks smaller than the kernel, equal to it,
larger, not dividing the recording, with spikes on chunk edges and empty
chunks.
"""

from __future__ import annotations

import csv
import functools
import math

import h5py
import numpy as np
import pytest

from spikerates.errors import ParameterError
from spikerates.estimators import rates_isi, rates_kernel
from spikerates.io import open_matrix_writer
from spikerates.pipeline import estimate_rates
from spikerates.spiketrains import DenseSpikes, SpikeTrains, events_to_dense

DT = 0.001
N_STEPS = 643  # no chunk size below divides it
KINDS = ("gauss", "expon", "alpha", "expogauss")
RTOL = 1e-9
ATOL = 1e-9  # Hz; rates are O(10-1000 Hz)


class ListWriter:
    """In-memory writer recording each append (for chunk-size checks)."""

    def __init__(self, n_rows, unit_ids, attrs):
        self.n_rows = n_rows
        self.unit_ids = np.asarray(unit_ids)
        self.attrs = attrs
        self.t: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closed = True
        return False

    def append(self, t_chunk, values):
        assert values.shape == (len(t_chunk), len(self.unit_ids))
        self.t.append(np.array(t_chunk))
        self.values.append(np.array(values))

    def result(self):
        return np.concatenate(self.t), np.concatenate(self.values)


def list_factory():
    made = []

    def factory(n_rows, unit_ids, attrs):
        made.append(ListWriter(n_rows, unit_ids, attrs))
        return made[-1]

    return factory, made


def kernel_steps(kind: str, tau: float) -> int:
    """Length in steps of the reference's sampled kernel for ``kind``."""
    tau_i = tau / DT
    if kind == "gauss":
        return len(np.arange(-2 * tau_i, 2 * tau_i))
    if kind == "expogauss":
        return len(np.arange(0, 5 * tau_i)) + len(np.arange(-tau_i / 2, tau_i / 2))
    return len(np.arange(0, 5 * tau_i))


@pytest.fixture(scope="module")
def trains() -> SpikeTrains:
    """Spike times with spikes on chunk edges, a gap, doubles and an empty unit.

    Grid: t[k] = (k + 1) * dt for k = 0 .. N_STEPS - 1 (t_start = 0).
    """
    rng = np.random.default_rng(7)
    grid_t = DT * np.arange(1, N_STEPS + 1)
    units = []
    for j in range(4):
        s = rng.uniform(0.0, grid_t[-1], 40 + 10 * j)
        units.append(s)
    # Exactly on grid times that are the last/first bins of many chunk sizes,
    # and within rounding of a grid time (belongs to that grid time's bin).
    edges = np.array([1, 7, 8, 16, 40, 41, 80, 81, 160, 200, 201, 320, 400, 642])
    units[0] = np.concatenate([units[0], grid_t[edges - 1], grid_t[edges]])
    units[1] = np.concatenate([units[1], grid_t[[99, 199, 299]] + 1e-13 * DT])
    # Two spikes in one bin, at the first and last grid time.
    units[2] = np.concatenate([units[2], [grid_t[0], grid_t[-1]], [0.2505, 0.2506]])
    # A silent stretch: no spike between 0.30 and 0.45 s in any unit.
    units = [s[(s < 0.30) | (s > 0.45)] for s in units]
    units.append(np.empty(0))  # an empty unit stays an all-zero column
    units = [np.sort(s) for s in units]
    return SpikeTrains(
        spike_times=units,
        unit_ids=np.array([3, 5, 8, 13, 21]),
        t_start=0.0,
        t_stop=float(grid_t[-1]),
        source="test",
    )


@pytest.fixture(scope="module")
def dense(trains):
    grid = trains.grid(DT, t_start=0.0, t_stop=trains.t_stop)
    assert grid.n_steps == N_STEPS
    counts = np.asarray(events_to_dense(trains, grid))
    assert counts.shape == (N_STEPS, trains.n_units)
    return grid.times(), counts / DT


def stream(source, chunk_steps, **kwargs):
    factory, made = list_factory()
    kwargs.setdefault("dt", DT)
    summary = estimate_rates(
        source, factory, chunk_duration=chunk_steps * DT, t_start=0.0, **kwargs
    )
    (writer,) = made
    assert writer.closed
    t, values = writer.result()
    return summary, writer, t, values


def chunk_sizes(kind, tau):
    k = kernel_steps(kind, tau)
    return sorted({1, 7, k - 1, k, k + 1, 2 * k + 3, 1000})


# causal is defined for the one-sided kernels only.
KERNEL_VARIANTS = [
    (kind, normalize, causal)
    for kind in KINDS
    for normalize, causal in [(False, False), (True, False), (False, True)]
    if not causal or kind in ("expon", "alpha")
]


@pytest.mark.parametrize("kind, normalize, causal", KERNEL_VARIANTS)
@pytest.mark.parametrize("tau", [0.004, 0.04])
def test_kernel_events_stream_equals_whole(trains, dense, kind, tau, normalize, causal):
    t, amplitude = dense
    expected = rates_kernel(
        t, amplitude, kind=kind, tau=tau, normalize=normalize, causal=causal
    )
    for chunk in chunk_sizes(kind, tau):
        summary, writer, t_out, got = stream(
            trains,
            chunk,
            method="kernel",
            kind=kind,
            tau=tau,
            normalize=normalize,
            causal=causal,
            t_stop=trains.t_stop,
        )
        np.testing.assert_allclose(t_out, t, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=chunk)
        assert summary["n_steps"] == N_STEPS
        # Bounded memory: no append is larger than a chunk plus the kernel.
        assert max(len(v) for v in writer.values) <= chunk + kernel_steps(kind, tau)


@pytest.mark.parametrize("kind", KINDS)
def test_kernel_border_correction_streams(trains, dense, kind):
    t, amplitude = dense
    expected = rates_kernel(t, amplitude, kind=kind, tau=0.02, border_correction=True)
    for chunk in (1, 7, 1000):
        summary, writer, _, got = stream(
            trains,
            chunk,
            method="kernel",
            kind=kind,
            tau=0.02,
            border_correction=True,
            t_stop=trains.t_stop,
        )
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=chunk)


@pytest.mark.parametrize("batch_spikes", [1, 40, 1 << 16])
@pytest.mark.parametrize("chunk", [1, 41, 160, 1000])
def test_kernel_events_batches_equal_whole(trains, dense, chunk, batch_spikes):
    """Events are binned a few chunks at a time; batch edges change nothing."""
    t, amplitude = dense
    expected = rates_kernel(t, amplitude, kind="alpha", tau=0.02)
    _, _, _, got = stream(
        trains,
        chunk,
        method="kernel",
        kind="alpha",
        tau=0.02,
        t_stop=trains.t_stop,
        batch_spikes=batch_spikes,
    )
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    assert np.array_equal(got == 0, expected == 0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [1, 13, 160, 161, 5000])
def test_kernel_dense_stream_equals_whole(dense, kind, chunk):
    t, amplitude = dense
    expected = rates_kernel(t, amplitude, kind=kind, tau=0.04)
    source = DenseSpikes(
        t=t, spikes=amplitude, unit_ids=np.arange(5), values="amplitude", source="d"
    )
    _, _, t_out, got = stream(source, chunk, method="kernel", kind=kind, tau=0.04)
    np.testing.assert_array_equal(t_out, t)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "midpoint, interp",
    [(False, "zero"), (True, "zero"), (False, "linear"), (True, "linear"),
     (False, "nearest"), (False, "cubic")],
)  # fmt: skip
@pytest.mark.parametrize("chunk", [1, 7, 100, 643, 1000])
def test_isi_stream_equals_whole(trains, dense, midpoint, interp, chunk):
    t, amplitude = dense
    expected = rates_isi(t, amplitude, midpoint=midpoint, interp=interp)
    source = DenseSpikes(
        t=t, spikes=amplitude, unit_ids=np.arange(5), values="amplitude", source="d"
    )
    for src in (trains, source):
        # The binned semantics (exact spike times are tested on their own).
        exact = {"exact": False} if src is trains else {}
        _, _, t_out, got = stream(
            src, chunk, method="isi", midpoint=midpoint, interp=interp,
            t_stop=float(t[-1]), **exact,
        )  # fmt: skip
        np.testing.assert_allclose(t_out, t, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def read_back(path, fmt):
    if fmt == "npz":
        with np.load(path) as f:
            return f["t"], f["rates"], f["unit_ids"], {}
    if fmt == "hdf5":
        with h5py.File(path, "r") as f:
            return f["t"][:], f["rates"][:], f["unit_ids"][:], dict(f["rates"].attrs)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    data = np.array(rows[1:], dtype=np.float64)
    return data[:, 0], data[:, 1:], np.array(rows[0][1:]).astype(int), {}


@pytest.mark.parametrize("fmt, ext", [("npz", "npz"), ("hdf5", "h5"), ("csv", "csv")])
@pytest.mark.parametrize("method", ["kernel", "isi"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_real_writers(tmp_path, trains, dense, fmt, ext, method, dtype):
    t, amplitude = dense
    if method == "kernel":
        expected = rates_kernel(t, amplitude, kind="alpha", tau=0.01)
    else:
        expected = rates_isi(t, amplitude, interp="linear")
    path = tmp_path / f"rates.{ext}"
    factory = functools.partial(_open_writer, str(path), fmt, dtype)
    estimate_rates(
        trains, factory, method=method, kind="alpha", tau=0.01, interp="linear",
        dt=DT, t_start=0.0, t_stop=trains.t_stop, chunk_duration=0.037, dtype=dtype,
        exact=False,
    )  # fmt: skip
    t_out, rates, unit_ids, attrs = read_back(path, fmt)
    np.testing.assert_array_equal(unit_ids, trains.unit_ids)
    np.testing.assert_allclose(t_out, t, rtol=1e-12)
    if dtype == np.float32:
        np.testing.assert_allclose(rates, expected, rtol=1e-6, atol=1e-4)
        if fmt != "csv":
            assert rates.dtype == np.float32
    else:
        np.testing.assert_allclose(rates, expected, rtol=RTOL, atol=ATOL)
    if fmt == "hdf5":
        assert attrs["estimator"] == method
        assert attrs["units"] == "Hz"
        assert math.isclose(attrs["dt"], DT)
        assert attrs["source"] == "test"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def _open_writer(path, fmt, dtype, n_rows, unit_ids, attrs):
    return open_matrix_writer(
        path, fmt, n_rows=n_rows, unit_ids=unit_ids, dtype=dtype, attrs=attrs
    )


def test_lazy_hdf5_dense_source(tmp_path, dense):
    """A dense HDF5 dataset is read by row blocks, never whole."""
    t, amplitude = dense
    path = tmp_path / "dense.h5"
    with h5py.File(path, "w") as f:
        f["t"] = t
        f.create_dataset("spikes", data=amplitude, chunks=(32, 5))
    reads = []

    class Spy:
        def __init__(self, dataset):
            self.dataset = dataset
            self.shape = dataset.shape
            self.dtype = dataset.dtype

        def __len__(self):
            return self.shape[0]

        def __getitem__(self, index):
            part = self.dataset[index]
            reads.append(part.shape[0])
            return part

    with h5py.File(path, "r") as f:
        source = DenseSpikes(
            t=f["t"][:],
            spikes=Spy(f["spikes"]),
            unit_ids=np.arange(5),
            values="amplitude",
            source=str(path),
        )
        for method in ("kernel", "isi"):
            reads.clear()
            _, _, _, got = stream(source, 50, method=method, kind="expon", tau=0.02)
            if method == "kernel":
                expected = rates_kernel(t, amplitude, kind="expon", tau=0.02)
            else:
                expected = rates_isi(t, amplitude)
            np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
            assert reads and max(reads) <= 50


def test_summary_window_and_outside(trains):
    factory, made = list_factory()
    summary = estimate_rates(
        trains, factory, method="kernel", dt=DT, t_start=0.1, t_stop=0.5
    )
    times = trains.spike_times
    n_inside = sum(int(np.sum((s > 0.1 + 1e-12) & (s <= 0.5))) for s in times)
    n_total = sum(len(s) for s in times)
    assert summary == {
        "n_steps": 400,
        "n_units": 5,
        "dt": DT,
        "t_start": 0.1,
        "t_stop": pytest.approx(0.5),
        "n_outside": n_total - n_inside,
        "notes": [],
    }
    (writer,) = made
    assert writer.n_rows == 400
    np.testing.assert_array_equal(writer.unit_ids, [3, 5, 8, 13, 21])
    t, values = writer.result()
    np.testing.assert_allclose(t, 0.1 + DT * np.arange(1, 401), atol=1e-12)
    assert writer.attrs["estimator"] == "kernel"
    assert writer.attrs["kind"] == "gauss"
    assert writer.attrs["units"] == "Hz"


def test_dense_window_selects_rows(dense):
    """A window crops the output: its rows are the whole recording's."""
    t, amplitude = dense
    source = DenseSpikes(
        t=t, spikes=amplitude, unit_ids=np.arange(5), values="amplitude", source="d"
    )
    factory, made = list_factory()
    summary = estimate_rates(
        source, factory, method="kernel", tau=0.01, t_start=0.1, t_stop=0.5
    )
    expected = rates_kernel(t, amplitude, tau=0.01)[100:500]
    t_out, got = made[0].result()
    np.testing.assert_array_equal(t_out, t[100:500])
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    n_total = int(round(amplitude.sum() * DT))
    assert summary["n_outside"] == n_total - int(round(amplitude[100:500].sum() * DT))


def test_progress_adds_up(trains):
    done = []
    factory, _ = list_factory()
    summary = estimate_rates(
        trains, factory, dt=DT, chunk_duration=0.05, progress=done.append
    )
    assert sum(done) == summary["n_steps"]
    assert max(done) <= 50


def test_chunks_capped_for_many_units():
    """Many units shrink the chunk so one chunk stays within the value budget."""
    trains = SpikeTrains(
        spike_times=[np.array([0.01 * (j + 1)]) for j in range(100)],
        unit_ids=np.arange(100),
    )
    factory, made = list_factory()
    estimate_rates(
        trains, factory, method="isi", dt=DT, t_stop=1.0, max_chunk_values=1000
    )
    assert max(len(v) for v in made[0].values) <= 10


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"dt": None}, "dt"),
        ({"dt": -1.0}, "dt"),
        ({"method": "fft"}, "method"),
        ({"chunk_duration": 0.0}, "chunk_duration"),
        ({"dtype": np.int32}, "dtype"),
    ],
)
def test_bad_parameters(trains, kwargs, name):
    kwargs = {"dt": DT, **kwargs}
    factory, made = list_factory()
    with pytest.raises(ParameterError, match=name):
        estimate_rates(trains, factory, **kwargs)
    assert made == []  # nothing opened, so nothing to clean up


def test_dense_dt_must_agree(dense):
    t, amplitude = dense
    source = DenseSpikes(
        t=t, spikes=amplitude, unit_ids=np.arange(5), values="amplitude", source="d"
    )
    with pytest.raises(ParameterError, match="dt"):
        estimate_rates(source, list_factory()[0], dt=0.002)


@pytest.mark.parametrize("kind", KINDS)
def test_stream_matches_reference_module(trains, dense, kind):
    """Independent oracle: the reference implementation on the dense array."""
    nengo_extras_neurons = pytest.importorskip("nengo_extras.neurons")
    t, amplitude = dense
    expected = nengo_extras_neurons.rates_kernel(t, amplitude, kind=kind, tau=0.02)
    _, _, _, got = stream(
        trains, 97, method="kernel", kind=kind, tau=0.02, t_stop=trains.t_stop
    )
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-12 * expected.max())


def test_writer_error_reaches_the_caller(trains):
    class Failing(ListWriter):
        def append(self, t_chunk, values):
            if len(self.values) == 2:
                raise OSError("disk full")
            super().append(t_chunk, values)

    made = []

    def factory(n_rows, unit_ids, attrs):
        made.append(Failing(n_rows, unit_ids, attrs))
        return made[-1]

    with pytest.raises(OSError, match="disk full"):
        estimate_rates(trains, factory, dt=DT, chunk_duration=0.01)
    assert made[0].closed and len(made[0].values) == 2


def test_failure_mid_stream_leaves_no_output(tmp_path, dense):
    """A read error halfway through: the writer discards its temporary file."""
    t, amplitude = dense

    class BadDisk:
        shape = amplitude.shape
        dtype = amplitude.dtype
        armed = False

        def __len__(self):
            return self.shape[0]

        def __getitem__(self, rows):
            if self.armed and rows.start >= 300:
                raise OSError("read error")
            return amplitude[rows]

    spikes = BadDisk()
    source = DenseSpikes(t=t, spikes=spikes, unit_ids=np.arange(5), values="amplitude")
    spikes.armed = True
    path = tmp_path / "rates.h5"
    factory = functools.partial(_open_writer, str(path), "hdf5", np.float64)
    with pytest.raises(OSError, match="read error"):
        estimate_rates(source, factory, chunk_duration=0.1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("method, t_stop", [("kernel", None), ("isi", 0.001)])
def test_too_few_steps(method, t_stop):
    empty = SpikeTrains(spike_times=[np.empty(0)], unit_ids=[1])
    factory, made = list_factory()
    with pytest.raises(ParameterError, match="t_stop"):
        estimate_rates(empty, factory, method=method, dt=DT, t_stop=t_stop)
    assert made == []


def test_no_spikes_with_a_window_gives_zeros():
    empty = SpikeTrains(spike_times=[np.empty(0), np.empty(0)], unit_ids=[1, 2])
    for method in ("kernel", "isi"):
        factory, made = list_factory()
        estimate_rates(empty, factory, method=method, dt=DT, t_stop=0.05)
        t, values = made[0].result()
        assert values.shape == (50, 2) and not values.any()
