"""The rate driver: one chunk iterator for every source and estimator.

Oracles: the reference functions on the dense grid (``rates_kernel`` /
``rates_isi`` on ``events_to_dense``), and the reference's own
``nengo_extras`` functions on arrays.
"""

from __future__ import annotations

import numpy as np
import pytest
from rates_helpers import DT, assert_matches, grid, reference

import spikerates
from spikerates.driver import (
    RateResult,
    compute_rates,
    iter_rates,
    plan_rates,
)
from spikerates.errors import ParameterError, ResourceLimitError
from spikerates.estimators import rates_isi, rates_kernel
from spikerates.spiketrains import DenseSpikes, SpikeTrains, events_to_dense

KINDS = ("gauss", "expon", "alpha", "expogauss")


@pytest.fixture(scope="module")
def trains() -> SpikeTrains:
    rng = np.random.default_rng(3)
    units = [np.sort(rng.uniform(0.0, 1.2, n)) for n in (30, 0, 1, 80)]
    return SpikeTrains(units, unit_ids=[4, 9, 2, 7], t_start=0.0, t_stop=1.2)


def dense_of(trains: SpikeTrains, dt: float = DT):
    g = trains.grid(dt)
    return g.times(), events_to_dense(trains, g) / dt


@pytest.mark.parametrize("kind", KINDS)
def test_compute_rates_from_trains_equals_reference_on_the_grid(trains, kind):
    result = compute_rates(trains, "kernel", dt=DT, kind=kind, tau=0.02)
    t, amplitude = dense_of(trains)
    assert isinstance(result, RateResult)
    np.testing.assert_allclose(result.t, t, rtol=0, atol=1e-12)
    assert_matches(result.rates, reference.rates_kernel(t, amplitude, kind, 0.02))
    assert result.unit_ids.tolist() == [4, 9, 2, 7]
    assert result.attrs["estimator"] == "kernel" and result.attrs["kind"] == kind
    assert result.dt == DT and result.n_outside == 0


@pytest.mark.parametrize("interp", ["zero", "linear", "cubic"])
def test_compute_rates_isi_from_trains_equals_rates_isi(trains, interp):
    result = compute_rates(trains, "isi", dt=DT, interp=interp)
    t, amplitude = dense_of(trains)
    np.testing.assert_array_equal(result.rates, rates_isi(t, amplitude, interp=interp))


def test_package_exports_compute_rates(trains):
    assert spikerates.compute_rates is compute_rates


@pytest.mark.parametrize("method", ["kernel", "isi"])
@pytest.mark.parametrize("chunk_steps", [1, 17, 500, 5000])
def test_chunks_cover_the_grid_in_order(trains, method, chunk_steps):
    whole = compute_rates(trains, method, dt=DT).rates
    t_parts, r_parts = [], []
    for t_chunk, rates_chunk in iter_rates(
        trains, method, dt=DT, chunk_steps=chunk_steps
    ):
        assert rates_chunk.shape == (t_chunk.size, 4) and t_chunk.size >= 1
        t_parts.append(t_chunk)
        r_parts.append(np.array(rates_chunk))
    t = np.concatenate(t_parts)
    assert np.all(np.diff(t) > 0) and t.size == whole.shape[0]
    np.testing.assert_allclose(np.concatenate(r_parts), whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["kernel", "isi"])
