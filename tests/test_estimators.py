"""Rate estimators: parity with the reference, streaming, edge cases, errors.

The reference implementation (``nengo_extras.neurons``) is the oracle for
every case it handles; where it raises, expectations are computed by hand.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import scipy.interpolate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikerates.errors import ParameterError
from spikerates.estimators import (
    ISI_INTERP_KINDS,
    KERNEL_KINDS,
    IsiRates,
    KernelFilter,
    _grid_positions,
    rates_isi,
    rates_kernel,
    spikes2events,
    validate_grid,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from nengo_extras import neurons as reference

DT = 0.001


def assert_matches(ours: np.ndarray, expected: np.ndarray) -> None:
    """1e-9 relative where the expected value is non-zero, 1e-12 absolute at 0."""
    ours, expected = np.asarray(ours), np.asarray(expected)
    assert ours.shape == expected.shape
    assert ours.dtype == np.float64
    zero = expected == 0
    assert np.all(np.abs(ours[zero]) <= 1e-12), np.abs(ours[zero]).max()
    rel = np.abs(ours[~zero] - expected[~zero]) / np.abs(expected[~zero])
    assert rel.size == 0 or rel.max() <= 1e-9, rel.max()


def grid(n_steps: int, dt: float = DT) -> np.ndarray:
    return dt * np.arange(1, n_steps + 1)


def spike_matrix(steps_per_unit: list, n_steps: int, dt: float = DT) -> np.ndarray:
    spikes = np.zeros((n_steps, len(steps_per_unit)))
    for unit, steps in enumerate(steps_per_unit):
        spikes[list(steps), unit] = 1 / dt
    return spikes


@pytest.fixture(scope="module")
def mixed_spikes():
    """Units with 0, 1, 2, many (Poisson) and dense spikes; none on the edges."""
    rng = np.random.default_rng(42)
    n_steps = 2000
    spikes = np.zeros((n_steps, 7))
    spikes[700, 1] = 1 / DT
    spikes[[300, 1400], 2] = 1 / DT
    spikes[:, 3] = rng.random(n_steps) < 0.02
    spikes[:, 4] = rng.random(n_steps) < 0.3
    spikes[:, 5] = rng.random(n_steps) < 0.005
    spikes[[3, 4, 5, 1990], 6] = 1
    spikes[:, 3:] /= DT
    spikes[[0, -1]] = 0
    return grid(n_steps), spikes


# ------------------------------------------------------------------- kernels

TAUS = [0.003, 0.0125, 0.04, 0.3]  # 3 to 300 steps at dt = 1 ms


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("kind", KERNEL_KINDS)
def test_rates_kernel_matches_reference(mixed_spikes, kind, tau, dtype):
    t, spikes = mixed_spikes
    spikes = spikes.astype(dtype)
    expected = reference.rates_kernel(t, spikes, kind=kind, tau=tau)
    assert_matches(rates_kernel(t, spikes, kind=kind, tau=tau), expected)


@pytest.mark.parametrize("method", ["sparse", "direct", "fft"])
@pytest.mark.parametrize(("kind", "tau"), itertools.product(KERNEL_KINDS, [0.002, 0.3]))
def test_every_method_matches_reference(mixed_spikes, kind, tau, method):
    t, spikes = mixed_spikes
    # Spikes on the first and last steps too: the kernel's borders.
    spikes = spikes.copy()
    spikes[[0, -1], 4] = 1 / DT
    expected = reference.rates_kernel(t, spikes, kind=kind, tau=tau)
    ours = rates_kernel(t, spikes, kind=kind, tau=tau, method=method, chunk_steps=700)
    assert_matches(ours, expected)


@pytest.mark.parametrize("method", ["sparse", "direct", "fft"])
def test_methods_agree_on_dense_signed_input(method):
    # Second stages of expogauss see dense input; make sure no method relies
    # on positive values or on sparsity.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3000, 40)) * (rng.random((3000, 40)) < 0.7)
    x[500:2500, :5] = 0  # silent stretches must give exact zeros
    filt = KernelFilter("gauss", 0.2, DT, 40, method=method)
    ours = np.concatenate([filt.process(x), filt.finish()])
    kern, delay = filt.kernels[0], filt.delay
    expected = np.stack(
        [np.convolve(kern, col)[delay : delay + x.shape[0]] for col in x.T], axis=1
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)
    silent = expected == 0
    assert silent.sum() > 0 and np.all(ours[silent] == 0)


@pytest.mark.parametrize("kind", KERNEL_KINDS)
def test_fft_keeps_relative_precision_over_a_large_dynamic_range(kind):
    # FFT round-off scales with the largest values in a block; smaller
    # values must still agree to 1e-9 relative (they are recomputed).
    rng = np.random.default_rng(11)
    n_steps = 4000
    spikes = (rng.random((n_steps, 40)) < 0.3) / DT
    spikes[1000:1040, :20] *= 1e6
    spikes[:, 30:] *= 1e-6
    spikes[2000:3000] = 0
    t = grid(n_steps)
    expected = reference.rates_kernel(t, spikes, kind=kind, tau=0.25)
    assert_matches(rates_kernel(t, spikes, kind, 0.25, method="fft"), expected)


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
    # A causal alpha kernel has a zero first tap: row 0 sees no mass at all.
    rows = slice(1, None) if (kind == "alpha" and causal) else slice(None)
    np.testing.assert_allclose(corrected[rows] * DT, 1.0, rtol=1e-12)
    assert np.min(plain[rows] * DT) < 0.9
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
    # The correction only raises rates near the ends, never lowers them.
    plain = rates_kernel(t, spikes, kind, 0.02)
    assert np.all(whole >= plain)


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


def spike_entries(n_steps, n_units, n_spikes, seed):
    """Random spikes as entries (rows, units), with repeated cells, and the
    dense amplitude chunk they stand for; the last unit stays empty."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n_steps, n_spikes)
    units = rng.integers(0, n_units - 1, n_spikes)
    rows[:10], units[:10] = rows[10:20], units[10:20]
    dense = np.zeros((n_steps, n_units))
    np.add.at(dense, (rows, units), 1 / DT)
    return rows, units, dense


