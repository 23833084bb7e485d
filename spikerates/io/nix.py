"""NIX files written by neo's NixIO, read with plain h5py (read only).

A NIX file is HDF5 with the root attribute ``format = "nix"``. neo stores
each ``SpikeTrain`` as a multi-tag of type ``neo.spiketrain`` inside a
segment group (``/data/<block>/groups/<segment>/multi_tags/...``); its
``positions`` data array holds the spike times with their ``unit`` (``s``,
``ms``, ``us``...) and its metadata the neo name (``neo_name``) and the
``t_start``/``t_stop`` of the train. Units are named as neo names the
trains; trains without a name (or with repeated names) are numbered in
file order. A file with several segments needs ``segment``.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from spikerates.errors import ParameterError, SpikeDataError
from spikerates.io import hdf5, safety
from spikerates.io._source import Source
from spikerates.io.registry import Format, ReadOptions, register
from spikerates.names import format_spec
from spikerates.spiketrains import SpikeTrains

#: Time units of NIX data arrays -> divisor to seconds.
TIME_UNITS = {"s": 1.0, "sec": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9, "min": 1 / 60}


def _error(src: Source, message: str, dataset: str | None = None) -> SpikeDataError:
    return SpikeDataError(f"NIX file: {message}", path=src.name, dataset=dataset)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _type(obj: h5py.HLObject) -> str:
    return _text(obj.attrs.get("type", ""))


def _seconds(src: Source, values: np.ndarray, unit: str, where: str) -> np.ndarray:
    divisor = TIME_UNITS.get(unit.strip())
    if divisor is None:
        raise _error(
            src,
            f"time unit {unit!r} is not one of {', '.join(TIME_UNITS)}",
            where,
        )
    values = np.asarray(values, dtype=np.float64).ravel()
    return values / divisor if divisor != 1.0 else values


def _property(src: Source, group: h5py.Group | None, name: str) -> tuple[Any, str]:
    """A metadata property's first value and its unit."""
    if group is None:
        return None, ""
    props = group.get("properties")
    if not isinstance(props, h5py.Group) or name not in props:
        return None, ""
    ds = props[name]
    if not isinstance(ds, h5py.Dataset) or ds.size == 0:
        return None, ""
    safety.check_dataset(ds, path=src.name)
    value = np.asarray(ds[()]).ravel()[0]
    return value, _text(ds.attrs.get("unit", ""))


def _segments(f: h5py.File, src: Source) -> list[h5py.Group]:
    """Groups holding spike trains: neo segments, then blocks themselves."""
    data = f.get("data")
    if not isinstance(data, h5py.Group):
        raise _error(src, "no /data group of blocks; is this a NIX file from neo?")
    found = []
    for block in data.values():
        if not isinstance(block, h5py.Group):
            continue
        groups = block.get("groups")
        segments = [
            g
            for g in (groups.values() if isinstance(groups, h5py.Group) else [])
            if isinstance(g, h5py.Group) and _trains_in(g)
        ]
        # The block lists every train of its segments again.
        found.extend(segments or ([block] if _trains_in(block) else []))
    return found


def _trains_in(group: h5py.Group) -> list[h5py.Group]:
    tags = group.get("multi_tags")
    if not isinstance(tags, h5py.Group):
        return []
    return [
        t
        for t in tags.values()
        if isinstance(t, h5py.Group) and _type(t) == "neo.spiketrain"
    ]


def read_file(f: h5py.File, src: Source, options: ReadOptions) -> SpikeTrains:
    """Read the spike trains of one segment of an open NIX file."""
    segments = _segments(f, src)
    if not segments:
        raise _error(
            src,
            "holds no neo spike trains (multi-tags of type 'neo.spiketrain'); "
            "spikerates reads the spike trains neo's NixIO writes",
        )
    if options.segment is None and len(segments) > 1:
        raise ParameterError(
            "segment",
            f"the NIX file {src.name} holds {len(segments)} segments with spike "
            "trains; choose one with --segment (0 to "
            f"{len(segments) - 1})",
        )
    index = options.segment or 0
    if not 0 <= index < len(segments):
        raise ParameterError(
            "segment",
            f"the NIX file {src.name} holds {len(segments)} segment(s); got "
            f"segment {index}",
        )
    segment = segments[index]
    trains, names, starts, stops = [], [], [], []
    for tag in _trains_in(segment):
        positions = tag.get("positions")
        data = positions.get("data") if isinstance(positions, h5py.Group) else None
        if not isinstance(data, h5py.Dataset) or data.dtype.kind not in "iuf":
            raise _error(
                src,
                "a neo.spiketrain without numeric positions (spike times)",
                tag.name,
            )
        unit = _text(positions.attrs.get("unit", "s"))
        safety.check_dataset(data, path=src.name)
        trains.append(_seconds(src, data[()], unit, data.name))
        meta = tag.get("metadata")
        meta = meta if isinstance(meta, h5py.Group) else None
        name, _ = _property(src, meta, "neo_name")
        names.append(None if name is None else _text(name))
        for key, out in (("t_start", starts), ("t_stop", stops)):
            value, value_unit = _property(src, meta, key)
            if value is not None:
                out.append(float(_seconds(src, value, value_unit or unit, key)[0]))
    usable = [n for n in names if n]
    if len(usable) == len(names) and len(set(usable)) == len(usable):
        unit_ids: Any = np.array(names, dtype=str)
        id_column = "neo_name"
    else:
        unit_ids, id_column = None, ""
    return SpikeTrains(
        trains,
        unit_ids=unit_ids,
        t_start=min(starts) if starts else None,
        t_stop=max(stops) if stops else None,
        source=src.name,
        info={
            "format": "nix",
            "layout": "events",
            "table": segment.name,
            "id_column": id_column,
            "segment": index,
        },
    )


def read(src: Source, options: ReadOptions) -> SpikeTrains:
    """Read a NIX file (see :func:`spikerates.io.read_spikes`)."""
    f = hdf5._open_hdf5(src)
    try:
        if hdf5._text_attr(f, "format") != "nix":
            raise _error(
                src,
                "the HDF5 root has no attribute format = 'nix'; read it as hdf5",
            )
        return read_file(f, src, options)
    except (KeyError, RuntimeError, OSError) as exc:
        raise _error(src, f"unexpected layout ({exc})") from exc
    finally:
        f.close()


FORMAT = register(
    Format(
        spec=format_spec("nix"),
        # Recognised by its root attribute: the HDF5 reader hands NIX files here.
        read=read,
    )
)
