"""``spikerates info``: what is in a spike file, unit by unit."""

from __future__ import annotations

from typing import Any

import click

from spikerates.cli.common import (
    analysis_input_options,
    option_errors,
    read_analysis_input,
    table_output_options,
)

#: Provenance keys shown first, in this order, with their labels.
_INFO_KEYS = (
    ("format", "format"),
    ("layout", "layout"),
    ("table", "table"),
    ("id_column", "id column"),
    ("choice", "choice"),
)


@click.command(
    epilog="""\b
Examples:
  spikerates info recording.nwb
  spikerates info sorting/phy --label good
  spikerates info 'sessions/*.nwb' --to tsv -o units.tsv
"""
)
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@table_output_options("readable text; with -o, from the extension")
@analysis_input_options
def info(inputs: tuple[str, ...], **options: Any) -> None:
    """Describe spike files: format, layout, where the units came from, and per
    unit its label, spike count, first and last spike, observed duration and
    mean rate.

    Only spike times are read (a dense file is scanned by row blocks, never
    held as a grid). The observed duration is the unit's observation
    intervals (NWB obs_intervals), else the recording window the file
    states (or --t-start/--t-stop), else the first to the last spike of all
    units; the mean rate counts the spikes inside it.

    Without --to and -o the result is a table to read; --to tsv|csv|json
    (or -o FILE with that extension) gives one row per unit for scripts
    (with a leading 'file' column for several inputs), and JSON also the
    provenance of each file.
    """
    from spikerates.io.unit_tables import (
        format_text_table,
        table_format,
        write_unit_table,
    )
    from spikerates.metrics import concat_tables, summarize

    text = options["to_format"] is None and options["output"] == "-"
    with option_errors():
        fmt = None if text else table_format(options["output"], options["to_format"])
    summaries, provenance, names = [], [], []
    for path in inputs:
        trains = read_analysis_input(path, options)
        summary = summarize(trains)
        summaries.append(summary)
        names.append(path)
        provenance.append(_provenance(path, trains, summary))
    if text:
        chunks = []
        for meta, summary in zip(provenance, summaries, strict=True):
            chunks.append(_describe(meta) + format_text_table(summary))
        click.echo("\n".join(chunks), nl=False)
        return
    table = summaries[0] if len(summaries) == 1 else concat_tables(summaries, names)
    if fmt == "json":
        table.attrs = {"files": provenance}
    write_unit_table(options["output"], table, fmt)


def _provenance(path: str, trains: Any, summary: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"file": path}
    for key, _ in _INFO_KEYS:
        if trains.info.get(key) is not None:
            meta[key] = trains.info[key]
    for key, value in trains.info.items():
        if key not in meta and isinstance(value, str | int | float | bool):
            meta[key] = value
    meta["n_units"] = trains.n_units
    meta["n_spikes"] = trains.n_spikes
    if trains.label_column:
        meta["label_column"] = trains.label_column
    meta.update(summary.attrs)
    return meta


def _describe(meta: dict[str, Any]) -> str:
    lines = [str(meta["file"])]
    shown = [f"{label}: {meta[key]}" for key, label in _INFO_KEYS if key in meta]
    if shown:
        lines.append("  " + "   ".join(shown))
    window = ""
    if "t_start" in meta:
        window = f", window {meta['t_start']:g} .. {meta['t_stop']:g} s"
    lines.append(f"  {meta['n_units']} units, {meta['n_spikes']} spikes{window}")
    return "\n".join(lines) + "\n"
