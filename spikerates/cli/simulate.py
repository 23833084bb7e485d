"""``spikerates simulate``: run a spiking population over an input signal."""

from __future__ import annotations

from typing import Any

import click

from spikerates.cli.common import (
    INPUT_SIGNAL,
    POSITIVE,
    Settings,
    check_outputs_are_not_inputs,
    echo_line,
    make_neuron,
    make_population,
    model_attrs,
    neuron_options,
    option_errors,
    output_format,
    output_options,
    pass_settings,
    plot_option,
    progress_bar,
    staged_outputs,
)
from spikerates.names import SPIKING_MODELS

MODELS = SPIKING_MODELS
#: Streams of random numbers derived from --seed (the population uses --seed).
INPUT_STREAM, VOLTAGE_STREAM = 1, 2


@click.command(
    epilog="""\b
Examples:
  spikerates simulate --n-neurons 100 --input white:5 --duration 2 -o sim.npz
  spikerates simulate --model fastlif --input sine:2:0.8 --events -o sim.nwb
  spikerates simulate -o - --to csv | spikerates rates kernel - --from csv
"""
)
@neuron_options(MODELS, "lif")
@click.option(
    "--input",
    "input_signal",
    type=INPUT_SIGNAL,
    default="constant:0.5",
    show_default=True,
    help="Input x per step: constant:V, ramp:FROM:TO, sine:FREQ_HZ[:AMP], "
    "white:CUTOFF_HZ[:RMS] (band-limited noise from --seed), or a file with "
    "columns t,x resampled to the grid.",
)
@click.option(
    "--dt",
    type=POSITIVE,
    default=0.001,
    show_default=True,
    help="Time step in seconds.",
)
@click.option(
    "--duration",
    type=POSITIVE,
    default=1.0,
    show_default=True,
    help="Simulated time in seconds (t = dt, 2 dt, ..., duration).",
)
@click.option(
    "--events",
    "as_events",
    is_flag=True,
    help="Write spike times per neuron (events layout) instead of the dense matrix.",
)
@click.option(
    "--initial-voltage",
    type=click.Choice(("zero", "uniform")),
    default="zero",
    show_default=True,
    help="Membrane voltages at t = 0: all zero, or U(0, 1) draws from --seed.",
)
@output_options("csv on standard output.", batch=False)
@plot_option("The input above a spike raster.")
@pass_settings
@click.pass_context
def simulate(ctx: click.Context, config: Settings, **options: Any) -> None:
    """Simulate a LIF population driven by an input signal.

    Each neuron receives J = gain * encoder * x(t) + bias and emits spikes of
    amplitude/dt. The output holds the dense layout (t, spikes (M, N)) or,
    with --events, spike times per neuron; NPZ and HDF5 outputs also keep
    input (M,), gain, bias and encoders. CSV carries only t and the spikes.
    """
    import numpy as np

    from spikerates import io
    from spikerates import simulate as engine

    target, figure = options["output"], options["plot_path"]
    kind, value = options["input_signal"]
    check_outputs_are_not_inputs(
        {"-o": target, "--plot": figure},
        {
            "--neurons": options["neurons_file"],
            "--input": value if kind == "file" else None,
        },
    )
    fmt = output_format(target, options["to_format"])
    neuron_type = make_neuron(options)
    seed = options["seed"]
    sizes = {
        "events": options["as_events"],
        "max_output_bytes": options["max_output_bytes"],
    }
    with option_errors():
        n_steps = engine.run_steps(options["dt"], options["duration"])
        if options["neurons_file"] is None:
            engine.check_run_size(n_steps, options["n_neurons"], **sizes)
    population = make_population(ctx, neuron_type, options)
    engine.check_run_size(n_steps, population.n_neurons, **sizes)
    with option_errors():
        if kind == "spec":
            seed_input = engine.derived_seed(seed, INPUT_STREAM)
            t, x = engine.make_input(
                value, options["dt"], options["duration"], seed=seed_input
            )
        else:
            t, x = engine.input_from_table(
                io.read_table(value), options["dt"], options["duration"], source=value
            )
    initial_voltage = None
    if options["initial_voltage"] == "uniform":
        initial_voltage = engine.random_initial_voltage(
            population.n_neurons, engine.derived_seed(seed, VOLTAGE_STREAM)
        )
    bar = progress_bar(len(t))
    try:
        spikes = engine.simulate_spikes(
            neuron_type,
            population,
            x,
            options["dt"],
            initial_voltage=initial_voltage,
            events=options["as_events"],
            progress=bar.update if bar is not None else None,
        )
    finally:
        if bar is not None:
            bar.close()

    extra = None
    if fmt not in ("csv", "tsv"):
        extra = {
            "input": x,
            "gain": population.gain,
            "bias": population.bias,
            "encoders": population.encoders,
        }
    attrs = model_attrs(options)
    attrs.update(
        dt=options["dt"], duration=options["duration"], input=_input_name(options)
    )
    with staged_outputs(target, figure) as (data_path, figure_path):
        if options["as_events"]:
            io.write_events(data_path, spikes, fmt, extra=extra, attrs=attrs)
        else:
            io.write_dense(
                data_path,
                spikes.t,
                spikes.spikes,
                spikes.unit_ids,
                fmt,
                extra=extra,
                attrs=attrs,
            )
        if figure_path is not None:
            from spikerates.plot import plot_simulation

            plot_simulation(t, spikes, x, figure_path)
    if config.verbose:
        n_spikes = (
            spikes.n_spikes
            if options["as_events"]
            else int(np.count_nonzero(spikes.spikes))
        )
        echo_line(
            f"spikerates: wrote {target}: {population.n_neurons} {options['model']} "
            f"neurons, {len(t)} steps of {options['dt']:g} s, {n_spikes} spikes",
        )


def _input_name(options: dict[str, Any]) -> str:
    kind, value = options["input_signal"]
    return value if kind == "spec" else f"file:{value}"
