"""``spikerates rates count``: spike counts per bin on the grid, streamed."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import click

from spikerates.cli.common import (
    DEFAULT_DT,
    Job,
    ReadOptions,
    Report,
    check_output_size,
    check_window,
    inputs_argument,
    option_errors,
    output_options,
    plan_jobs,
    progress_bar,
    read_source,
    run_jobs,
    spike_input_options,
    window_note,
)

#: Most time rows kept in memory for a --plot figure (block means).
PLOT_ROWS = 1500


@dataclass(frozen=True)
class CountOptions:
    """Options of one count run (picklable)."""

    read: ReadOptions
    mode: str
    chunk_duration: float
    dtype: str
    max_output_bytes: int | None = None


@click.command(
    epilog="""\b
Examples:
  spikerates rates count recording.nwb --dt 0.01 -o counts.h5
  spikerates rates count sorting/phy --label good --dt 0.05 --as rate > rates.csv
"""
)
@inputs_argument
@output_options("csv on standard output, npz in a directory.")
@spike_input_options(chunking=True)
@click.option(
    "--as",
    "mode",
    type=click.Choice(("counts", "rate")),
    default="counts",
    show_default=True,
    help="Spikes per bin, or spikes per bin over dt (Hz).",
)
def count(inputs: tuple[str, ...], **options: Any) -> None:
    """Binned spike counts: the spikes in each bin (t[k] - dt, t[k]] of the
    grid t[k] = t-start + (k+1) dt, or with --as rate the counts over dt.

    Dense input keeps its own grid. The output is streamed in chunks of
    --chunk-duration seconds, so memory stays bounded; its layout is that of
    the rates commands (t, counts or rates, unit_ids). Counts are integers
    (--dtype applies to --as rate), unless a unit has observation intervals:
    then the values are floating point with NaN where it is not observed.
    """
    check_window(options)
    jobs = plan_jobs(
        inputs,
        options["output"],
        options["to_format"],
        options["plot_path"],
    )
    params = CountOptions(
        read=ReadOptions.from_options(options),
        mode=options["mode"],
        chunk_duration=options["chunk_duration"],
        dtype=options["dtype"],
        max_output_bytes=options["max_output_bytes"],
    )
    run_jobs(functools.partial(_count_task, params), jobs, options["jobs"])


def _count_task(params: CountOptions, job: Job, report: Report) -> None:
    import numpy as np

    from spikerates import io
    from spikerates.counts import plan_counts
    from spikerates.spiketrains import DenseSpikes

    read = params.read
    source = read_source(job.source, read, lazy=True)
    report.count(source)
    dense = isinstance(source, DenseSpikes)
    dt = read.dt if (read.dt is not None or dense) else DEFAULT_DT
    try:
        with option_errors():
            plan = plan_counts(
                source,
                dt=dt,
                t_start=read.t_start,
                t_stop=read.t_stop,
                mode=params.mode,
            )
        dtype = plan.dtype
        if params.mode == "rate":
            dtype = np.dtype(params.dtype)
        check_output_size(
            plan.n_steps * plan.n_units * np.dtype(dtype).itemsize,
            params.max_output_bytes,
            what=f"{plan.n_steps} steps x {plan.n_units} units of counts",
            remedies="or choose a coarser --dt or a shorter --t-start/--t-stop",
        )
        steps = max(1, int(round(params.chunk_duration / plan.grid.dt)))
        steps = min(steps, max(1, (1 << 20) // max(1, plan.n_units)))
        attrs = {**plan.attrs, "source": job.source}
        plot_rows = None
        if job.plot_path is not None:
            from spikerates.plot import BlockMeans

            plot_rows = BlockMeans(plan.n_steps, plan.n_units, PLOT_ROWS)
        bar = progress_bar(plan.n_steps, enabled=report.progress)
        name = "counts" if params.mode == "counts" else "rates"
        with io.open_matrix_writer(
            job.target,
            job.out_format,
            name=name,
            n_rows=plan.n_steps,
            unit_ids=plan.unit_ids,
            dtype=dtype,
            attrs=attrs,
        ) as writer:
            for t_chunk, values in plan.chunks(steps):
                writer.append(t_chunk, values.astype(dtype, copy=False))
                if plot_rows is not None:
                    plot_rows.add(t_chunk, values)
                if bar is not None:
                    bar.update(t_chunk.size)
        if bar is not None:
            bar.close()
    finally:
        if dense:
            source.close()
    window_note(report, plan.n_outside, plan.grid.t_start, plan.grid.t_stop)
    report.summary(
        f"wrote {job.target}: {params.mode}, {plan.n_steps} steps of "
        f"{plan.grid.dt:g} s x {plan.n_units} units ({job.out_format})"
    )
    if plot_rows is not None:
        from spikerates.plot import plot_rates

        t, values = plot_rows.result()
        plot_rates(t, values, plan.unit_ids, job.plot_path)
