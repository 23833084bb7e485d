"""Sortings saved by SpikeInterface (read only, nothing unpickled).

Three layouts:

``numpy_folder`` (``NumpySorting.save(folder=..., format="numpy_folder")``)
    ``spikes.npy``, a structured array of ``sample_index``, ``unit_index``,
    ``segment_index``; ``numpysorting_info.json`` with ``sampling_frequency``,
    ``unit_ids`` and ``num_segments``; ``properties/<name>.npy``.
``npz_folder`` (``format="npz_folder"``)
    ``sorting_cached.npz`` (the single-file layout below) and ``properties/``.
single NPZ (``NpzSortingExtractor.write_sorting``)
    ``unit_ids``, ``sampling_frequency``, ``num_segment`` and per segment
    ``spike_indexes_seg<k>`` (samples) with ``spike_labels_seg<k>`` (the
    unit id of each spike).

Spike times are ``sample_index / sampling_frequency`` seconds; units keep
SpikeInterface's ids (``unit_ids``, in their order). A sorting with several
segments needs ``segment``. A string property named like a label column
(``quality``, ``group``, ``KSLabel``...) becomes the unit labels.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from spikerates.errors import ParameterError, SpikeDataError
from spikerates.io import safety
from spikerates.io._source import Source
from spikerates.io.registry import Format, ReadOptions, register
from spikerates.names import format_spec
from spikerates.spiketrains import SpikeTrains, normalize_unit_ids

#: Property names read as unit labels, in order of preference.
LABEL_PROPERTIES = ("quality", "label", "group", "KSLabel", "kslabel")


def _load_npy(path: str) -> np.ndarray:
    # Header checked first, declared size bounded, never unpickled.
    return safety.load_npy(path)


def _json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SpikeDataError(f"cannot read as JSON ({exc})", path=path) from exc
    if not isinstance(value, dict):
        raise SpikeDataError("expected a JSON object", path=path)
    return value


def check_segment(n_segments: int, segment: int | None, source: str) -> int:
    """The segment to read of ``n_segments`` (``segment`` or the only one)."""
    if segment is None:
        if n_segments > 1:
            raise ParameterError(
                "segment",
                f"{source} holds a sorting of {n_segments} segments; choose one "
                f"with --segment (0 to {n_segments - 1})",
            )
        return 0
    if not 0 <= segment < max(n_segments, 1):
        raise ParameterError(
            "segment",
            f"{source} holds {n_segments} segment(s); got segment {segment}",
        )
    return int(segment)


def _rate(value: Any, source: str, name: str = "sampling_frequency") -> float:
    rate = np.asarray(value, dtype=np.float64).ravel()
    if rate.size != 1 or not np.isfinite(rate[0]) or rate[0] <= 0:
        raise SpikeDataError(
            f"must be one number > 0 (Hz), got {value!r}", path=source, dataset=name
        )
    return float(rate[0])


def trains_from_indices(
    unit_ids: np.ndarray,
    samples: np.ndarray,
    unit_of_spike: np.ndarray,
    rate: float,
    *,
    source: str,
    dataset: str,
) -> list[np.ndarray]:
    """Per-unit sorted times (s) from sample indices and each spike's unit
    number (an index into ``unit_ids``)."""
    samples = np.asarray(samples).ravel()
    unit_of_spike = np.asarray(unit_of_spike).ravel()
    if samples.dtype.kind not in "iu" or samples.shape != unit_of_spike.shape:
        raise SpikeDataError(
            f"expected integer sample indices with one unit per spike, got "
            f"{samples.dtype} {samples.shape} and {unit_of_spike.shape}",
            path=source,
            dataset=dataset,
        )
    if unit_of_spike.size and (
        unit_of_spike.min() < 0 or unit_of_spike.max() >= unit_ids.size
    ):
        raise SpikeDataError(
            f"unit index out of range for {unit_ids.size} units",
            path=source,
            dataset=dataset,
        )
    times = samples.astype(np.float64) / rate
    order = np.lexsort((times, unit_of_spike))
    counts = np.bincount(unit_of_spike, minlength=unit_ids.size)
    return list(np.split(times[order], np.cumsum(counts)[:-1]))


def read_single_npz(
    arrays: Any, names: list[str], source: str, segment: int | None
) -> tuple[np.ndarray, list[np.ndarray], dict[str, Any]]:
    """Unit ids, per-unit times (s) and provenance of the single-NPZ layout,
    from an open archive (``arrays[name]``)."""
    unit_ids = normalize_unit_ids(arrays["unit_ids"])
    rate = _rate(arrays["sampling_frequency"], source)
    n_segments = sum(1 for n in names if n.startswith("spike_indexes_seg"))
    if "num_segment" in names:
        n_segments = int(np.asarray(arrays["num_segment"]).ravel()[0])
    index = check_segment(n_segments, segment, source)
    samples_name = f"spike_indexes_seg{index}"
    labels_name = f"spike_labels_seg{index}"
    for name in (samples_name, labels_name):
        if name not in names:
            raise SpikeDataError(
                "missing from the SpikeInterface sorting", path=source, dataset=name
            )
    labels = normalize_unit_ids(arrays[labels_name])
    keys = {str(u): i for i, u in enumerate(unit_ids.tolist())}
    try:
        unit_of_spike = np.array([keys[str(v)] for v in labels.tolist()], np.int64)
    except KeyError as exc:
        raise SpikeDataError(
            f"spike label {exc.args[0]} is not one of unit_ids",
            path=source,
            dataset=labels_name,
        ) from None
    trains = trains_from_indices(
        unit_ids,
        arrays[samples_name],
        unit_of_spike,
        rate,
        source=source,
        dataset=samples_name,
    )
    info = {
        "format": "npz",
        "layout": "spikeinterface npz",
        "table": samples_name,
        "id_column": "unit_ids",
        "segment": index,
        "resolution": 1.0 / rate,
    }
    return unit_ids, trains, info


def _properties(folder: str, n_units: int) -> tuple[np.ndarray | None, str | None]:
    props = os.path.join(folder, "properties")
    if not os.path.isdir(props):
        return None, None
    for name in LABEL_PROPERTIES:
        path = os.path.join(props, f"{name}.npy")
        if not os.path.isfile(path):
            continue
        try:
            values = safety.load_npy(path)
        except SpikeDataError:
            continue  # pickled or unreadable: not a label column
        if values.ndim == 1 and values.size == n_units and values.dtype.kind in "US":
            return normalize_unit_ids(values).astype(str), name
    return None, None


def _read_numpy_folder(folder: str, segment: int | None) -> SpikeTrains:
    info_path = os.path.join(folder, "numpysorting_info.json")
    meta = _json(info_path)
    for key in ("sampling_frequency", "unit_ids"):
        if key not in meta:
            raise SpikeDataError(f"missing {key!r}", path=info_path)
    unit_ids = normalize_unit_ids(np.asarray(meta["unit_ids"]))
    rate = _rate(meta["sampling_frequency"], info_path)
    spikes_path = os.path.join(folder, "spikes.npy")
    spikes = _load_npy(spikes_path)
    fields = spikes.dtype.names or ()
    if not {"sample_index", "unit_index"} <= set(fields):
        raise SpikeDataError(
            "expected a structured array with fields sample_index, unit_index "
            f"(and segment_index), got {spikes.dtype}",
            path=spikes_path,
        )
    n_segments = int(meta.get("num_segments", 1))
    index = check_segment(n_segments, segment, folder)
    if "segment_index" in fields:
        spikes = spikes[spikes["segment_index"] == index]
    trains = trains_from_indices(
        unit_ids,
        spikes["sample_index"],
        spikes["unit_index"].astype(np.int64),
        rate,
        source=spikes_path,
        dataset="sample_index",
    )
    labels, label_column = _properties(folder, unit_ids.size)
    return SpikeTrains(
        trains,
        unit_ids=unit_ids,
        labels=labels,
        label_column=label_column,
        source=folder,
        info={
            "format": "spikeinterface",
            "layout": "numpy_folder",
            "table": "spikes.npy",
            "id_column": "unit_ids",
            "segment": index,
            "resolution": 1.0 / rate,
        },
    )


def _read_npz_folder(folder: str, segment: int | None) -> SpikeTrains:
    from spikerates.io import npz  # the one NPZ opener

    path = os.path.join(folder, "sorting_cached.npz")
    if not os.path.isfile(path):
        raise SpikeDataError("missing sorting_cached.npz", path=folder)
    archive = npz.open_archive(Source(path, path=path))
    try:
        unit_ids, trains, info = read_single_npz(archive, archive.names, path, segment)
    finally:
        archive.close()
    labels, label_column = _properties(folder, unit_ids.size)
    info.update(format="spikeinterface", layout="npz_folder")
    return SpikeTrains(
        trains,
        unit_ids=unit_ids,
        labels=labels,
        label_column=label_column,
        source=folder,
        info=info,
    )


def is_sorting_folder(src: Source) -> bool:
    """Whether ``src`` is a folder saved by SpikeInterface."""
    if not src.is_dir or src.path is None:
        return False
    present = set(os.listdir(src.path))
    numpy_folder = {"spikes.npy", "numpysorting_info.json"} <= present
    return numpy_folder or "sorting_cached.npz" in present


def read(src: Source, options: ReadOptions) -> SpikeTrains:
    """Read a SpikeInterface sorting folder (see module docstring)."""
    if not is_sorting_folder(src):
        raise SpikeDataError(
            "not a SpikeInterface sorting folder: expected spikes.npy with "
            "numpysorting_info.json (numpy_folder) or sorting_cached.npz "
            "(npz_folder)",
            path=src.name,
        )
    assert src.path is not None
    if os.path.isfile(os.path.join(src.path, "spikes.npy")):
        return _read_numpy_folder(src.path, options.segment)
    return _read_npz_folder(src.path, options.segment)


FORMAT = register(
    Format(spec=format_spec("spikeinterface"), sniff=is_sorting_folder, read=read)
)
