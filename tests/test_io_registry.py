"""The format registry and the vocabularies of spikerates.names."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import spikerates.io as sio
from spikerates import names
from spikerates.errors import ParameterError, SpikeDataError
from spikerates.io import registry
from spikerates.spiketrains import SpikeTrains


def test_names_imports_nothing_heavy():
    code = (
        "import sys, spikerates.names; "
        "heavy = {'numpy', 'scipy', 'h5py', 'pandas'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_every_declared_format_has_one_entry():
    entries = registry.registered()
    assert [e.name for e in entries] == list(names.FORMAT_NAMES)
    for spec in names.FORMAT_SPECS:
        entry = registry.get(spec.name)
        assert entry.spec is spec
        for alias in spec.aliases:
            assert registry.get(alias.upper()) is entry
        assert (entry.write_events is not None) == spec.writable
        assert (entry.read is not None) == spec.readable


@pytest.mark.parametrize("name", names.WRITE_FORMATS)
def test_written_extension_names_the_format_back(name):
    ext = sio.extension_for(name)
    assert ext == names.FORMAT_EXTENSIONS[name]
    assert sio.detect_format(f"out{ext}", for_writing=True) == registry.get(name).name


@pytest.mark.parametrize(
    "spec", [s for s in names.FORMAT_SPECS if s.extensions], ids=lambda s: s.name
)
def test_every_extension_is_read_as_its_format(spec):
    for ext in spec.extensions:
        assert sio.detect_format(f"x{ext.upper()}") == spec.name
        assert names.format_for_extension(ext) == spec.name


def test_choices_agree_with_the_registry():
    for name in names.READ_FORMATS:
        assert registry.get(name).spec.readable
    for name in names.WRITE_FORMATS:
        assert registry.get(name).spec.writable
    assert "phy" in names.READ_FORMATS and "phy" not in names.WRITE_FORMATS
    assert names.FORMAT_EXTENSIONS["nwb"] == ".nwb"
    assert names.FORMAT_EXTENSIONS["h5"] == names.FORMAT_EXTENSIONS["hdf5"] == ".h5"


def test_unknown_names():
    with pytest.raises(ParameterError, match="unknown format 'xlsx'; expected hdf5"):
        registry.get("xlsx")
    assert names.canonical_format(".H5") == "hdf5"
    assert names.canonical_format("xlsx") is None
    assert names.format_for_extension(".xlsx") is None


def test_an_entry_must_agree_with_its_spec(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    spec = names.format_spec("phy")
    with pytest.raises(ValueError, match="writers disagree"):
        registry.register(
            registry.Format(spec=spec, read=lambda s, o: None, write_events=print)
        )
    other = names.FormatSpec("xlsx", (), (".xlsx",), True, False, False, True, "")
    with pytest.raises(ValueError, match="not declared"):
        registry.register(registry.Format(spec=other, read=lambda s, o: None))


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"\x89HDF\r\n\x1a\n" + bytes(100), "hdf5"),
        (b"PK\x03\x04" + bytes(100), "npz"),
        (b"unit\ttime\n1\t0.5\n", "tsv"),
        (b"\n# comment, with a comma\nt\t0\t1\n", "tsv"),
        (b"unit,time\n1,0.5\n", "csv"),
        (b"a\tb,c\n", "csv"),
    ],
)
def test_content_sniffing_of_a_file_without_extension(tmp_path, content, expected):
    path = tmp_path / "data"
    path.write_bytes(content)
    assert sio.detect_format(path) == expected
    assert sio.detect_format("-", head=content) == expected


def test_folders(tmp_path):
    # Any folder is offered to the Phy reader, which says what it lacks.
    assert sio.detect_format(tmp_path) == "phy"
    with pytest.raises(SpikeDataError, match="spike_times.npy is missing"):
        sio.read_spikes(tmp_path)
    with pytest.raises(SpikeDataError, match="is a folder, not a csv file"):
        sio.read_spikes(tmp_path, "csv")
    with pytest.raises(SpikeDataError, match="Phy/Kilosort output folder, not a file"):
        (tmp_path / "x.csv").write_text("unit,time\n1,0.5\n")
        sio.read_spikes(tmp_path / "x.csv", "phy")
    with pytest.raises(SpikeDataError, match="give an output file name"):
        sio.write_events(tmp_path, SpikeTrains([np.zeros(1)]))


def test_write_to_an_unknown_extension_lists_the_writable_ones(tmp_path):
    with pytest.raises(SpikeDataError) as info:
        sio.write_events(tmp_path / "out.xlsx", SpikeTrains([np.zeros(1)]))
    message = str(info.value)
    for spec in names.FORMAT_SPECS:
        if spec.writable:
            assert spec.extensions[0] in message
    assert "give --to" in message
    assert os.listdir(tmp_path) == []


def test_nwb_and_hdf5_are_distinct_outputs(tmp_path):
    trains = SpikeTrains([np.array([0.1, 0.2]), np.array([0.3])], unit_ids=[4, 9])
    sio.write_events(tmp_path / "e.nwb", trains)
    sio.write_events(tmp_path / "e.out", trains, "nwb")
    sio.write_events(tmp_path / "e.h5", trains)
    for name in ("e.nwb", "e.out", "e.h5"):
        back = sio.read_spikes(tmp_path / name, "hdf5" if name == "e.out" else None)
        assert back.unit_ids.tolist() == [4, 9]
        np.testing.assert_array_equal(back.spike_times[0], [0.1, 0.2])
