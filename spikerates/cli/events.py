"""``spikerates events``: spike times per unit from any spike input."""

from __future__ import annotations

import functools
from typing import Any

import click

from spikerates.cli.common import (
    DEFAULT_DT,
    Job,
    ReadOptions,
    Report,
    check_output_size,
    check_window,
    events_output_bytes,
    inputs_argument,
    output_options,
    plan_jobs,
    read_source,
    run_jobs,
    spike_input_options,
    staged_outputs,
    window_note,
)


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
    --t-stop) keeps the spikes in the bins of its grid: t-start < time <=
    t-stop, with --t-stop moved to the nearest grid time t-start + k dt.
    """
    check_window(options)
    jobs = plan_jobs(
        inputs, options["output"], options["to_format"], options["plot_path"]
    )
    task = functools.partial(
        _events_task, ReadOptions.from_options(options), options["max_output_bytes"]
    )
    run_jobs(task, jobs, options["jobs"])


def _events_task(
    read: ReadOptions, limit: int | None, job: Job, report: Report
) -> None:
    from spikerates import io
    from spikerates.spiketrains import DenseSpikes, dense_to_events

    data = read_source(job.source, read, report=report)
    report.count(data)
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
        grid = trains.grid(dt, t_start=read.t_start, t_stop=read.t_stop)
        windowed = trains.restrict(grid)
        window_note(
            report, trains.n_spikes - windowed.n_spikes, grid.t_start, grid.t_stop
        )
        trains = windowed
    check_output_size(
        events_output_bytes(trains, job.out_format),
        limit,
        what=f"{trains.n_spikes} spike times",
        remedies="or select units (--units, --label) or a window (--t-start/--t-stop)",
    )
    with staged_outputs(job.target, job.plot_path) as (target, figure):
        io.write_events(target, trains, job.out_format)
        if figure is not None:
            from spikerates.plot import plot_raster

            plot_raster(trains, path=figure)
    report.summary(
        f"wrote {job.target}: {trains.n_spikes} spikes of {trains.n_units} units "
        f"({job.out_format})"
    )
