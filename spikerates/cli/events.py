"""``spikerates events``: spike times per unit from any spike input.

Also holds the reading step shared by the commands that take spike inputs
(format, dataset, values, unit and label selection).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import click

from spikerates.cli.options import (
    inputs_argument,
    output_options,
    spike_input_options,
)
from spikerates.cli.runner import Job, Report, plan_jobs, run_jobs

#: Bin width in seconds used to put events on a grid when --dt is not given.
DEFAULT_DT = 0.001


@dataclass(frozen=True)
class ReadOptions:
    """How to read and select spikes (picklable, for worker processes)."""

    from_format: str | None = None
    dataset: str | None = None
    values: str = "auto"
    dt: float | None = None
    units: tuple[str, ...] | None = None
    labels: tuple[str, ...] = ()
    t_start: float | None = None
    t_stop: float | None = None
    allow_external_data: bool = False

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> ReadOptions:
        """Collect the reading options of a command's keyword arguments."""
        return cls(
            from_format=options["from_format"],
            dataset=options["dataset"],
            values=options["values"],
            dt=options["dt"],
            units=options["units"],
            labels=tuple(options["labels"]),
            t_start=options["t_start"],
            t_stop=options["t_stop"],
            allow_external_data=options.get("allow_external_data", False),
        )


def check_window(options: dict[str, Any]) -> None:
    """--t-stop must come after --t-start (a usage error otherwise)."""
    t_start, t_stop = options["t_start"], options["t_stop"]
    if t_start is not None and t_stop is not None and t_stop <= t_start:
        raise click.BadParameter(
            f"must be greater than --t-start ({t_start:g} s)", param_hint="'--t-stop'"
        )


def read_source(path: str, read: ReadOptions, *, lazy: bool = False):
    """Read spikes and apply ``--label`` and ``--units``.

    Returns
    -------
    SpikeTrains or DenseSpikes
        Dense input read with ``lazy=True`` must be closed by the caller.
    """
    from spikerates import io
    from spikerates.spiketrains import DenseSpikes

    data = io.read_spikes(
        path,
        read.from_format,
        dataset=read.dataset,
        values=read.values,
        dt=read.dt,
        lazy=lazy,
        allow_external_data=read.allow_external_data,
    )
    try:
        if read.labels:
            data = _select_labels(data, read.labels, path)
        if read.units is not None:
            data = _select_units(data, read.units, path)
    except BaseException:
        if isinstance(data, DenseSpikes):
            data.close()
        raise
    return data


def _select_labels(data, labels: tuple[str, ...], path: str):
    from spikerates.errors import SpikeDataError

    present = getattr(data, "labels", None)
    if present is None:
        raise SpikeDataError(
            "--label needs unit labels (a Phy folder with cluster_group.tsv or "
            "cluster_KSLabel.tsv); this input has none",
            path=path,
        )
    selected = data.select_labels(list(labels))
    if selected.n_units == 0:
        known = ", ".join(sorted({str(label) for label in present})) or "none"
        raise SpikeDataError(
            f"no unit has label {' or '.join(labels)} (labels: {known})",
            path=path,
            dataset="labels",
        )
    return selected


def _select_units(data, requested: tuple[str, ...], path: str):
    """Keep the units named on the command line (text "3" matches id 3)."""
    return data.select_units(list(requested))


# ----------------------------------------------------------------------------
# The command


@click.command(
    epilog="""\b
Examples:
  spikerates events recording.nwb --to csv
  spikerates events sorting/phy --label good -o good_units.npz
  spikerates events 'sessions/*.h5' -o events/ --to nwb --jobs 2
"""
)
@inputs_argument
@output_options("csv on standard output, npz in a directory.")
@spike_input_options(chunking=False)
def events(inputs: tuple[str, ...], **options: Any) -> None:
    """Convert spikes to spike times per unit (the events layout).

    INPUT is a file, a Phy folder, '-' (standard input) or a glob pattern;
    dense input (t, spikes) gives one spike per count at each bin's time t[k].
    Units keep their order and empty units are kept. A window (--t-start,
    --t-stop) keeps the spikes with t-start < time <= t-stop.
    """
    check_window(options)
    jobs = plan_jobs(
        inputs, options["output"], options["to_format"], options["plot_path"]
    )
    task = functools.partial(_events_task, ReadOptions.from_options(options))
    run_jobs(task, jobs, options["jobs"])


def _events_task(read: ReadOptions, job: Job, report: Report) -> None:
    from spikerates import io
    from spikerates.spiketrains import DenseSpikes, dense_to_events

    data = read_source(job.source, read)
    dt = read.dt if read.dt is not None else DEFAULT_DT
    if isinstance(data, DenseSpikes):
        dt = data.dt
        try:
            trains = dense_to_events(data)
        finally:
            data.close()
    else:
        trains = data
    if read.t_start is not None or read.t_stop is not None:
        trains, n_outside = _window(trains, read.t_start, read.t_stop, dt)
        if n_outside:
            report.note(
                f"{n_outside} spikes outside the window "
                f"({trains.t_start:g}, {trains.t_stop:g}] s were left out"
            )
    io.write_events(job.target, trains, job.out_format)
    n_spikes = sum(len(s) for s in trains.spike_times)
    report.summary(
        f"wrote {job.target}: {n_spikes} spikes of {trains.n_units} units "
        f"({job.out_format})"
    )
    if job.plot_path is not None:
        from spikerates.plot import plot_raster

        plot_raster(trains, path=job.plot_path)


def _window(trains, t_start: float | None, t_stop: float | None, dt: float):
    """The spikes with ``t_start < time <= t_stop`` (seconds), and how many not.

    A bound not given takes the default of the grid rule (SPEC section 4)
    for bins of ``dt`` seconds.
    """
    import dataclasses

    import numpy as np

    grid = trains.grid(dt, t_start=t_start, t_stop=t_stop)
    lo = grid.t_start if t_start is None else float(t_start)
    hi = grid.t_stop if t_stop is None else float(t_stop)
    # As in the binning rule, a spike within 1e-9*dt of a bound belongs to the
    # side a spike exactly on it would.
    tol = 1e-9 * dt
    kept = []
    n_outside = 0
    for times in trains.spike_times:
        a = np.searchsorted(times, lo + tol, side="right")
        b = np.searchsorted(times, hi + tol, side="right")
        kept.append(times[a:b])
        n_outside += len(times) - (b - a)
    windowed = dataclasses.replace(trains, spike_times=kept, t_start=lo, t_stop=hi)
    return windowed, n_outside
