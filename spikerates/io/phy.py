"""Phy / Kilosort output folders (read only).

A folder holds ``spike_times.npy`` (spike times in samples), ``spike_clusters.npy``
(the cluster of each spike; ``spike_templates.npy`` when there is no
curated clustering) and ``params.py`` with ``sample_rate`` in Hz. Unit labels
come from ``cluster_group.tsv`` (column ``group``, Phy's curation), falling
back to ``cluster_KSLabel.tsv`` (column ``KSLabel``, Kilosort's own) for
clusters the first does not list. ``params.py`` is parsed, never executed.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from spikerates.errors import SpikeDataError
from spikerates.io import safety
from spikerates.io._source import Source
from spikerates.io.registry import Format, ReadOptions, register
from spikerates.names import format_spec
from spikerates.spiketrains import SpikeTrains

#: Accepted range of ``sample_rate`` in Hz.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1e-3, 1e9
#: Where unit labels come from, in order of preference: (file, column,
#: whether the file must have the column). Phy's curation (``group``) wins
#: over Kilosort's own label (``KSLabel``).
LABEL_FILES = (
    ("cluster_group.tsv", "group", True),
    ("cluster_info.tsv", "group", False),
    ("cluster_info.tsv", "KSLabel", False),
    ("cluster_KSLabel.tsv", "KSLabel", True),
)


def parse_params(path: str) -> dict[str, Any]:
    """Literal assignments of a Phy ``params.py`` (``name = literal``); other
    statements are ignored. Parsed from tokens, never executed, without
    recursion (see :func:`spikerates.io.safety.parse_params`)."""
    return safety.parse_params(path)


def _params(folder: str) -> dict[str, Any]:
    path = os.path.join(folder, "params.py")
    if not os.path.isfile(path):
        raise SpikeDataError(
            "missing params.py (it gives sample_rate, the samples per second)",
            path=folder,
        )
    return parse_params(path)


def _sample_rate(folder: str, params: dict[str, Any]) -> float:
    path = os.path.join(folder, "params.py")
    if "sample_rate" not in params:
        raise SpikeDataError(
            "no sample_rate given as a number (params.py is read, never run: "
            "write e.g. 'sample_rate = 30000.0')",
            path=path,
            dataset="sample_rate",
        )
    rate = params["sample_rate"]
    if (
        isinstance(rate, bool)
        or not isinstance(rate, int | float)
        or not math.isfinite(rate)
        or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE
    ):
        raise SpikeDataError(
            f"must be a number of samples per second from {MIN_SAMPLE_RATE:g} to "
            f"{MAX_SAMPLE_RATE:g}, got {rate!r}",
            path=path,
            dataset="sample_rate",
        )
    return float(rate)


def _recording_samples(folder: str, params: dict[str, Any]) -> int | None:
    """Samples in the raw recording that ``params.py`` names, when it can be
    told: ``dat_path`` (one existing file, relative to the folder),
    ``n_channels_dat``, ``dtype`` and ``offset`` (bytes before the samples).
    ``None`` when any of them is missing or unusable; the file is never
    read, only its size."""
    dat = params.get("dat_path")
    if isinstance(dat, list | tuple) and len(dat) == 1:
        dat = dat[0]
    n_channels = params.get("n_channels_dat")
    offset = params.get("offset", 0)
    if (
        not isinstance(dat, str)
        or isinstance(n_channels, bool)
        or not isinstance(n_channels, int)
        or n_channels < 1
        or isinstance(offset, bool)
        or not isinstance(offset, int)
        or offset < 0
    ):
        return None
    try:
        itemsize = np.dtype(str(params.get("dtype", "int16"))).itemsize
    except TypeError:
        return None
    path = dat if os.path.isabs(dat) else os.path.join(folder, dat)
    try:
        size = os.stat(path).st_size
    except (OSError, ValueError):
        return None
    if size <= offset or itemsize == 0:
        return None
    return (size - offset) // (n_channels * itemsize)


def _load_vector(folder: str, name: str) -> np.ndarray:
    path = os.path.join(folder, name)
    # Header checked first, declared size bounded, never unpickled.
    arr = safety.load_npy(path)
    if not isinstance(arr, np.ndarray):
        raise SpikeDataError("expected a .npy array", path=path)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise SpikeDataError(
            f"expected shape (n,) or (n, 1), got {arr.shape}", path=path
        )
    if arr.dtype.kind not in "iuf":
        raise SpikeDataError(f"expected numbers, got dtype {arr.dtype}", path=path)
    return arr


def _labels(
    folder: str, cluster_ids: np.ndarray
) -> tuple[np.ndarray | None, str | None]:
    """Per-cluster labels and the column most of them came from."""
    import pandas as pd  # deferred: slow to import

    found: dict[int, tuple[str, str]] = {}
    any_file = False
    tables: dict[str, Any] = {}
    # Later sources only fill clusters the earlier ones left unlabelled.
    for filename, column, required in LABEL_FILES:
        path = os.path.join(folder, filename)
        if not os.path.isfile(path):
            continue
        if filename not in tables:
            try:
                tables[filename] = pd.read_csv(
                    path, sep="\t", dtype=str, keep_default_na=False
                )
            except (
                pd.errors.ParserError,
                pd.errors.EmptyDataError,
                ValueError,
            ) as exc:
                raise SpikeDataError(f"cannot read ({exc})", path=path) from exc
        table = tables[filename]
        columns = {c.strip().lower(): c for c in table.columns}
        id_col = columns.get("cluster_id", columns.get("id"))
        label_col = columns.get(column.lower())
        if label_col is None and required:
            label_col = columns.get("label")
        if id_col is None or label_col is None:
            if not required:
                continue
            raise SpikeDataError(
                f"expected columns 'cluster_id' and '{column}', got "
                f"{', '.join(table.columns)}",
                path=path,
            )
        any_file = True
        for i, (cid, label) in enumerate(
            zip(table[id_col], table[label_col], strict=True)
        ):
            try:
                key = int(str(cid).strip())
            except ValueError:
                raise SpikeDataError(
                    f"line {i + 2}: cluster id {cid!r} is not an integer",
                    path=path,
                    dataset=id_col,
                ) from None
            text = str(label).strip()
            if text:
                found.setdefault(key, (text, column))
    if not any_file:
        return None, None
    picked = [found.get(int(c), ("", "")) for c in cluster_ids]
    sources = [col for _, col in picked if col]
    label_column = max(set(sources), key=sources.count) if sources else "group"
    return np.array([text for text, _ in picked], dtype=str), label_column


def read(folder: str) -> SpikeTrains:
    """Read a Phy/Kilosort folder into :class:`SpikeTrains`.

    Spike times are ``samples / sample_rate`` seconds; units are the clusters
    with spikes, ids ascending; labels ("" where no file labels a cluster).
    """
    times_path = os.path.join(folder, "spike_times.npy")
    if not os.path.isfile(times_path):
        raise SpikeDataError(
            "is a folder but not a Phy/Kilosort output (spike_times.npy is "
            "missing) nor a SpikeInterface sorting (spikes.npy with "
            "numpysorting_info.json, or sorting_cached.npz)",
            path=folder,
        )
    clusters_name = "spike_clusters.npy"
    if not os.path.isfile(os.path.join(folder, clusters_name)):
        clusters_name = "spike_templates.npy"
        if not os.path.isfile(os.path.join(folder, clusters_name)):
            raise SpikeDataError(
                "spike_clusters.npy (or spike_templates.npy) is missing",
                path=folder,
            )
    params = _params(folder)
    rate = _sample_rate(folder, params)
    n_samples = _recording_samples(folder, params)
    samples = _load_vector(folder, "spike_times.npy")
    clusters = _load_vector(folder, clusters_name)
    clusters_path = os.path.join(folder, clusters_name)
    if clusters.size != samples.size:
        raise SpikeDataError(
            f"{clusters.size} cluster ids for {samples.size} spike times in "
            "spike_times.npy; expected one per spike",
            path=clusters_path,
        )
    if clusters.dtype.kind == "f":
        if not np.all(clusters == np.round(clusters)):
            raise SpikeDataError("cluster ids must be integers", path=clusters_path)
    clusters = clusters.astype(np.int64)
    if samples.dtype.kind == "f" and not np.all(np.isfinite(samples)):
        raise SpikeDataError(
            "spike times must be finite; found NaN or inf", path=times_path
        )
    times = samples.astype(np.float64) / rate
    safety.check_times(times, path=times_path)
    ids, inverse = np.unique(clusters, return_inverse=True)
    inverse = inverse.ravel()
    order = np.lexsort((times, inverse))
    counts = np.bincount(inverse, minlength=ids.size)
    spike_times = np.split(times[order], np.cumsum(counts)[:-1]) if ids.size else []
    labels, label_column = _labels(folder, ids)
    if n_samples is not None and times.size and times.max() > n_samples / rate:
        n_samples = None  # not the raw file these spikes were sorted from
    return SpikeTrains(
        list(spike_times),
        unit_ids=ids,
        t_start=None if n_samples is None else 0.0,
        t_stop=None if n_samples is None else n_samples / rate,
        labels=labels,
        source=folder,
        label_column=label_column,
        info={
            "format": "phy",
            "layout": "phy",
            "table": clusters_name,
            "id_column": "cluster_id",
            "resolution": 1.0 / rate,
        },
    )


def _read(src: Source, options: ReadOptions) -> SpikeTrains:
    if src.path is None or not src.is_dir:
        raise SpikeDataError(
            "the phy format reads a Phy/Kilosort output folder, not a file",
            path=src.name,
        )
    return read(src.path)


def _is_phy_folder(src: Source) -> bool:
    return src.is_dir and os.path.isfile(os.path.join(src.path, "spike_times.npy"))


FORMAT = register(Format(spec=format_spec("phy"), sniff=_is_phy_folder, read=_read))
