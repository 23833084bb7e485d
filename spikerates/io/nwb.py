"""NWB files (Neurodata Without Borders 2, on HDF5).

Writing uses pynwb, imported only when an NWB file is written; reading uses
plain h5py (:mod:`spikerates.io.hdf5`), which is fast, lazy and reads every
file written here.

What is written
---------------
events
    The ``Units`` table ``/units``: ``spike_times`` (seconds), the unit ids as
    the table's ``id`` when they are integers (else ``id`` 0..N-1 and the ids
    in a ``unit_name`` column), the labels in the column they were read from
    (``quality``, ``group``, ``KSLabel``..., default ``label``) and the
    per-unit ``obs_intervals``. The recording window goes in the attributes
    ``t_start``/``t_stop`` of ``/units``; ``resolution`` is the time step when
    one is known (``dt`` in ``attrs``, or ``resolution`` in
    ``SpikeTrains.info``).
dense matrices (rates, binned spikes)
    A ``TimeSeries`` ``/processing/spikerates/<name>`` with ``data`` (M, N),
    one column per unit, ``starting_time`` = ``t[0]`` and ``rate`` = ``1/dt``
    (the grid ``t[k] = t[0] + k*dt``), ``unit`` ``Hz`` for rates; the unit ids
    in the table ``/processing/spikerates/<name>_units`` (column ``unit_id``,
    row ``k`` for data column ``k``); the estimator parameters as JSON in the
    series' ``comments``. Streamed rates are written row block by row block
    into a dataset created through pynwb, so memory does not grow with M.
named arrays
    Datasets at the file's root beside a minimal valid NWB file.
rates aligned to events (per trial)
    A ``TimeSeries`` ``/processing/spikerates/trials`` with ``data`` (M, K, N):
    time relative to the event, trial, unit (see :func:`write_trial_rates`),
    the unit ids in ``trials_units`` and the events in ``trials_events``.

Extra arrays (``extra``) are datasets at the root and ``attrs`` are root
attributes, as in the plain HDF5 layout; NWB readers ignore them.

Session metadata (``session_description``, ``session_start_time``,
``experimenter``, ``lab``, ``institution``, ``session_id``,
``experiment_description``) is carried over from ``SpikeTrains.info`` when
the spikes came from an NWB file, and for matrices from the same keys in
``attrs``; otherwise the session starts when the file is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
import warnings
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np

from spikerates import __version__
from spikerates.io import hdf5
from spikerates.io.registry import Format, register
from spikerates.names import format_spec
from spikerates.spiketrains import SpikeTrains, trains_to_ragged

#: Session fields of an NWB file carried over through ``SpikeTrains.info``.
SESSION_FIELDS = (
    "session_description",
    "session_start_time",
    "session_id",
    "experimenter",
    "lab",
    "institution",
    "experiment_description",
)
MODULE = hdf5.NWB_MODULE
UNIT_ID_COLUMN = hdf5.NWB_UNIT_ID_COLUMN
_DEFAULT_DESCRIPTION = "written by spikerates"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # pynwb warns about choices that are fine here (e.g. no electrodes).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _start_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        start = value
    elif isinstance(value, str) and value:
        try:
            start = datetime.fromisoformat(value)
        except ValueError:
            start = datetime.now(timezone.utc)
    else:
        start = datetime.now(timezone.utc)
    return start if start.tzinfo is not None else start.replace(tzinfo=timezone.utc)


def _nwbfile(info: Mapping[str, Any] | None, what: str) -> Any:
    """A new NWBFile with the session metadata of ``info`` (or defaults)."""
    import pynwb  # deferred: slow to import, only needed to write NWB

    info = dict(info or {})
    kwargs: dict[str, Any] = {}
    for key in ("session_id", "lab", "institution", "experiment_description"):
        if isinstance(info.get(key), str) and info[key]:
            kwargs[key] = info[key]
    experimenter = info.get("experimenter")
    if isinstance(experimenter, str) and experimenter:
        kwargs["experimenter"] = [
            e.strip() for e in experimenter.split(";") if e.strip()
        ]
    description = info.get("session_description") or f"{what}, {_DEFAULT_DESCRIPTION}"
    with _quiet():
        return pynwb.NWBFile(
            session_description=str(description),
            identifier=str(uuid.uuid4()),
            session_start_time=_start_time(info.get("session_start_time")),
            source_script=f"spikerates {__version__}",
            source_script_file_name="spikerates",
            **kwargs,
        )


def _write_file(path: str, nwbfile: Any) -> None:
    import pynwb  # deferred: slow to import, only needed to write NWB

    hdf5.remove_placeholder(path)
    with _quiet(), pynwb.NWBHDF5IO(path, "w") as io:
        io.write(nwbfile)


def _finish(
    path: str,
    extra: Mapping[str, Any] | None,
    attrs: Mapping[str, Any] | None,
    units_attrs: Mapping[str, Any] | None = None,
) -> None:
    """Add what NWB has no place for with h5py: root arrays and attributes."""
    import h5py  # deferred: slow to import

    with h5py.File(path, "r+") as f:
        hdf5.write_extra(f, extra)
        hdf5.set_attrs(f, _root_attrs(f, attrs))
        for key, value in (units_attrs or {}).items():
            if value is not None:
                f["units"].attrs[key] = value


#: Attributes of an NWB file's root that belong to NWB.
_NWB_ROOT_ATTRS = ("nwb_version", "namespace", "neurodata_type", "object_id")


def _root_attrs(f: Any, attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``attrs`` without the names NWB uses at the file's root (its
    datasets, such as ``session_description``, and its own attributes)."""
    return {
        k: v
        for k, v in (attrs or {}).items()
        if k not in f and k not in _NWB_ROOT_ATTRS
    }


