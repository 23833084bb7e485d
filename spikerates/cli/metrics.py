"""``spikerates metrics``: per-unit quality and variability metrics."""

from __future__ import annotations

from typing import Any

import click

from spikerates.cli.common import (
    POSITIVE,
    analysis_input_options,
    option_errors,
    plot_option,
    read_analysis_input,
    table_output_options,
)


@click.command(
    epilog="""\b
Metrics (per unit, over its observed time T with n spikes and intervals I):
  num_spikes            n, the spikes inside the observed time
  firing_rate           n / T, Hz
  presence_ratio        fraction of full --presence-bin bins holding a spike
                        (SpikeInterface's definition; NaN if no full bin)
  isi_violations_count  v, intervals shorter than --isi-threshold
  isi_violations_ratio  v T / (2 n^2 (isi-threshold - min-isi))
                        (Hill et al. 2011, as SpikeInterface computes it)
  cv                    std(I) / mean(I), population std
  cv2                   mean of 2 |I[i+1] - I[i]| / (I[i+1] + I[i])
                        (Holt et al. 1996)
  lv                    mean of 3 ((I[i] - I[i+1]) / (I[i] + I[i+1]))^2
                        (Shinomoto et al. 2003)
  fano_factor           var / mean of the counts in full --fano-window windows
A metric without enough spikes (cv, cv2, lv: three) is NaN. Observed time:
obs_intervals, else the window the file states (or --t-start/--t-stop), else
the first to the last spike of all units; intervals are taken within each
observation interval only.

\b
Examples:
  spikerates metrics sorting/phy -o sorting/phy/cluster_metrics.tsv
  spikerates metrics 'sessions/*.nwb' -o metrics.csv --plot metrics.png
  spikerates metrics recording.nwb --to json --presence-bin 30
"""
)
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@table_output_options("tsv")
@click.option(
    "--presence-bin",
    type=POSITIVE,
    default=60.0,
    show_default=True,
    help="Bin width of presence_ratio, seconds.",
)
@click.option(
    "--isi-threshold",
    type=POSITIVE,
    default=0.0015,
    show_default=True,
    help="Refractory threshold of the ISI violations, seconds.",
)
@click.option(
    "--min-isi",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="Shortest interval the recording system can produce, seconds.",
)
@click.option(
    "--fano-window",
    type=POSITIVE,
    default=1.0,
    show_default=True,
    help="Counting window of fano_factor, seconds.",
)
@plot_option("The distribution of each metric over units.")
@analysis_input_options
def metrics(inputs: tuple[str, ...], **options: Any) -> None:
    """Per-unit metrics from spike times alone: one row per unit with a
    cluster_id column, so that a TSV drops into a Phy folder as
    cluster_<name>.tsv. Several inputs give one table with a leading 'file'
    column. Formats: tsv, csv, json, npz, hdf5 (from --to or the extension).
    """
    from spikerates.io.unit_tables import table_format, write_unit_table
    from spikerates.metrics import compute_metrics, concat_tables

    with option_errors():
        fmt = table_format(options["output"], options["to_format"])
    tables = []
    for path in inputs:
        trains = read_analysis_input(path, options)
        with option_errors():
            tables.append(
                compute_metrics(
                    trains,
                    presence_bin=options["presence_bin"],
                    isi_threshold=options["isi_threshold"],
                    min_isi=options["min_isi"],
                    fano_window=options["fano_window"],
                )
            )
    table = tables[0] if len(tables) == 1 else concat_tables(tables, list(inputs))
    write_unit_table(options["output"], table, fmt)
    if options["plot_path"] is not None:
        from spikerates.plot_metrics import plot_metric_distributions

        plot_metric_distributions(table, options["plot_path"])