def ordered(rows, units, order, rng):
    """The entries by unit then row, by row then unit, or shuffled."""
    if order == "unit":
        index = np.lexsort((rows, units))
    elif order == "row":
        index = np.lexsort((units, rows))
    else:
        index = rng.permutation(rows.size)
    return rows[index], units[index]


@pytest.mark.parametrize("order", ["unit", "row", "shuffled"])
@pytest.mark.parametrize("method", ["auto", "sparse", "direct", "fft"])
@pytest.mark.parametrize("kind", KERNEL_KINDS)
def test_spike_entries_equal_dense_chunks(kind, method, order):
    n_steps, n_units = 900, 4
    rows, units, dense = spike_entries(n_steps, n_units, 300, seed=5)
    rng = np.random.default_rng(6)
    sizes = [1, 37, 0, 200, 62, 600]
    by_rows = KernelFilter(kind, 0.01, DT, n_units, method=method)
    by_spikes = KernelFilter(kind, 0.01, DT, n_units, method=method)
    mixed = KernelFilter(kind, 0.01, DT, n_units, method=method)
    parts: dict[str, list] = {"rows": [], "spikes": [], "mixed": []}
    k0 = 0
    for i, size in enumerate(sizes):
        chunk = dense[k0 : k0 + size]
        inside = (rows >= k0) & (rows < k0 + size)
        r, u = ordered(rows[inside] - k0, units[inside], order, rng)
        parts["rows"].append(by_rows.process(chunk))
        parts["spikes"].append(by_spikes.process_spikes(size, r, u, 1 / DT))
        if i % 2:
            parts["mixed"].append(mixed.process(chunk))
        else:
            parts["mixed"].append(mixed.process_spikes(size, r, u, 1 / DT))
        k0 += size
    for name, filt in (("rows", by_rows), ("spikes", by_spikes), ("mixed", mixed)):
        parts[name].append(filt.finish())
    whole = {name: np.concatenate(p) for name, p in parts.items()}
    expected = reference.rates_kernel(grid(n_steps), dense, kind=kind, tau=0.01)
    for name in ("spikes", "mixed"):
        assert_matches(whole[name], expected)
        np.testing.assert_allclose(whole[name], whole["rows"], rtol=1e-12, atol=0)
    assert not whole["spikes"][:, -1].any()


