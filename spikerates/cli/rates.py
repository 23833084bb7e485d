"""``spikerates rates kernel`` and ``spikerates rates isi``: firing rates in Hz.

Both stream through :func:`spikerates.pipeline.estimate_rates`: spikes are
read, estimated and written in time chunks of ``--chunk-duration`` seconds,
so memory stays bounded whatever the recording's length.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import click

from spikerates.cli.common import (
    DEFAULT_DT,
    TAU,
    Job,
    ReadOptions,
    Report,
    check_window,
    exact_and_epochs_options,
    inputs_argument,
    output_options,
    plan_jobs,
    progress_bar,
    read_source,
    run_jobs,
    spike_input_options,
    staged_outputs,
    window_note,
)
from spikerates.names import ISI_INTERP_KINDS, KERNEL_KINDS

#: Most time rows kept in memory for a --plot figure (block means).
PLOT_ROWS = 1500


@dataclass(frozen=True)
class RateOptions:
    """Estimator and output options of one rates run (picklable)."""

    read: ReadOptions
    method: str
    estimator: dict[str, Any] = field(default_factory=dict)
    chunk_duration: float = 60.0
    dtype: str = "float64"
    max_output_bytes: int | None = None
    epochs_file: str | None = None


@click.group(
    epilog="""\b
Examples:
  spikerates rates kernel recording.nwb -o rates.h5 --plot rates.png
  spikerates rates isi sorting/phy --label good --interp linear -o isi.npz