def test_every_source_gives_the_same_rates(trains, method):
    t, amplitude = dense_of(trains)
    dense = DenseSpikes(t, amplitude, unit_ids=trains.unit_ids, values="amplitude")
    from_trains = compute_rates(trains, method, dt=DT).rates
    from_dense = compute_rates(dense, method).rates
    from_arrays = compute_rates((t, amplitude), method).rates
    np.testing.assert_allclose(from_dense, from_trains, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(from_arrays, from_trains, rtol=1e-12, atol=1e-12)


def test_out_buffer_is_filled_in_place(trains):
    plan = plan_rates(trains, "kernel", dt=DT, chunk_steps=100)
    out = np.full((plan.n_steps, plan.n_units), np.nan)
    views = [rates for _, rates in plan.chunks(out=out)]
    assert all(np.shares_memory(v, out) for v in views)
    np.testing.assert_array_equal(out, compute_rates(trains, dt=DT).rates)


def test_plan_knows_the_output_before_computing(trains):
    plan = plan_rates(trains, "kernel", dt=0.01, t_start=0.2, t_stop=1.0)
    assert (plan.n_steps, plan.n_units) == (80, 4)
    assert plan.output_bytes() == 80 * 4 * 8
    assert plan.output_bytes(np.float32) == 80 * 4 * 4
    assert plan.attrs["t_start"] == 0.2 and plan.attrs["units"] == "Hz"


def test_progress_counts_input_steps(trains):
    done = []
    plan = plan_rates(trains, "kernel", dt=DT, chunk_steps=64)
    for _ in plan.chunks(progress=done.append):
        pass
    assert sum(done) == plan.n_steps and max(done) <= 64


def test_output_size_limit_is_checked_before_anything_runs(trains):
    with pytest.raises(ResourceLimitError, match=r"--max-output-size") as info:
        plan_rates(trains, "kernel", dt=1e-5, max_output_bytes=1 << 20)
    message = str(info.value)
    assert "3.7 MiB" in message and "120000 steps x 4 units x 8 bytes" in message
    assert "float32" in message and "--dt" in message
    # float32 halves the size; no limit lifts it.
    plan_rates(trains, "kernel", dt=1e-5, max_output_bytes=2 << 20, dtype="float32")
    plan_rates(trains, "kernel", dt=1e-5, max_output_bytes=None)


@pytest.mark.parametrize(
    "source, kwargs, error, match",
    [
        ("trains", {"method": "box"}, ParameterError, "method"),
        ("trains", {}, ParameterError, "bin width"),
        ("trains", {"dt": -1}, ParameterError, "dt"),
        ("trains", {"dt": DT, "tau": 0}, ParameterError, "tau"),
        ("trains", {"dt": DT, "kind": "box"}, ParameterError, "kind"),
        ("trains", {"dt": DT, "causal": True}, ParameterError, "causal"),
        ("trains", {"dt": DT, "chunk_steps": 0}, ParameterError, "chunk_steps"),
        ("trains", {"dt": DT, "chunk_duration": 0}, ParameterError, "chunk_durat"),
        ("trains", {"dt": DT, "dtype": "int8"}, ParameterError, "dtype"),
        (
            "trains",
            {"dt": DT, "interp": "x", "method": "isi"},
            ParameterError,
            "interp",
        ),
        ("arrays", {"dt": DT}, ParameterError, "carry their own grid"),
        ("list", {}, TypeError, "SpikeTrains, a DenseSpikes"),
    ],
)
def test_plan_rejects(trains, source, kwargs, error, match):
    sources = {
        "trains": trains,
        "arrays": (grid(10), np.zeros((10, 2))),
        "list": [np.zeros(3)],
    }
    kwargs = dict(kwargs)
    method = kwargs.pop("method", "kernel")
    with pytest.raises(error, match=match):
        plan_rates(sources[source], method, **kwargs)


def test_dense_window_and_dt_check():
    t = grid(100)
    spikes = np.zeros((100, 2))
    spikes[[10, 50, 90], 0] = 1 / DT
    dense = DenseSpikes(t, spikes, values="amplitude")
    plan = plan_rates(dense, "kernel", t_start=0.02, t_stop=0.08)
    assert plan.n_steps == 60 and plan.n_outside == 2
    np.testing.assert_allclose(plan.times()[[0, -1]], [0.021, 0.08])
    with pytest.raises(ParameterError, match="does not match"):
        plan_rates(dense, "kernel", dt=0.002)
    with pytest.raises(ParameterError, match="holds no time step"):
        plan_rates(dense, "kernel", t_start=0.5, t_stop=0.6)


def test_reference_functions_drain_the_driver():
    t = grid(300)
    rng = np.random.default_rng(1)
    spikes = (rng.random((300, 3)) < 0.05) / DT
    np.testing.assert_array_equal(
        rates_kernel(t, spikes, "alpha", 0.01),
        compute_rates((t, spikes), kind="alpha", tau=0.01).rates,
    )
