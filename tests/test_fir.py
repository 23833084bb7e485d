"""The FIR engine: every convolution method gives the reference's sums, for
dense rows and spike entries, in parts and without scipy's compiled loop."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from rates_helpers import (
    DT,
    assert_matches,
    grid,
    mixed_spikes_data,
    reference,
)

from spikerates._sparse_kernels import add_coo_product
from spikerates.driver import compute_rates
from spikerates.estimators import rates_kernel
from spikerates.fir import FirStage
from spikerates.kernels import KERNEL_KINDS, KernelFilter


@pytest.fixture(scope="module")
def mixed_spikes():
    """Units with 0, 1, 2, many (Poisson) and dense spikes; none on the edges."""
    t, spikes = mixed_spikes_data()
    return t, spikes.copy()


@pytest.mark.parametrize("method", ["sparse", "direct", "fft", "recursive"])
@pytest.mark.parametrize(("kind", "tau"), itertools.product(KERNEL_KINDS, [0.002, 0.3]))
def test_every_method_matches_reference(mixed_spikes, kind, tau, method):
    t, spikes = mixed_spikes
    # Spikes on the first and last steps too: the kernel's borders.
    spikes = spikes.copy()
    spikes[[0, -1], 4] = 1 / DT
    expected = reference.rates_kernel(t, spikes, kind=kind, tau=tau)
    ours = rates_kernel(t, spikes, kind=kind, tau=tau, method=method, chunk_steps=700)
    assert_matches(ours, expected)


@pytest.mark.parametrize("method", ["sparse", "direct", "fft", "recursive"])
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
@pytest.mark.parametrize("method", ["auto", "sparse", "direct", "fft", "recursive"])
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
def test_sparse_method_in_parts_equals_whole(kind):
    """Long chunks are computed in parts (and pieces of the kernel in groups);
    the parts give the same sums, for spikes in any order."""
    n_steps, n_units = 700, 5
    rows, units, dense = spike_entries(n_steps, n_units, 120, seed=9)
    order = np.lexsort((rows, units))  # windows not in time order
    whole = KernelFilter(kind, 0.02, DT, n_units, method="sparse")
    expected = np.concatenate([whole.process(dense), whole.finish()])
    small = {"sparse_out_values": 64, "sparse_entries": 50}
    for feed in ("rows", "spikes"):
        filt = KernelFilter(kind, 0.02, DT, n_units, method="sparse", **small)
        if feed == "rows":
            first = filt.process(dense)
        else:
            first = filt.process_spikes(n_steps, rows[order], units[order], 1 / DT)
        got = np.concatenate([first, filt.finish()])
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
        assert np.array_equal(got == 0, expected == 0)


@pytest.mark.parametrize("kind", ["gauss", "expogauss"])
def test_sparse_method_without_scipys_compiled_loop(kind):
    """Where scipy lacks the loop the sparse method uses, its public product
    gives the same rates."""
    n_steps, n_units = 700, 5
    rows, units, dense = spike_entries(n_steps, n_units, 120, seed=4)
    expected = rates_kernel(grid(n_steps), dense, kind, 0.02, method="direct")
    for chunk_steps in (n_steps, 97):
        got = compute_rates(
            (grid(n_steps), dense),
            kind=kind,
            tau=0.02,
            fir_method="sparse",
            chunk_steps=chunk_steps,
            compiled=False,
            sparse_entries=50,  # pieces in groups
        ).rates
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
        assert np.array_equal(got == 0, expected == 0)


def test_public_sparse_product_equals_compiled_loop():
    rng = np.random.default_rng(2)
    rows = rng.integers(0, 30, 200).astype(np.int32)
    cols = rng.integers(0, 12, 200).astype(np.int32)
    data = rng.standard_normal(200)
    table = rng.standard_normal((12, 8))
    expected = np.zeros((30, 8))
    np.add.at(expected, rows, data[:, None] * table[cols])
    for compiled in (True, False):
        out = np.zeros((30, 8))
        add_coo_product(rows, cols, data, table, out, compiled=compiled)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_fir_stage_is_a_truncated_full_convolution():
    rng = np.random.default_rng(8)
    kern = rng.random(17)
    x = (rng.random((300, 3)) < 0.1) * 1.0
    for method in ("sparse", "direct", "fft"):
        stage = FirStage(kern, 5, 3, method)
        got = np.concatenate([stage.run(x[:123]), stage.run(x[123:]), stage.flush()])
        expected = np.stack(
            [np.convolve(kern, col)[5 : 5 + 300] for col in x.T], axis=1
        )
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_sampled_density_estimates_from_a_stride_of_rows():
    from spikerates.fir import sampled_density

    x = np.zeros((10_000, 50))
    x[::2] = 1.0
    assert sampled_density(x) == pytest.approx(0.5, abs=0.01)
    assert sampled_density(np.zeros((0, 3))) == 0.0
    small = np.zeros((10, 4))
    small[3, 1] = 2.0
    assert sampled_density(small) == 1 / 40


def test_dense_input_skips_the_scan_for_spikes(monkeypatch):
    # the output of a first stage (no zeros) is told by a sample of rows
    import spikerates.fir as fir

    scans = []
    original = fir.flat_nonzero
    monkeypatch.setattr(
        fir, "flat_nonzero", lambda a, *k: scans.append(1) or original(a, *k)
    )
    kern = np.exp(-0.5 * (np.arange(-20, 20) / 5.0) ** 2)
    x = np.random.default_rng(3).random((5000, 64)) + 0.1
    stage = fir.FirStage(kern, 20, 64, "auto")
    out = np.concatenate([stage.run(x), stage.flush()])
    assert not scans
    full = np.stack([np.convolve(kern, c)[20 : 20 + len(x)] for c in x.T], axis=1)
    np.testing.assert_allclose(out, full, rtol=1e-12)
    # sparse spikes are still scanned (and go to the sparse method)
    spikes = np.zeros((5000, 64))
    spikes[::97, 3] = 1000.0
    fir.FirStage(kern, 20, 64, "auto").run(spikes)
    assert scans


def test_direct_threads_take_runs_of_rows_and_give_the_same_sums(monkeypatch):
    from spikerates import threads
    from spikerates.fir import FirStage

    monkeypatch.setattr(threads, "_proc_running_elsewhere", lambda: 0)
    monkeypatch.setattr(threads, "available", lambda: 2)
    calls = []
    original = threads.map_threads

    def recording(function, items, n=None):
        calls.append((items, n))
        return original(function, items, n)

    monkeypatch.setattr(threads, "map_threads", recording)
    kern = np.exp(-0.5 * (np.arange(-20, 20) / 5.0) ** 2)
    x = np.random.default_rng(5).random((3001, 70))
    results = {}
    for n in (1, 2):
        threads.configure(n)
        try:
            stage = FirStage(kern, 20, 70, "direct")
            results[n] = np.concatenate(
                [stage.run(x[:1777]), stage.run(x[1777:]), stage.flush()]
            )
        finally:
            threads.configure(None)
    # runs of whole 16-row blocks, each at full width
    items = [items for items, n in calls if n == 2]
    assert items and all(r0 % 16 == 0 for r0, _ in items[0])
    assert np.array_equal(results[1], results[2])
    full = np.stack([np.convolve(kern, c)[20 : 20 + len(x)] for c in x.T], axis=1)
    np.testing.assert_allclose(results[2], full, rtol=1e-12)
