"""Shared oracles and data of the rate estimator tests.

The reference implementation (``nengo_extras.neurons``) is the oracle for
every case it handles.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from nengo_extras import neurons as reference  # noqa: F401  (re-exported)

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


@functools.cache
def mixed_spikes_data() -> tuple[np.ndarray, np.ndarray]:
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