@pytest.mark.parametrize("kind", KERNEL_KINDS)
def test_sparse_method_in_parts_equals_whole(monkeypatch, kind):
    """Long chunks are computed in parts (and pieces of the kernel in groups);
    the parts give the same sums, for spikes in any order."""
    import spikerates.estimators as estimators

    n_steps, n_units = 700, 5
    rows, units, dense = spike_entries(n_steps, n_units, 120, seed=9)
    order = np.lexsort((rows, units))  # windows not in time order
    whole = KernelFilter(kind, 0.02, DT, n_units, method="sparse")
    expected = np.concatenate([whole.process(dense), whole.finish()])
    monkeypatch.setattr(estimators, "_SPARSE_OUT_VALUES", 64)
    monkeypatch.setattr(estimators, "_SPARSE_ENTRIES", 50)
    for feed in ("rows", "spikes"):
        filt = KernelFilter(kind, 0.02, DT, n_units, method="sparse")
        if feed == "rows":
            first = filt.process(dense)
        else:
            first = filt.process_spikes(n_steps, rows[order], units[order], 1 / DT)
        got = np.concatenate([first, filt.finish()])
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
        assert np.array_equal(got == 0, expected == 0)


@pytest.mark.parametrize("kind", ["gauss", "expogauss"])
def test_sparse_method_without_scipys_compiled_loop(monkeypatch, kind):
    """Where scipy lacks the loop the sparse method uses, its public product
    gives the same rates."""
    import spikerates.estimators as estimators

    n_steps, n_units = 700, 5
    rows, units, dense = spike_entries(n_steps, n_units, 120, seed=4)
    expected = rates_kernel(grid(n_steps), dense, kind, 0.02, method="direct")
    monkeypatch.setattr(estimators, "_COO_KERNEL", [None])
    monkeypatch.setattr(estimators, "_SPARSE_ENTRIES", 50)  # pieces in groups
    for chunk_steps in (n_steps, 97):
        got = rates_kernel(
            grid(n_steps), dense, kind, 0.02, method="sparse", chunk_steps=chunk_steps
        )
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
        assert np.array_equal(got == 0, expected == 0)


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


# ---------------------------------------------------------------- ISI rates


def reference_isi_per_unit(t, spikes, midpoint, interp):
    """The reference per unit; None for units where it raises."""
    columns = []
    for unit in range(spikes.shape[1]):
        try:
            columns.append(
                reference.rates_isi(
                    t, spikes[:, [unit]], midpoint=midpoint, interp=interp
                )[:, 0]
            )
        except ValueError:
            columns.append(None)
    return columns


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("midpoint", [False, True])
@pytest.mark.parametrize("interp", ISI_INTERP_KINDS)
def test_rates_isi_matches_reference(mixed_spikes, interp, midpoint, dtype):
    t, spikes = mixed_spikes
    spikes = spikes.astype(dtype)
    ours = rates_isi(t, spikes, midpoint=midpoint, interp=interp)
    assert ours.shape == spikes.shape and ours.dtype == np.float64
    expected = reference_isi_per_unit(t, spikes, midpoint, interp)
    compared = 0
    for unit, column in enumerate(expected):
        if column is not None:
            assert_matches(ours[:, unit], column)
            compared += 1
    # The reference handles units with enough spikes for any kind.
    assert compared >= 4
    if interp in ("zero", "linear", "nearest", "previous", "next", "slinear"):
        assert_matches(
            ours, reference.rates_isi(t, spikes, midpoint=midpoint, interp=interp)
        )


def test_rates_isi_many_units_and_spikes():
    rng = np.random.default_rng(5)
    n_steps = 5000
    t = grid(n_steps)
    spikes = (rng.random((n_steps, 60)) < rng.uniform(0, 0.1, 60)) / DT
    spikes[[0, -1]] = 0
    for interp, midpoint in itertools.product(["zero", "linear"], [False, True]):
        expected = reference.rates_isi(t, spikes, midpoint=midpoint, interp=interp)
        assert_matches(rates_isi(t, spikes, midpoint=midpoint, interp=interp), expected)


def test_spike_on_first_step_zero():
    # The reference raises (repeated interpolation point at t[0]); the rate
    # of the first ISI starts at t[0].
    t = grid(10)
    spikes = spike_matrix([[0, 3, 7]], 10)
    expected = np.array([1 / 3] * 3 + [1 / 4] * 4 + [0] * 3) / DT
    with pytest.raises(ValueError):
        reference.rates_isi(t, spikes, interp="zero")
    assert_matches(rates_isi(t, spikes)[:, 0], expected)