"""
)
def rates() -> None:
    """Estimate firing rates (Hz) on a time grid from spikes.

    Output: t (M,), rates (M, N) in Hz and unit_ids (NPZ/HDF5, with the
    estimator's parameters as attributes), or CSV t,<unit>,... . Events are
    put on the grid t[k] = t-start + (k+1) dt; dense input keeps its t.
    """


def _rates_command(method: str, **options: Any) -> None:
    check_window(options)
    jobs = plan_jobs(
        options["inputs"], options["output"], options["to_format"], options["plot_path"]
    )
    if method == "kernel":
        if options["tau"] == "auto" and options["kind"] != "gauss":
            raise click.BadParameter(
                "auto is defined for the gauss kernel only", param_hint="'--tau'"
            )
        if options["pool"] and options["tau"] != "auto":
            raise click.UsageError("--pool goes with --tau auto")
        estimator = {
            "kind": options["kind"],
            "tau": options["tau"],
            "pool": options["pool"],
            "normalize": options["normalize"],
            "causal": options["causal"],
            "border_correction": options["border_correction"],
        }
    else:
        estimator = {"interp": options["interp"], "midpoint": options["midpoint"]}
    if options["exact"] is not None:
        estimator["exact"] = options["exact"]
    params = RateOptions(
        read=ReadOptions.from_options(options),
        method=method,
        estimator=estimator,
        chunk_duration=options["chunk_duration"],
        dtype=options["dtype"],
        max_output_bytes=options["max_output_bytes"],
        epochs_file=options["epochs_file"],
    )
    run_jobs(functools.partial(_rates_task, params), jobs, options["jobs"])


@rates.command(
    epilog="""\b
Examples:
  spikerates rates kernel recording.nwb -o rates.h5 --plot rates.png
  spikerates rates kernel spikes.csv --kind alpha --tau 0.02 --causal > rates.csv
  spikerates simulate -o - | spikerates rates kernel - --from csv
"""
)
@inputs_argument
@output_options("csv on standard output, npz in a directory.")
@spike_input_options(chunking=True)
@click.option(
    "--kind",
    type=click.Choice(KERNEL_KINDS),
    default="gauss",
    show_default=True,
    help="Kernel shape.",
)
@click.option(
    "--tau",
    type=TAU,
    default=0.04,
    show_default=True,
    help="Kernel time constant in seconds (gauss: 2 standard deviations), or "
    "auto (gauss only): per unit, twice the optimal bandwidth of Shimazaki & "
    "Shinomoto (2010) over the window, written to the output's tau attribute "
    "and printed with -v.",
)
@click.option(
    "--pool",
    is_flag=True,
    help="With --tau auto, one bandwidth for all units superimposed.",
)
@click.option(
    "--normalize",
    is_flag=True,
    help="Scale the sampled kernel to a discrete mass of exactly 1.",
)
@click.option(
    "--causal",
    is_flag=True,
    help="Do not shift expon/alpha kernels back by their delay (rates only "
    "depend on past spikes).",
)
@click.option(
    "--border-correction",
    is_flag=True,
    help="Divide rates near the start and end of the recording by the "
    "fraction of the kernel's mass that falls inside it.",
)
@exact_and_epochs_options("--binned")
def kernel(inputs: tuple[str, ...], **options: Any) -> None:
    """Kernel rates: spikes convolved with a smoothing kernel.

    INPUT is a file, a Phy folder, '-' (standard input) or a glob pattern.
    Without --normalize/--causal/--border-correction the result equals
    nengo_extras' rates_kernel.
    """
    _rates_command("kernel", inputs=inputs, **options)


@rates.command(
    epilog="""\b
Examples:
  spikerates rates isi recording.nwb -o isi.h5
  spikerates rates isi sorting/phy --label good --interp linear --midpoint -o isi.npz
  spikerates simulate --to npz -o - | spikerates rates isi - -o isi.h5
"""
)
@inputs_argument
@output_options("csv on standard output, npz in a directory.")
@spike_input_options(chunking=True)
@click.option(
    "--interp",
    type=click.Choice(ISI_INTERP_KINDS),
    default="zero",
    show_default=True,
    help="Interpolation between ISI points (scipy interp1d kind).",
)
@click.option(
    "--midpoint",
    is_flag=True,
    help="Place each 1/ISI point at the middle of its interval instead of its start.",
)
@exact_and_epochs_options("--exact")
def isi(inputs: tuple[str, ...], **options: Any) -> None:
    """ISI rates: the inverse inter-spike interval, interpolated.

    INPUT is a file, a Phy folder, '-' (standard input) or a glob pattern.
    Results equal nengo_extras' rates_isi (which fails where a spike is on
    the first or last step; here those points are merged).
    """
    _rates_command("isi", inputs=inputs, **options)


# ----------------------------------------------------------------------------
# Work for one input (may run in a worker process)


def _rates_task(params: RateOptions, job: Job, report: Report) -> None:
    import numpy as np

    from spikerates import io, pipeline
    from spikerates.spiketrains import DenseSpikes

    read = params.read
    source = read_source(job.source, read, lazy=True, report=report)
    report.count(source)
    opened = source
    dense = isinstance(source, DenseSpikes)
    dt = read.dt if (read.dt is not None or dense) else DEFAULT_DT
    plot_rows = None
    bar = None

    def writer_factory(n_rows: int, unit_ids: np.ndarray, attrs: dict[str, Any]):
        nonlocal plot_rows
        if figure is not None:
            from spikerates.plot import BlockMeans

            plot_rows = BlockMeans(n_rows, len(unit_ids), PLOT_ROWS)
        if bar is not None:
            bar.reset(total=n_rows)
        writer = io.open_matrix_writer(
            target,
            job.out_format,
            name="rates",
            n_rows=n_rows,
            unit_ids=unit_ids,
            dtype=np.dtype(params.dtype),
            attrs=attrs,
        )
        return _Tee(writer, plot_rows)

    estimator = dict(params.estimator)
    pool = estimator.pop("pool", False)
    if params.epochs_file is not None:
        estimator["epochs"] = io.read_intervals(params.epochs_file)
    try:
        with staged_outputs(job.target, job.plot_path) as (target, figure):
            bar = progress_bar(0, enabled=report.progress)
            run = pipeline.estimate_rates
            if estimator.get("tau") == "auto":
                run, source, estimator, dt = _auto_tau(
                    source, dt, read, pool, estimator, report
                )
            summary = run(
                source,
                writer_factory,
                method=params.method,
                dt=dt,
                t_start=read.t_start,
                t_stop=read.t_stop,
                chunk_duration=params.chunk_duration,
                dtype=np.dtype(params.dtype),
                progress=bar.update if bar is not None else None,
                max_output_bytes=params.max_output_bytes,
                **estimator,
            )
            if bar is not None:
                bar.close()
            if plot_rows is not None:
                from spikerates.plot import plot_rates

                t, values = plot_rows.result()
                plot_rates(t, values, source.unit_ids, figure)
    finally:
        if bar is not None:
            bar.close()
        if dense:
            opened.close()
    window_note(report, summary["n_outside"], summary["t_start"], summary["t_stop"])
    for note in summary.get("notes", ()):
        report.note(note)
    report.summary(
        f"wrote {job.target}: {params.method} rates, {summary['n_steps']} steps of "
        f"{summary['dt']:g} s x {summary['n_units']} units ({job.out_format})"
    )


def _auto_tau(source, dt, read: ReadOptions, pool: bool, estimator, report: Report):
    """Choose tau from the data: the runner, source, estimator options and
    dt to use (dense input becomes spike times on its own grid)."""
    import numpy as np

    from spikerates import auto_tau, pipeline
    from spikerates.spiketrains import DenseSpikes, dense_to_events

    if isinstance(source, DenseSpikes):
        dt = source.dt
        source = dense_to_events(source)
    taus = auto_tau.choose_taus(source, dt, read.t_start, read.t_stop, pool=pool)
    shown = ", ".join(
        f"{u}: {t:.4g} s" for u, t in zip(source.unit_ids.tolist(), taus, strict=True)
    )
    report.summary(f"tau auto{' (pooled)' if pool else ''}: {shown}")
    estimator = {k: v for k, v in estimator.items() if k != "tau"}
    if pool or np.all(taus == taus[:1]):
        return pipeline.estimate_rates, source, {**estimator, "tau": float(taus[0])}, dt

    def per_unit(source, writer_factory, *, method, **options):
        return auto_tau.estimate_rates_per_unit(source, writer_factory, taus, **options)

    return per_unit, source, estimator, dt


class _Tee:
    """A matrix writer context that also hands each chunk to the plot's
    block means."""

    def __init__(self, writer, plot_rows) -> None:
        self.writer = writer
        self.plot_rows = plot_rows
        self.inner = None

    def __enter__(self):
        self.inner = self.writer.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self.writer.__exit__(*exc_info)

    def append(self, t_chunk, values) -> None:
        self.inner.append(t_chunk, values)
        if self.plot_rows is not None:
            self.plot_rows.add(t_chunk, values)
