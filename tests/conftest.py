"""Shared fixtures: small spike data sets and files in every input format."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pytest

from spikerates.spiketrains import SpikeTrains


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator."""
    return np.random.default_rng(12345)


@pytest.fixture
def sample_trains() -> SpikeTrains:
    """Five units with ids out of order, an empty unit, a one-spike unit,
    negative times, times on bin edges of dt = 1 ms, and labels."""
    return SpikeTrains(
        [
            np.array([0.5, 0.001, 0.25, -0.002]),
            np.array([]),
            np.array([0.003]),
            np.array([0.1 + 0.2, 0.3, 0.0]),
            np.linspace(0.0015, 0.9995, 40),
        ],
        unit_ids=np.array([7, 3, 11, 0, 42]),
        labels=np.array(["good", "mua", "good", "noise", "good"]),
    )


def write_phy_folder(
    folder: os.PathLike | str,
    samples: np.ndarray,
    clusters: np.ndarray,
    *,
    sample_rate: float | None = 30000.0,
    group: dict[int, str] | None = None,
    ks_label: dict[int, str] | None = None,
    params_extra: str = "",
) -> str:
    """Write a Phy/Kilosort folder as those tools do and return its path."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    np.save(os.path.join(folder, "spike_times.npy"), samples)
    np.save(os.path.join(folder, "spike_clusters.npy"), clusters)
    lines = [
        "dat_path = 'recording.dat'",
        "n_channels_dat = 385",
        "dtype = 'int16'",
        "offset = 0",
    ]
    if sample_rate is not None:
        lines.append(f"sample_rate = {sample_rate!r}")
    lines.append("hp_filtered = True")
    with open(os.path.join(folder, "params.py"), "w") as fh:
        fh.write("\n".join(lines) + "\n" + params_extra)
    for name, column, labels in (
        ("cluster_group.tsv", "group", group),
        ("cluster_KSLabel.tsv", "KSLabel", ks_label),
    ):
        if labels is not None:
            with open(os.path.join(folder, name), "w") as fh:
                fh.write(f"cluster_id\t{column}\n")
                for cid, label in labels.items():
                    fh.write(f"{cid}\t{label}\n")
    return folder


@pytest.fixture
def phy_writer():
    """:func:`write_phy_folder`, for tests that build their own Phy folders."""
    return write_phy_folder


@dataclass
class PhyFolder:
    """A Phy folder on disk and what reading it must give."""

    path: str
    unit_ids: np.ndarray
    spike_times: list[np.ndarray]
    labels: np.ndarray
    sample_rate: float = 30000.0
    extra: dict = field(default_factory=dict)


@pytest.fixture(params=["int64 (n,)", "uint64 (n,1)"])
def phy_folder(request, tmp_path, rng) -> PhyFolder:
    """A Kilosort-style folder: spike_times as int64 (n,) or uint64 (n, 1),
    clusters 0, 2, 5, 9 (in random order), labels from cluster_group.tsv over
    cluster_KSLabel.tsv."""
    rate = 30000.0
    ids = np.array([0, 2, 5, 9])
    n = 300
    clusters = rng.choice(ids, size=n)
    samples = np.sort(rng.integers(0, int(rate) * 20, size=n))
    if request.param == "uint64 (n,1)":
        stored = samples.astype(np.uint64).reshape(-1, 1)
        stored_clusters = clusters.astype(np.uint32)
    else:
        stored = samples.astype(np.int64)
        stored_clusters = clusters.astype(np.int32)
    path = write_phy_folder(
        tmp_path / "kilosort",
        stored,
        stored_clusters,
        sample_rate=rate,
        group={2: "good", 5: "noise"},
        ks_label={0: "mua", 2: "mua", 5: "good", 9: "good"},
    )
    times = samples / rate
    expected = [np.sort(times[clusters == c]) for c in ids]
    labels = np.array(["mua", "good", "noise", "good"])
    return PhyFolder(path, ids, expected, labels, rate)


@dataclass
class NwbFile:
    """An NWB file written by pynwb and what reading it must give."""

    path: str
    unit_ids: np.ndarray
    spike_times: list[np.ndarray]
    labels: np.ndarray
    t_start: float
    t_stop: float


def write_nwb(path: os.PathLike | str, units: list[dict]) -> str:
    """Write an NWB file with pynwb holding a Units table (one dict per unit:
    spike_times, id, quality, optional obs_intervals)."""
    pynwb = pytest.importorskip("pynwb")
    nwb = pynwb.NWBFile(
        session_description="spikerates test session",
        identifier="spikerates-test",
        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )
    nwb.add_unit_column("quality", "curation label")
    for unit in units:
        nwb.add_unit(**unit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pynwb.NWBHDF5IO(os.fspath(path), "w") as io:
            io.write(nwb)
    return os.fspath(path)


@pytest.fixture
def nwb_writer():
    """:func:`write_nwb`, for tests that build their own NWB files."""
    return write_nwb


@pytest.fixture
def nwb_file(tmp_path) -> NwbFile:
    """An NWB file from pynwb: arbitrary ids, an empty unit, unsorted spike
    times, obs_intervals and a 'quality' column."""
    units = [
        {
            "spike_times": [0.5, 0.1, 0.30000000000000004, 2.0],
            "id": 1001,
            "quality": "good",
            "obs_intervals": [[0.0, 2.5]],
        },
        {
            "spike_times": [],
            "id": 7,
            "quality": "mua",
            "obs_intervals": [[0.0, 1.0], [1.5, 3.0]],
        },
        {
            "spike_times": [1.25],
            "id": -3,
            "quality": "good",
            "obs_intervals": [[0.5, 3.0]],
        },
    ]
    path = write_nwb(tmp_path / "session.nwb", units)
    return NwbFile(
        path,
        np.array([1001, 7, -3]),
        [np.sort(np.array(u["spike_times"], dtype=float)) for u in units],
        np.array(["good", "mua", "good"]),
        0.0,
        3.0,
    )