def test_spike_on_last_step_zero():
    t = grid(10)
    spikes = spike_matrix([[2, 5, 9]], 10)
    expected = np.array([0] * 2 + [1 / 3] * 3 + [1 / 4] * 4 + [0]) / DT
    with pytest.raises(ValueError):
        reference.rates_isi(t, spikes, interp="zero")
    assert_matches(rates_isi(t, spikes)[:, 0], expected)


def test_spike_on_first_and_last_step_linear():
    # The reference's linear interpolation (np.interp) accepts the repeated
    # points; the answer is the same as with them de-duplicated.
    t = grid(9)
    spikes = spike_matrix([[0, 2, 8]], 9)
    r1, r2 = 1 / (2 * DT), 1 / (6 * DT)
    expected = np.concatenate([[r1, (r1 + r2) / 2], r2 + (0 - r2) * np.arange(7) / 6])
    assert_matches(rates_isi(t, spikes, interp="linear")[:, 0], expected)
    assert_matches(
        rates_isi(t, spikes, interp="linear"),
        reference.rates_isi(t, spikes, interp="linear"),
    )


@pytest.mark.parametrize("midpoint", [False, True])
@pytest.mark.parametrize(
    "interp", ["linear", "nearest", "nearest-up", "previous", "next"]
)
def test_spikes_on_edges_match_reference_where_it_works(interp, midpoint):
    # These kinds accept the repeated points that edge spikes create.
    t = grid(50)
    spikes = spike_matrix([[0, 10, 30, 49], [0, 20], [7, 49], [0, 49]], 50)
    expected = reference.rates_isi(t, spikes, midpoint=midpoint, interp=interp)
    assert_matches(rates_isi(t, spikes, midpoint=midpoint, interp=interp), expected)


@pytest.mark.parametrize("midpoint", [False, True])
@pytest.mark.parametrize("interp", ISI_INTERP_KINDS)
def test_units_with_no_or_one_spike_are_zero(interp, midpoint):
    t = grid(50)
    spikes = spike_matrix([[], [20], [0], [49]], 50)
    rates = rates_isi(t, spikes, midpoint=midpoint, interp=interp)
    assert rates.shape == (50, 4)
    assert np.all(rates == 0)


def test_cubic_falls_back_to_quadratic_with_two_spikes_at_midpoints():
    # Midpoints of 2 spikes give 3 points: the reference's cubic raises; the
    # quadratic through (t0, 0), (m, 1/isi), (t_end, 0) is a parabola.
    t = grid(40)
    spikes = spike_matrix([[9, 20]], 40)
    with pytest.raises(ValueError):
        reference.rates_isi(t, spikes, midpoint=True, interp="cubic")
    t0, t_end, m, r = t[0], t[-1], 0.5 * (t[9] + t[20]), 1 / (t[20] - t[9])
    expected = r * (t - t0) * (t - t_end) / ((m - t0) * (m - t_end))
    np.testing.assert_allclose(
        rates_isi(t, spikes, midpoint=True, interp="cubic")[:, 0],
        expected,
        rtol=1e-9,
        atol=1e-9,
    )
    # quadratic with 1 spike at midpoints: 2 points, linear between zeros
    one = spike_matrix([[9]], 40)
    assert np.all(rates_isi(t, one, midpoint=True, interp="quadratic") == 0)


@pytest.mark.parametrize("interp", ["slinear", "quadratic", "cubic", "zero"])
def test_spline_with_spike_on_first_step_uses_unique_points(interp):
    t = grid(60)
    steps = [0, 10, 25, 41]
    spikes = spike_matrix([steps], 60)
    events = t[steps]
    # Hand-built points: the spike at t[0] replaces the 0 placed there.
    x = np.concatenate([events, [t[-1]]])
    y = np.concatenate([1 / np.diff(events), [0, 0]])
    expected = scipy.interpolate.interp1d(x, y, kind=interp)(t)
    assert_matches(rates_isi(t, spikes, interp=interp)[:, 0], expected)


def test_isi_streaming_pieces_equal_whole(mixed_spikes):
    t, spikes = mixed_spikes
    spikes = spikes.copy()
    spikes[[0, -1], 3] = 1 / DT
    events = spikes2events(t, spikes.T)
    for interp, midpoint in itertools.product(ISI_INTERP_KINDS, [False, True]):
        whole = rates_isi(t, spikes, midpoint=midpoint, interp=interp)
        isi = IsiRates(events, t[0], t[-1], midpoint=midpoint, interp=interp)
        edges = [0, 1, 300, 301, 999, 1400, 1999, 2000]  # 300: a spike's step
        pieces = [isi.evaluate(t[a:b]) for a, b in itertools.pairwise(edges)]
        assert_matches(np.concatenate(pieces), whole)
        assert isi.evaluate(t[5:5]).shape == (0, spikes.shape[1])