def _id_columns(unit_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """NWB row ids (integers) and, for text ids, the ``unit_name`` column."""
    if unit_ids.dtype.kind in "iu":
        return unit_ids.astype(np.int64), None
    return np.arange(unit_ids.size, dtype=np.int64), unit_ids.astype(str)


def _resolution(trains: SpikeTrains, attrs: Mapping[str, Any] | None) -> float:
    for value in ((attrs or {}).get("dt"), trains.info.get("resolution")):
        if isinstance(value, int | float) and np.isfinite(value) and value > 0:
            return float(value)
    return -1.0  # NWB's "unknown"


def write_events(
    path: str,
    trains: SpikeTrains,
    *,
    extra: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write ``trains`` as the Units table of a new NWB file ``path``."""
    from hdmf.common import VectorData, VectorIndex
    from pynwb.misc import Units

    nwbfile = _nwbfile(trains.info, "spike times per unit")
    flat, ends = trains_to_ragged(trains)
    times = VectorData(
        name="spike_times", data=flat, description="spike times in seconds"
    )
    columns: list[Any] = [
        times,
        VectorIndex(name="spike_times_index", data=ends, target=times),
    ]
    row_ids, names = _id_columns(trains.unit_ids)
    if names is not None:
        columns.append(
            VectorData(name="unit_name", data=names.tolist(), description="unit id")
        )
    if trains.labels is not None:
        columns.append(
            VectorData(
                name=trains.label_column or "label",
                data=trains.labels.astype(str).tolist(),
                description="unit label",
            )
        )
    if trains.obs_intervals is not None:
        counts = [len(iv) for iv in trains.obs_intervals]
        stacked = (
            np.concatenate(trains.obs_intervals)
            if sum(counts)
            else np.zeros((0, 2), np.float64)
        )
        intervals = VectorData(
            name="obs_intervals",
            data=stacked,
            description="observation intervals of each unit, seconds",
        )
        columns += [
            intervals,
            VectorIndex(
                name="obs_intervals_index",
                data=np.cumsum(counts, dtype=np.int64),
                target=intervals,
            ),
        ]
    with _quiet():
        nwbfile.units = Units(
            name="units",
            id=row_ids,
            columns=columns,
            description="spike times per unit",
            resolution=_resolution(trains, attrs),
        )
    _write_file(path, nwbfile)
    _finish(
        path,
        extra,
        attrs,
        {"t_start": trains.t_start, "t_stop": trains.t_stop},
    )


def _comments(attrs: Mapping[str, Any] | None) -> str:
    plain = {k: v for k, v in (attrs or {}).items() if v is not None}
    return json.dumps(plain, default=str, sort_keys=True)


def _series_description(name: str, attrs: Mapping[str, Any] | None) -> str:
    attrs = attrs or {}
    estimator = attrs.get("estimator")
    what = f"firing rates ({estimator} estimator)" if estimator else name
    return (
        f"{what}, one column per unit (unit ids in {name}_units.{UNIT_ID_COLUMN}); "
        "parameters as JSON in comments"
    )


def _add_matrix(
    nwbfile: Any,
    name: str,
    data: Any,
    *,
    starting_time: float,
    rate: float,
    unit_ids: np.ndarray,
    attrs: Mapping[str, Any] | None,
    description: str | None = None,
) -> None:
    """The TimeSeries ``name`` and its unit table in the spikerates module."""
    import pynwb
    from hdmf.common import DynamicTable, VectorData

    units = str((attrs or {}).get("units") or ("Hz" if name == "rates" else "n.a."))
    with _quiet():
        module = nwbfile.create_processing_module(
            MODULE, "matrices computed by spikerates"
        )
        module.add(
            pynwb.TimeSeries(
                name=name,
                data=data,
                unit=units,
                starting_time=float(starting_time),
                rate=float(rate),
                description=description or _series_description(name, attrs),
                comments=_comments(attrs),
            )
        )
        ids = unit_ids.tolist() if unit_ids.dtype.kind in "iu" else unit_ids.astype(str)
        module.add(
            DynamicTable(
                name=f"{name}_units",
                description=f"the unit of each column of {name}",
                columns=[
                    VectorData(
                        name=UNIT_ID_COLUMN,
                        data=list(ids),
                        description="unit id of the data column of the same index",
                    )
                ],
            )
        )


def _grid_of(t: np.ndarray, attrs: Mapping[str, Any] | None) -> tuple[float, float]:
    """``starting_time`` (s) and ``rate`` (Hz) of the grid ``t``."""
    dt = (attrs or {}).get("dt")
    if not isinstance(dt, int | float) or not dt > 0:
        dt = float(t[1] - t[0]) if t.size > 1 else 1.0
    return (float(t[0]) if t.size else 0.0), 1.0 / float(dt)


def write_dense(
    path: str,
    t: np.ndarray,
    spikes: np.ndarray,
    unit_ids: np.ndarray,
    *,
    name: str = "spikes",
    extra: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write a (M, N) matrix on the uniform grid ``t`` as a TimeSeries."""
    nwbfile = _nwbfile(attrs, name)
    starting_time, rate = _grid_of(np.asarray(t, dtype=np.float64), attrs)
    grid = _grid_attrs(t, 1.0 / rate)
    _add_matrix(
        nwbfile,
        name,
        np.asarray(spikes),
        starting_time=starting_time,
        rate=rate,
        unit_ids=unit_ids,
        attrs={**grid, **(attrs or {})},
    )
    _write_file(path, nwbfile)
    _finish(path, extra, attrs)


def _grid_attrs(t: np.ndarray, dt: float) -> dict[str, Any]:
    t = np.asarray(t, dtype=np.float64)
    if not t.size:
        return {"dt": dt}
    return {"dt": dt, "t_start": float(t[0] - dt), "n_steps": int(t.size)}


def write_arrays(
    path: str,
    arrays: Mapping[str, Any],
    *,
    attrs: Mapping[str, Any] | None = None,
    columns: Mapping[str, Any] | None = None,
) -> None:
    """Write each array as a dataset at the root of a minimal NWB file."""
    _write_file(path, _nwbfile(attrs, "named arrays"))
    _finish(path, arrays, attrs)


def write_trial_rates(
    path: str,
    t: np.ndarray,
    trials: np.ndarray,
    unit_ids: np.ndarray,
    *,
    event_times: np.ndarray,
    event_groups: np.ndarray,
    extra: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write rates aligned to events, one (M, N) block per trial.

    Parameters
    ----------
    path : str
    t : ndarray, shape (M,)
        Grid times relative to the event, seconds (uniform).
    trials : ndarray, shape (K, M, N)
        Rate of each trial, time step and unit, Hz (NaN for trials left out).
    unit_ids : ndarray, shape (N,)
    event_times : ndarray, shape (K,)
        The event of each trial, seconds.
    event_groups : ndarray, shape (K,)
        The group (condition) of each trial.
    extra, attrs
        Root datasets and attributes, as for :func:`write_arrays`.

    Notes
    -----
    The TimeSeries ``/processing/spikerates/trials`` holds ``data`` of shape
    (M, K, N) (time first, as NWB wants it), ``starting_time`` ``t[0]`` and
    ``rate`` ``1/dt``: its times are relative to each trial's event. Column
    ``n`` of the last axis is the unit in row ``n`` of ``trials_units``
    (``unit_id``), index ``k`` of the middle axis the trial in row ``k`` of
    ``trials_events`` (``event_time``, ``group``).
    """
    from hdmf.common import DynamicTable, VectorData

    t = np.asarray(t, dtype=np.float64)
    trials = np.asarray(trials)
    nwbfile = _nwbfile(attrs, "trial rates")
    starting_time, rate = _grid_of(t, attrs)
    grid = _grid_attrs(t, 1.0 / rate)
    params = {**(attrs or {}), **grid, "axes": ["time", "trial", "unit"]}
    _add_matrix(
        nwbfile,
        "trials",
        np.ascontiguousarray(np.moveaxis(trials, 0, 1)),
        starting_time=starting_time,
        rate=rate,
        unit_ids=unit_ids,
        attrs={**params, "units": "Hz"},
        description=(
            "rates aligned to events, axes (time relative to the event, trial, "
            f"unit); unit ids in trials_units.{UNIT_ID_COLUMN}, events in "
            "trials_events; parameters as JSON in comments"
        ),
    )
    with _quiet():
        nwbfile.processing[MODULE].add(
            DynamicTable(
                name="trials_events",
                description="the event of each trial (index k of axis 1 of trials)",
                columns=[
                    VectorData(
                        name="event_time",
                        data=np.asarray(event_times, dtype=np.float64),
                        description="time of the event the trial is aligned to, s",
                    ),
                    VectorData(
                        name="group",
                        data=np.asarray(event_groups).astype(str).tolist(),
                        description="group (condition) of the trial",
                    ),
                ],
            )
        )
    _write_file(path, nwbfile)
    _finish(path, extra, attrs)


class MatrixBackend:
    """Rows of a (n_rows, N) matrix streamed into an NWB TimeSeries.

    The file is created by pynwb when the first rows arrive (their first
    time is ``starting_time``; ``rate`` is ``1/attrs["dt"]``, else from the
    first two times), with an empty chunked ``data`` dataset of the final
    shape; rows are then written into it with h5py.
    """

    def __init__(
        self,
        path: str,
        *,
        name: str,
        n_rows: int,
        unit_ids: np.ndarray,
        dtype: np.dtype,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.name = name
        self.n_rows = n_rows
        self.unit_ids = unit_ids
        self.dtype = np.dtype(dtype)
        self.attrs = dict(attrs or {})
        self.file: Any = None
        self.data: Any = None

    def _create(self, t_first: np.ndarray) -> None:
        import h5py  # deferred: slow to import
        from hdmf.backends.hdf5 import H5DataIO

        dt = self.attrs.get("dt")
        if not isinstance(dt, int | float) or not dt > 0:
            if t_first.size < 2 and self.n_rows > 1:
                raise ValueError("the time step is unknown: give attrs['dt']")
            dt = float(t_first[1] - t_first[0]) if t_first.size > 1 else 1.0
        t_start = self.attrs.get("t_start")
        if t_first.size:
            t0 = float(t_first[0])
        elif isinstance(t_start, int | float):
            t0 = float(t_start) + dt
        else:
            t0 = 0.0
        shape = (self.n_rows, len(self.unit_ids))
        rows = hdf5.chunk_rows(self.n_rows, shape[1], self.dtype)
        data = H5DataIO(
            shape=shape,
            dtype=self.dtype,
            chunks=(rows, shape[1]) if self.n_rows and shape[1] else None,
        )
        nwbfile = _nwbfile(self.attrs, self.name)
        _add_matrix(
            nwbfile,
            self.name,
            data,
            starting_time=t0,
            rate=1.0 / float(dt),
            unit_ids=self.unit_ids,
            attrs=self.attrs,
        )
        _write_file(self.path, nwbfile)
        self.file = h5py.File(
            self.path, "r+", rdcc_nbytes=hdf5.CACHE_BYTES, rdcc_w0=1.0
        )
        self.data = self.file[f"processing/{MODULE}/{self.name}/data"]
        hdf5.set_attrs(self.file, _root_attrs(self.file, self.attrs))

    def write(self, row: int, t_chunk: np.ndarray, values: np.ndarray) -> None:
        if self.file is None:
            self._create(np.asarray(t_chunk, dtype=np.float64))
        self.data[row : row + values.shape[0]] = values

    def close(self) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = True
        if self.file is None:
            self._create(np.zeros(0))
        hdf5.close_written(self.file, self.data)


def is_nwb(path: str | os.PathLike) -> bool:
    """Whether the HDF5 file ``path`` declares an NWB version."""
    import h5py  # deferred: slow to import

    with h5py.File(path, "r") as f:
        return "nwb_version" in f.attrs


FORMAT = register(
    Format(
        spec=format_spec("nwb"),
        read=hdf5.read,
        read_table=hdf5.read_table,
        write_events=write_events,
        write_dense=write_dense,
        write_arrays=write_arrays,
        matrix_backend=MatrixBackend,
    )
)
