"""Kernel rates: the sampled kernels, KernelFilter streaming, parity with the
reference, normalisation, border correction and causal kernels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rates_helpers import (
    DT,
    assert_matches,
    grid,
    mixed_spikes_data,
    reference,
    spike_matrix,
)

from spikerates.errors import ParameterError
from spikerates.estimators import rates_kernel
from spikerates.kernels import KERNEL_KINDS, KernelFilter


@pytest.fixture(scope="module")
def mixed_spikes():
    """Units with 0, 1, 2, many (Poisson) and dense spikes; none on the edges."""
    t, spikes = mixed_spikes_data()
    return t, spikes.copy()


TAUS = [0.003, 0.0125, 0.04, 0.3]  # 3 to 300 steps at dt = 1 ms


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("kind", KERNEL_KINDS)
def test_rates_kernel_matches_reference(mixed_spikes, kind, tau, dtype):
    t, spikes = mixed_spikes
    spikes = spikes.astype(dtype)
    expected = reference.rates_kernel(t, spikes, kind=kind, tau=tau)
    assert_matches(rates_kernel(t, spikes, kind=kind, tau=tau), expected)


def test_rates_kernel_small_recording_and_one_unit():
    t = grid(5)
    spikes = np.zeros(5)
    spikes[2] = 1 / DT
    for kind in KERNEL_KINDS:
        ours = rates_kernel(t, spikes, kind=kind, tau=0.04)
        expected = reference.rates_kernel(t, spikes[:, None], kind=kind, tau=0.04)
        assert ours.shape == (5, 1)
        assert_matches(ours, expected)


def test_kernel_input_dtypes_give_float64():
    t = grid(300)
    counts = np.zeros((300, 2), dtype=np.int32)
    counts[[10, 100], 0] = 1
    counts[150, 1] = 2
    from_counts = rates_kernel(t, counts, "expon", 0.01)
    from_amplitude = rates_kernel(t, counts / DT, "expon", 0.01)
    assert from_counts.dtype == np.float64
    np.testing.assert_allclose(from_counts / DT, from_amplitude, rtol=1e-12)


@pytest.mark.parametrize("kind", KERNEL_KINDS)
@pytest.mark.parametrize("tau", [0.002, 0.0035, 0.04])
def test_normalize_gives_unit_mass(kind, tau):
    n_steps = 4000
    t = grid(n_steps)
    spike_steps = [800, 1500, 1503, 2900]
    spikes = spike_matrix([spike_steps, []], n_steps)
    rates = rates_kernel(t, spikes, kind, tau, normalize=True)
    np.testing.assert_allclose(rates[:, 0].sum() * DT, len(spike_steps), rtol=1e-12)
    assert np.all(rates[:, 1] == 0)
    filt = KernelFilter(kind, tau, DT, 1, normalize=True)
    for kern in filt.kernels:
        assert abs(kern.sum() - 1) < 1e-14


def test_default_kernels_keep_the_reference_mass():
    # The reference samples continuous kernels: a few steps wide, their mass
    # is visibly not 1; this is the default, normalize=True corrects it.
    t = grid(1000)
    spikes = spike_matrix([[500]], 1000)
    mass = rates_kernel(t, spikes, "expon", 0.002).sum() * DT
    assert abs(mass - 1) > 0.05
    assert_matches(
        mass * np.ones(1),
        np.array([reference.rates_kernel(t, spikes, "expon", 0.002).sum() * DT]),
    )


@pytest.mark.parametrize(
    ("kind", "causal"),
    [
        ("gauss", False),
        ("expon", False),
        ("expon", True),
        ("alpha", False),
        ("alpha", True),
        ("expogauss", False),
    ],
)
@pytest.mark.parametrize("tau", [0.003, 0.05])
def test_border_correction_restores_a_constant_rate(kind, causal, tau):
    # A spike in every step is a constant rate of 1/dt; with unit-mass
    # kernels the corrected estimate is exactly that, borders included,
    # while the uncorrected one falls off within a kernel of each end.
    n_steps = 1500
    t = grid(n_steps)
    spikes = np.full((n_steps, 2), 1 / DT)
    options = dict(normalize=True, causal=causal)
    plain = rates_kernel(t, spikes, kind, tau, **options)
    corrected = rates_kernel(t, spikes, kind, tau, border_correction=True, **options)
    # Each unit's rates integrate to its spike count.
    np.testing.assert_allclose(corrected.sum(axis=0) * DT, n_steps, rtol=1e-9)
    if kind == "alpha" and causal:
        # A causal alpha kernel has a zero first tap: row 0 sees no mass at
        # all, and the last spike none inside the recording, so keeping the
        # count spreads that spike over the other rows, evenly.
        assert np.all(corrected[0] == 0)
        np.testing.assert_allclose(corrected[1:] * DT, n_steps / (n_steps - 1))
        assert np.min(plain[1:] * DT) < 0.9
        return
    np.testing.assert_allclose(corrected * DT, 1.0, rtol=1e-12)
    assert np.min(plain * DT) < 0.9
    # Rows whose kernel lies inside the recording are left exactly alone.
    inside = np.abs(plain * DT - 1) <= 1e-12
    assert inside.any()
    np.testing.assert_array_equal(corrected[inside], plain[inside])


@pytest.mark.parametrize("kind", KERNEL_KINDS)
@pytest.mark.parametrize("chunk_steps", [1, 7, 64, 999])
def test_border_correction_streams_like_the_whole_array(kind, chunk_steps):
    n_steps = 1000
    t = grid(n_steps)
    rng = np.random.default_rng(11)
    spikes = (rng.random((n_steps, 3)) < 0.05) / DT
    whole = rates_kernel(t, spikes, kind, 0.02, border_correction=True)
    chunked = rates_kernel(
        t, spikes, kind, 0.02, border_correction=True, chunk_steps=chunk_steps
    )
    np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-12)
    # Each unit integrates to its spike count; away from the ends the
    # correction is one factor per unit.
    counts = spikes.sum(axis=0) * DT
    np.testing.assert_allclose(whole.sum(axis=0) * DT, counts, rtol=1e-9)
    plain = rates_kernel(t, spikes, kind, 0.02)
    interior = slice(200, 800)
    ratio = whole[interior] / np.where(plain[interior] == 0, np.nan, plain[interior])
    factor = np.broadcast_to(np.nanmean(ratio, axis=0), ratio.shape)
    np.testing.assert_allclose(ratio, np.where(np.isnan(ratio), np.nan, factor))
    assert np.array_equal(whole[interior] == 0, plain[interior] == 0)


@pytest.mark.parametrize("kind", ["expon", "alpha"])
def test_causal_kernels_do_not_shift(kind):
    n_steps, tau, spike = 1000, 0.01, 400
    t = grid(n_steps)
    spikes = spike_matrix([[spike]], n_steps)
    causal = rates_kernel(t, spikes, kind, tau, causal=True)[:, 0]
    shifted = rates_kernel(t, spikes, kind, tau)[:, 0]
    delay = int(np.round(tau / DT))
    assert np.all(causal[:spike] == 0)
    if kind == "expon":
        assert causal[spike] == pytest.approx(1 / tau)
    np.testing.assert_allclose(causal[delay:], shifted[:-delay], rtol=1e-12, atol=0)


# --------------------------------------------------------- streaming kernels


def stream(filt: KernelFilter, x: np.ndarray, sizes) -> np.ndarray:
    parts, k0 = [], 0
    for size in sizes:
        out = filt.process(x[k0 : k0 + size])
        assert out.shape[1] == x.shape[1]
        parts.append(out)
        k0 += size
    assert k0 == x.shape[0]
    parts.append(filt.finish())
    return np.concatenate(parts)


def split(n_steps: int, size: int, with_empty: bool = False) -> list[int]:
    sizes = []
    while sum(sizes) < n_steps:
        sizes.append(min(size, n_steps - sum(sizes)))
        if with_empty:
            sizes.append(0)
    return sizes


@pytest.mark.parametrize("kind", KERNEL_KINDS)
@pytest.mark.parametrize("tau", [0.001, 0.004, 0.05])
def test_streaming_equals_whole_array(kind, tau):
    rng = np.random.default_rng(7)
    n_steps, n_units = 1500, 5
    t = grid(n_steps)
    spikes = (rng.random((n_steps, n_units)) < 0.03) / DT
    spikes[:, 4] = 0  # an empty unit
    n_taps = max(k.size for k in KernelFilter(kind, tau, DT, 1).kernels)
    for size in sorted({1, max(n_taps - 1, 1), n_taps, n_taps + 1, 97, 700}):
        # Spikes on every chunk edge.
        streamed_spikes = spikes.copy()
        streamed_spikes[size - 1 :: size, 0] = 1 / DT
        streamed_spikes[size::size, 1] = 1 / DT
        whole = rates_kernel(t, streamed_spikes, kind, tau, chunk_steps=n_steps)
        filt = KernelFilter(kind, tau, DT, n_units)
        streamed = stream(filt, streamed_spikes, split(n_steps, size, with_empty=True))
        np.testing.assert_allclose(streamed, whole, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(
            rates_kernel(t, streamed_spikes, kind, tau, chunk_steps=size),
            whole,
            rtol=1e-9,
            atol=1e-12,
        )


def test_streaming_reports_lag_and_row_counts():
    filt = KernelFilter("gauss", 0.01, DT, 3)  # std 5 steps: 40 taps, delay 20
    assert filt.delay == 20 and filt.kernels[0].size == 40
    assert filt.rows_ready(4) == 0
    assert filt.process(np.zeros((4, 3))).shape == (0, 3)
    assert filt.rows_ready(30) == 14
    assert filt.process(np.zeros((30, 3))).shape == (14, 3)
    assert filt.process(np.zeros((0, 3))).shape == (0, 3)
    assert filt.finish().shape == (20, 3)
    short = KernelFilter("expogauss", 0.04, DT, 2)
    short.process(np.ones((3, 2)) / DT)
    assert short.finish().shape == (3, 2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KERNEL_KINDS),
    tau_steps=st.floats(0.3, 60),
    method=st.sampled_from(["auto", "sparse", "direct", "fft"]),
    n_steps=st.integers(1, 400),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_streaming_property(kind, tau_steps, method, n_steps, seed, data):
    rng = np.random.default_rng(seed)
    density = data.draw(st.sampled_from([0.0, 0.01, 0.2, 1.0]))
    x = (rng.random((n_steps, 3)) < density) * rng.integers(1, 3, (n_steps, 3)) / DT
    sizes = data.draw(st.lists(st.integers(0, 150), max_size=12))
    sizes = [s for s in sizes if s] and sizes
    used = []
    for s in sizes:
        s = min(s, n_steps - sum(used))
        used.append(s)
    used.append(n_steps - sum(used))
    tau = tau_steps * DT
    filt = KernelFilter(kind, tau, DT, 3, method=method)
    streamed = stream(filt, x, used)
    t = grid(max(n_steps, 2))
    if n_steps >= 2:
        expected = reference.rates_kernel(t, x, kind=kind, tau=tau)
        assert_matches(streamed, expected)
    whole = KernelFilter(kind, tau, DT, 3, method="direct")
    np.testing.assert_allclose(
        streamed, stream(whole, x, [n_steps]), rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize(
    "args, match",
    [
        ((5, [5], [0], 1.0), "rows must lie"),
        ((5, [-1], [0], 1.0), "rows must lie"),
        ((5, [1], [2], 1.0), "units must lie"),
        ((5, [1, 2], [0], 1.0), "one length"),
        ((5, [1.0], [0], 1.0), "integer"),
        ((5, [1], [0], np.nan), "NaN or infinite"),
        ((5, [1, 2], [0, 1], [1.0, np.inf]), "NaN or infinite"),
        ((-1, [], [], 1.0), "n_rows"),
    ],
)
def test_process_spikes_rejects(args, match):
    filt = KernelFilter("gauss", 0.01, DT, 2)
    with pytest.raises(ValueError, match=match):
        filt.process_spikes(*args)
    # Nothing was consumed: the filter still works.
    assert filt.process_spikes(5, [1], [0], 1 / DT).shape == (0, 2)
    filt.finish()
    with pytest.raises(RuntimeError, match="after finish"):
        filt.process_spikes(1, [], [], 1.0)


BAD_T = grid(50).copy()
BAD_T[20] += 1e-5


@pytest.mark.parametrize(
    ("t", "spikes", "kwargs", "error", "match"),
    [
        (BAD_T, np.zeros((50, 2)), {}, ValueError, "uniform"),
        (np.array([0.001]), np.zeros((1, 2)), {}, ValueError, "at least 2"),
        (grid(50)[::-1], np.zeros((50, 2)), {}, ValueError, "must increase"),
        (np.ones((50, 2)), np.zeros((50, 2)), {}, ValueError, "1-D"),
        (
            np.where(np.arange(50) == 3, np.nan, grid(50)),
            np.zeros((50, 2)),
            {},
            ValueError,
            "NaN",
        ),
        (grid(50), np.zeros((49, 2)), {}, ValueError, "time steps"),
        (grid(50), np.zeros((50, 2, 2)), {}, ValueError, "dimensions"),
        (grid(50), np.full((50, 2), np.nan), {}, ValueError, "NaN or infinite"),
        (
            grid(50),
            np.where(np.eye(50, 2) > 0, np.inf, 0),
            {},
            ValueError,
            "NaN or infinite",
        ),
        (grid(50), np.zeros((50, 2)), {"tau": 0}, ParameterError, "tau"),
        (grid(50), np.zeros((50, 2)), {"tau": -0.01}, ParameterError, "tau"),
        (grid(50), np.zeros((50, 2)), {"tau": np.nan}, ParameterError, "tau"),
        (
            grid(50),
            np.zeros((50, 2)),
            {"kind": "box"},
            ParameterError,
            "unknown kernel",
        ),
        (grid(50), np.zeros((50, 2)), {"causal": True}, ParameterError, "causal"),
        (
            grid(50),
            np.zeros((50, 2)),
            {"kind": "expogauss", "causal": True},
            ParameterError,
            "causal",
        ),
        (
            grid(50),
            np.zeros((50, 2)),
            {"chunk_steps": 0},
            ParameterError,
            "chunk_steps",
        ),
        (grid(50), np.zeros((50, 2)), {"method": "magic"}, ParameterError, "method"),
        (
            grid(50),
            np.zeros((50, 2)),
            {"kind": "alpha", "tau": 1e-4, "normalize": True},
            ParameterError,
            "too short",
        ),
    ],
)
def test_rates_kernel_rejects(t, spikes, kwargs, error, match):
    with pytest.raises(error, match=match):
        rates_kernel(t, spikes, **kwargs)


@pytest.mark.parametrize("method", ["auto", "sparse", "direct", "fft"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_filter_rejects_non_finite_values_in_any_chunk(method, bad):
    filt = KernelFilter("expogauss", 0.02, DT, 3, method=method)
    filt.process(np.ones((100, 3)) / DT)
    chunk = np.zeros((200, 3))
    chunk[150, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        filt.process(chunk)


def test_filter_cannot_run_after_finish():
    filt = KernelFilter("expon", 0.01, DT, 1)
    filt.finish()
    with pytest.raises(RuntimeError, match="after finish"):
        filt.process(np.zeros((2, 1)))