def test_isi_rates_accepts_unsorted_and_repeated_times():
    t = grid(100)
    isi = IsiRates([t[[50, 10, 30, 30]], []], t[0], t[-1])
    expected = rates_isi(t, spike_matrix([[10, 30, 50], []], 100))
    assert_matches(isi.evaluate(t), expected)


@settings(max_examples=40, deadline=None)
@given(
    interp=st.sampled_from(["zero", "linear", "nearest", "previous", "cubic"]),
    midpoint=st.booleans(),
    n_steps=st.integers(2, 120),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_isi_pieces_equal_whole_property(interp, midpoint, n_steps, seed, data):
    """Any split of the grid gives the whole-array rates, spikes anywhere."""
    rng = np.random.default_rng(seed)
    t = grid(n_steps)
    density = data.draw(st.sampled_from([0.0, 0.05, 0.5, 1.0]))
    spikes = (rng.random((n_steps, 4)) < density) / DT
    whole = rates_isi(t, spikes, midpoint=midpoint, interp=interp)
    events = spikes2events(t, spikes.T)
    isi = IsiRates(events, t[0], t[-1], midpoint=midpoint, interp=interp)
    cuts = data.draw(st.lists(st.integers(0, n_steps), max_size=6))
    edges = sorted({0, n_steps, *cuts})
    pieces = [isi.evaluate(t[a:b]) for a, b in itertools.pairwise(edges)]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)


def test_isi_state_is_two_values_per_point():
    """The estimator keeps a time and a rate per point, little else."""
    rng = np.random.default_rng(2)
    t = grid(20000)
    spikes = (rng.random((20000, 30)) < 0.05) / DT
    spikes[[0, -1], :3] = 1 / DT  # repeated points at the edges
    events = spikes2events(t, spikes.T)
    n_spikes = sum(e.size for e in events)
    for interp in ("zero", "linear", "nearest", "cubic"):
        isi = IsiRates(events, t[0], t[-1], interp=interp)
        kept = sum(a.nbytes for a in vars(isi).values() if isinstance(a, np.ndarray))
        assert kept <= 16 * (n_spikes + 2 * 30) + 16 * 30


@pytest.mark.parametrize("midpoint", [False, True])
def test_isi_points_are_deduplicated_for_every_kind(midpoint):
    t = grid(50)
    events = [t[[0, 10, 49]], t[[5, 20]], t[[]]]
    expected = IsiRates(events, t[0], t[-1], midpoint=midpoint).points
    for interp in ISI_INTERP_KINDS:
        points = IsiRates(events, t[0], t[-1], midpoint=midpoint, interp=interp).points
        for (x, y), (x0, y0) in zip(points, expected, strict=True):
            np.testing.assert_array_equal(x, x0)
            np.testing.assert_array_equal(y, y0)
    x, y = expected[0]
    if not midpoint:
        np.testing.assert_array_equal(x, t[[0, 10, 49]])
        np.testing.assert_array_equal(y, [*(1 / np.diff(t[[0, 10, 49]])), 0])


# ------------------------------------------------------------------- events


