"""ISI rates on many units, against the reference.

The spline kinds write many units in blocks of rows (a broadcast per block,
then the cells after each switch one by one) and few units unit by unit;
both ways are checked, for every kind, with units of 0, 1, 2 and many
spikes, spikes on the grid's first and last steps, pieces of the grid, and
output arrays the estimator cannot write into directly.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.interpolate
from rates_helpers import DT, assert_matches, grid, reference

from spikerates import isi
from spikerates.estimators import rates_isi, spikes2events
from spikerates.isi import ISI_INTERP_KINDS, IsiRates


def many_units(n_steps=1500, seed=7):
    """40 units: silent, 1 spike, 2 spikes, Poisson at several rates, bursts."""
    rng = np.random.default_rng(seed)
    spikes = np.zeros((n_steps, 40))
    spikes[n_steps // 3, 1] = 1
    spikes[[n_steps // 7, 3 * n_steps // 4], 2] = 1
    spikes[[3, 4, 5, n_steps - 20], 3] = 1
    density = np.repeat([0.002, 0.01, 0.05, 0.3, 0.9], 7)
    spikes[:, 5:] = rng.random((n_steps, 35)) < density
    spikes /= DT
    spikes[[0, -1]] = 0  # the reference raises on spikes there
    return grid(n_steps), spikes


@pytest.fixture(params=["two_level", "by_unit"])
def path(request, monkeypatch):
    # The number of units from which rows are written in blocks.
    monkeypatch.setattr(
        isi, "_MIN_BROADCAST_UNITS", 1 if request.param == "two_level" else 10**6
    )
    return request.param


@pytest.mark.parametrize("midpoint", [False, True])
@pytest.mark.parametrize("interp", ISI_INTERP_KINDS)
def test_both_paths_match_reference(path, interp, midpoint):
    t, spikes = many_units()
    ours = rates_isi(t, spikes, midpoint=midpoint, interp=interp)
    for unit in range(spikes.shape[1]):
        try:
            expected = reference.rates_isi(
                t, spikes[:, [unit]], midpoint=midpoint, interp=interp
            )[:, 0]
        except ValueError:  # too few points for the reference's spline
            continue
        assert_matches(ours[:, unit], expected)


@pytest.mark.parametrize("interp", ["slinear", "quadratic", "cubic"])
def test_splines_match_scipy_near_zero(path, interp):
    # Rates from 1 to 1000 Hz side by side make splines that overshoot and
    # cross zero, where a relative bound holds only with scipy's own
    # arithmetic; the edge spikes' points are de-duplicated as scipy needs.
    t, spikes = many_units(seed=11)
    spikes[[0, -1], 5:20] = 1 / DT
    ours = rates_isi(t, spikes, interp=interp)
    n_tiny = 0
    for unit, events in enumerate(spikes2events(t, spikes.T)):
        if events.size < 3:
            continue
        x = np.concatenate([[t[0]], events, [t[-1]]])
        y = np.zeros(x.size)
        y[1:-2] = 1 / np.diff(events)
        keep = np.append(x[:-1] != x[1:], True)  # of equal times the later
        expected = scipy.interpolate.interp1d(x[keep], y[keep], kind=interp)(t)
        assert_matches(ours[:, unit], expected)
        scale = np.abs(expected).max()
        n_tiny += np.count_nonzero((expected != 0) & (np.abs(expected) < 1e-9 * scale))
    # Straight lines between rates >= 0 never come near zero; curves do.
    assert (n_tiny > 0) == (interp != "slinear")


@pytest.mark.parametrize("interp", ISI_INTERP_KINDS)
def test_both_paths_agree_with_edge_spikes_and_pieces(interp, monkeypatch):
    t, spikes = many_units(n_steps=900, seed=3)
    spikes[[0, -1], 5:20] = 1 / DT  # spikes on the first and last steps
    events = spikes2events(t, spikes.T)
    edges = [0, 1, 2, 150, 151, 600, 899, 900]
    results = []
    for threshold in (1, 10**6):
        monkeypatch.setattr(isi, "_MIN_BROADCAST_UNITS", threshold)
        for midpoint in (False, True):
            estimator = IsiRates(events, t[0], t[-1], midpoint=midpoint, interp=interp)
            whole = estimator.evaluate(t)
            pieces = [estimator.evaluate(t[a:b]) for a, b in itertools.pairwise(edges)]
            np.testing.assert_array_equal(np.concatenate(pieces), whole)
            # Going back to an earlier piece starts again from the first.
            np.testing.assert_array_equal(
                estimator.evaluate(t[100:300]), whole[100:300]
            )
            results.append(whole)
    np.testing.assert_array_equal(results[0], results[2])
    np.testing.assert_array_equal(results[1], results[3])


@pytest.mark.parametrize("interp", ["zero", "linear", "cubic"])
def test_output_arrays_written_through_a_copy(interp):
    t, spikes = many_units(n_steps=600)
    estimator = IsiRates(spikes2events(t, spikes.T), t[0], t[-1], interp=interp)
    expected = estimator.evaluate(t)
    strided = np.zeros((600, 80))[:, ::2]
    estimator.evaluate(t, out=strided)
    np.testing.assert_array_equal(strided, expected)
    single = np.zeros((600, 40), dtype=np.float32)
    estimator.evaluate(t, out=single)
    np.testing.assert_array_equal(single, expected.astype(np.float32))


def test_small_pieces_of_the_grid(monkeypatch):
    # Pieces of a few rows: the state carries over many piece boundaries.
    monkeypatch.setattr(isi, "_PIECE_VALUES", 7 * 40)
    t, spikes = many_units(n_steps=700)
    for interp in ("zero", "nearest", "next", "linear", "quadratic"):
        expected = reference.rates_isi(t, spikes[:, 5:], interp=interp)
        assert_matches(rates_isi(t, spikes, interp=interp)[:, 5:], expected)


@pytest.mark.parametrize("interp", ["slinear", "quadratic", "cubic"])
@pytest.mark.parametrize("offset", [0.0, 3e4])
def test_spline_fast_path_error_is_far_below_the_exact_threshold(interp, offset):
    # The fast (Horner) values differ from scipy's by a small multiple of
    # the interval's largest B-spline coefficient S; values below
    # _EXACT_FRACTION * S are evaluated exactly, so the relative difference
    # of the others is at most that multiple / _EXACT_FRACTION (1e-10 here).
    rng = np.random.default_rng(17)
    n_steps = 6000
    t = offset + grid(n_steps)
    rates = np.repeat([0.002, 0.02, 0.2, 0.6], 5)
    spikes = (rng.random((n_steps, rates.size)) < rates) / DT
    spikes[1000:1010, :5] = 1 / DT  # bursts of 1 ms intervals after long ones
    spikes[[0, -1]] = 0
    estimator = IsiRates(spikes2events(t, spikes.T), t[0], t[-1], interp=interp)
    plan = estimator._evaluation_plan()
    ends = np.append(plan.initial[1:], plan.breaks.size)
    worst = 0.0
    for unit, (x, y) in enumerate(estimator.points):
        spline = scipy.interpolate.make_interp_spline(
            x, y, k=isi._SPLINE_ORDERS[interp]
        )
        first, end = plan.initial[unit], ends[unit]
        pieces = first + np.searchsorted(plan.breaks[first:end], t, side="right") - 1
        fast = np.empty(t.size)
        plan.formula(t, pieces, fast)
        largest = plan.thresholds[pieces] / isi._EXACT_FRACTION
        expected = spline(t)
        zero = largest == 0  # all coefficients 0: exactly 0 both ways
        np.testing.assert_array_equal(fast[zero], 0)
        np.testing.assert_array_equal(expected[zero], 0)
        difference = np.abs(fast - expected)[~zero] / largest[~zero]
        worst = max(worst, difference.max())
    assert worst < 1e-10 * isi._EXACT_FRACTION
