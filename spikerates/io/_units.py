"""Rules shared by the readers: which column names a unit, flat spike arrays
to per-unit trains, and observation intervals."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from spikerates.errors import ParameterError, SpikeDataError
from spikerates.spiketrains import normalize_unit_ids

#: Columns that name units, in order of preference, before the row ``id``:
#: ``unit_name`` (SpikeInterface and neuroconv keep the sorter's ids there)
#: and ``_name`` (neo's NWBIO).
NAME_COLUMNS = ("unit_name", "_name")


def _is_unique(ids: np.ndarray) -> bool:
    keys = [str(v).strip() for v in ids.tolist()]
    return len(set(keys)) == len(keys)


def choose_unit_ids(
    columns: Sequence[str],
    load: Callable[[str], np.ndarray],
    n_units: int,
    id_column: str | None,
    *,
    row_ids: str | None,
    source: str | None,
    where: str,
) -> tuple[np.ndarray | None, str | None]:
    """The unit ids of a table, and the column they came from.

    Rule: ``id_column`` when given; else the first of :data:`NAME_COLUMNS`
    present with one unique value per unit; else the row ids ``row_ids``
    (NWB ``id``); else none (``0..N-1``).

    Parameters
    ----------
    columns : sequence of str
        Names of the table's per-unit columns.
    load : callable
        ``load(name)`` returns a column as an array.
    n_units : int
        Number of units N.
    id_column : str, optional
        The column chosen by the user.
    row_ids : str, optional
        The column of row ids (``id``), if any.
    source, where : str
        File and table named in error messages.

    Returns
    -------
    ids : ndarray, shape (N,), or None
    column : str or None
    """

    def loaded(name: str) -> np.ndarray | None:
        values = np.asarray(load(name))
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1 or values.shape[0] != n_units:
            return None
        return normalize_unit_ids(values)

    if id_column is not None:
        if id_column not in columns:
            raise ParameterError(
                "id_column",
                f"{where} in {source} has no column {id_column!r}; its columns "
                f"are {', '.join(columns) or '(none)'}",
            )
        ids = loaded(id_column)
        if ids is None:
            raise ParameterError(
                "id_column",
                f"{where}/{id_column} in {source} does not hold one value per "
                f"unit ({n_units} units)",
            )
        if not _is_unique(ids):
            raise ParameterError(
                "id_column",
                f"{where}/{id_column} in {source} holds repeated values; unit "
                "ids must be unique",
            )
        return ids, id_column
    for name in NAME_COLUMNS:
        if name in columns:
            ids = loaded(name)
            if ids is not None and _is_unique(ids):
                return integers_if_all(ids), name
    if row_ids is not None and row_ids in columns:
        ids = loaded(row_ids)
        if ids is None:
            raise SpikeDataError(
                f"{np.size(load(row_ids))} ids for {n_units} units; expected "
                "one id per unit",
                path=source,
                dataset=f"{where.rstrip('/')}/{row_ids}",
            )
        return ids, row_ids
    return None, None


def integers_if_all(ids: np.ndarray) -> np.ndarray:
    """Text ids that all spell integers (``"25"``, not ``"007"``) as int64."""
    if ids.dtype.kind != "U" or not ids.size:
        return ids
    texts = [s.strip() for s in ids.tolist()]
    if all(re.fullmatch(r"-?(0|[1-9]\d{0,17})", s) for s in texts):
        return np.array([int(s) for s in texts], dtype=np.int64)
    return ids


def split_by_unit(
    times: np.ndarray, clusters: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Unit ids (ascending) and each unit's sorted times, from flat arrays.

    Parameters
    ----------
    times : ndarray, shape (n,)
        Spike times in seconds.
    clusters : ndarray, shape (n,)
        The unit of each spike.
    """
    ids, inverse = np.unique(clusters, return_inverse=True)
    inverse = inverse.ravel()
    order = np.lexsort((times, inverse))
    counts = np.bincount(inverse, minlength=ids.size)
    trains = np.split(times[order], np.cumsum(counts)[:-1]) if ids.size else []
    return ids, list(trains)


def flat_trains(
    times: Any,
    clusters: Any,
    *,
    sample_rate: float | None,
    source: str | None,
    times_name: str,
    clusters_name: str,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per-unit trains from flat ``spike_times`` and ``spike_clusters``.

    Integer times are samples, divided by ``sample_rate`` (required then);
    floating-point times are seconds.
    """
    times = np.asarray(times)
    clusters = np.asarray(clusters)
    if times.ndim == 2 and times.shape[1] == 1:
        times = times[:, 0]
    if clusters.ndim == 2 and clusters.shape[1] == 1:
        clusters = clusters[:, 0]
    if times.ndim != 1 or times.dtype.kind not in "iuf":
        raise SpikeDataError(
            f"expected a 1-D array of numbers, got {times.dtype} of shape "
            f"{times.shape}",
            path=source,
            dataset=times_name,
        )
    if clusters.shape != times.shape:
        raise SpikeDataError(
            f"{clusters.size} cluster ids for {times.size} spike times; expected "
            "one per spike",
            path=source,
            dataset=clusters_name,
        )
    if clusters.dtype.kind == "f" and not np.all(clusters == np.round(clusters)):
        raise SpikeDataError(
            "cluster ids must be integers", path=source, dataset=clusters_name
        )
    if clusters.dtype.kind not in "iufUSO":
        raise SpikeDataError(
            f"cluster ids must be integers or text, got {clusters.dtype}",
            path=source,
            dataset=clusters_name,
        )
    if clusters.dtype.kind in "f":
        clusters = clusters.astype(np.int64)
    if times.dtype.kind in "iu":
        if sample_rate is None:
            raise SpikeDataError(
                "holds integer sample numbers but the file gives no sample rate "
                "(a scalar 'sample_rate' or 'sampling_frequency' in Hz)",
                path=source,
                dataset=times_name,
            )
        seconds = times.astype(np.float64) / sample_rate
    else:
        seconds = times.astype(np.float64)
        if not np.all(np.isfinite(seconds)):
            raise SpikeDataError(
                "spike times must be finite; found NaN or inf",
                path=source,
                dataset=times_name,
            )
    return split_by_unit(seconds, normalize_unit_ids(clusters))


def subtract_intervals(intervals: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """``intervals`` minus the union of ``cuts``, both (K, 2) in seconds.

    Returns
    -------
    ndarray, shape (K', 2)
        Sorted, non-overlapping pieces (pieces of zero length dropped).
    """
    pieces = [tuple(iv) for iv in np.asarray(intervals, float).reshape(-1, 2)]
    for c0, c1 in np.asarray(cuts, float).reshape(-1, 2):
        kept = []
        for a, b in pieces:
            if c1 <= a or c0 >= b:
                kept.append((a, b))
                continue
            if a < c0:
                kept.append((a, c0))
            if c1 < b:
                kept.append((c1, b))
        pieces = kept
    out = np.array(sorted(pieces), dtype=np.float64).reshape(-1, 2)
    return out[out[:, 1] > out[:, 0]]