def test_spikes2events_matches_reference(mixed_spikes):
    t, spikes = mixed_spikes
    ours = spikes2events(t, spikes.T)
    expected = reference.spikes2events(t, spikes.T)
    assert len(ours) == len(expected)
    for a, b in zip(ours, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    single = spikes2events(t, spikes[:, 2])
    assert len(single) == 1 and np.array_equal(single[0], t[[300, 1400]])


# --------------------------------------------------------------- validation


def test_validate_grid_returns_step():
    assert validate_grid(grid(10)) == pytest.approx(DT, rel=1e-12)
    assert validate_grid(np.arange(5)) == 1.0
    # float32 grids of long recordings are as uniform as float32 allows
    assert validate_grid(grid(100_000).astype(np.float32)) == pytest.approx(
        DT, rel=1e-3
    )


BAD_T = grid(50).copy()
BAD_T[20] += 1e-5


@pytest.mark.parametrize(
    ("t", "spikes", "kwargs", "error", "match"),
    [
        (BAD_T, np.zeros((50, 2)), {}, ValueError, "uniform"),
        (np.array([0.001]), np.zeros((1, 2)), {}, ValueError, "at least 2"),
        (grid(50)[::-1], np.zeros((50, 2)), {}, ValueError, "increasing"),
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


@pytest.mark.parametrize(
    ("t", "spikes", "kwargs", "error", "match"),
    [
        (BAD_T, np.zeros((50, 2)), {}, ValueError, "uniform"),
        (grid(50), np.zeros((51, 2)), {}, ValueError, "time steps"),
        (grid(50), np.full((50, 2), np.inf), {}, ValueError, "NaN or infinite"),
        (grid(50), np.zeros((50, 2)), {"interp": "spline5"}, ParameterError, "interp"),
        (grid(1), np.zeros((1, 2)), {}, ValueError, "at least 2"),
    ],
)
def test_rates_isi_rejects(t, spikes, kwargs, error, match):
    with pytest.raises(error, match=match):
        rates_isi(t, spikes, **kwargs)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: KernelFilter("gauss", 0.01, 0, 2), ParameterError, "dt"),
        (lambda: KernelFilter("gauss", 0.01, DT, -1), ParameterError, "n_units"),
        (lambda: KernelFilter("gauss", 0, DT, 2), ParameterError, "tau"),
        (
            lambda: KernelFilter("gauss", 0.01, DT, 2).process(np.zeros((5, 3))),
            ValueError,
            "shape",
        ),
        (
            lambda: KernelFilter("expon", 0.01, DT, 1).process([[np.nan]]),
            ValueError,
            "NaN",
        ),
        (lambda: IsiRates([[0.5]], 0.001, 0.1), ValueError, "within"),
        (lambda: IsiRates([[0.05]], 0.1, 0.1), ValueError, "t_first < t_last"),
        (lambda: IsiRates([[np.nan]], 0.0, 0.1), ValueError, "NaN"),
        (
            lambda: IsiRates([[0.05]], 0.0, 0.1, interp="bogus"),
            ParameterError,
            "interp",
        ),
        (
            lambda: IsiRates([[0.05]], 0.0, 0.1).evaluate([0.05, 0.2]),
            ValueError,
            "outside",
        ),
        (lambda: spikes2events(grid(5), np.zeros((2, 4))), ValueError, "last axis"),
    ],
)
def test_streaming_estimators_reject(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("method", ["auto", "sparse", "direct", "fft"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_filter_rejects_non_finite_values_in_any_chunk(method, bad):
    filt = KernelFilter("expogauss", 0.02, DT, 3, method=method)
    filt.process(np.ones((100, 3)) / DT)
    chunk = np.zeros((200, 3))
    chunk[150, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        filt.process(chunk)


def test_no_units():
    t = grid(100)
    assert rates_kernel(t, np.zeros((100, 0))).shape == (100, 0)
    assert rates_isi(t, np.zeros((100, 0)), interp="cubic").shape == (100, 0)
    assert spikes2events(t, np.zeros((0, 100))) == []
    filt = KernelFilter("expogauss", 0.01, DT, 0)
    rows = filt.process(np.zeros((50, 0))).shape[0] + filt.finish().shape[0]
    assert rows == 50


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(-(10**6), 10**6),
    n_t=st.integers(1, 300),
    dt=st.sampled_from([1e-3, 1e-4, 1 / 30000, 0.1]),
    queries=st.lists(st.floats(-2, 302, allow_nan=False), max_size=40),
)
def test_grid_positions_equal_searchsorted(start, n_t, dt, queries):
    t_chunk = (start + np.arange(1, n_t + 1)) * dt
    # Grid times, midpoints as the ISI estimator computes them, half steps
    # and arbitrary positions (in steps from the grid's origin).
    half_steps = start + 1.5 + np.arange(n_t)
    times = np.concatenate(
        [
            t_chunk,
            0.5 * (t_chunk[:-1] + t_chunk[1:]),
            half_steps * dt,
            (start + 1 + np.asarray(queries)) * dt,
        ]
    )
    expected = np.searchsorted(t_chunk, times, side="left")
    np.testing.assert_array_equal(_grid_positions(t_chunk, times), expected)


def test_filter_cannot_run_after_finish():
    filt = KernelFilter("expon", 0.01, DT, 1)
    filt.finish()
    with pytest.raises(RuntimeError, match="after finish"):
        filt.process(np.zeros((2, 1)))
