"""``spikerates tuning``: tuning curves of a neuron population."""

from __future__ import annotations

from typing import Any

import click

from spikerates.cli.common import (
    FINITE,
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
    staged_outputs,
)
from spikerates.names import NEURON_MODELS

MODELS = NEURON_MODELS


# ----------------------------------------------------------------------------
# The command


@click.command(
    epilog="""\b
Examples:
  spikerates tuning --model softlif --n-neurons 20 --seed 1 --derivative -o tuning.npz
  spikerates tuning --model fastlif --max-rates 10:200 --dt 0.001 --plot tuning.png
  spikerates tuning --neurons neurons.csv --to csv > curves.csv
"""
)
@neuron_options(MODELS, "lifrate")
@click.option(
    "--x-min", type=FINITE, default=-1.0, show_default=True, help="First input value."
)
@click.option(
    "--x-max", type=FINITE, default=1.0, show_default=True, help="Last input value."
)
@click.option(
    "--points",
    type=click.IntRange(min=2),
    default=201,
    show_default=True,
    help="Number of input values from x-min to x-max.",
)
@click.option(
    "--derivative",
    is_flag=True,
    help="Also d rate / dx in Hz per unit input (softlif only).",
)
@click.option(
    "--dt",
    type=POSITIVE,
    default=0.001,
    show_default=True,
    help="Time step in seconds of the simulation measuring spiking models' rates.",
)
@click.option(
    "--duration",
    type=POSITIVE,
    default=1.0,
    show_default=True,
    help="Seconds simulated per input value to measure spiking models' rates.",
)
@output_options("csv on standard output.", batch=False)
@plot_option("Curves of rate against x (and measured rates).")
@pass_settings
@click.pass_context
def tuning(ctx: click.Context, config: Settings, **options: Any) -> None:
    """Tuning curves: firing rate (Hz) against input x of each neuron.

    The analytic rate of each neuron at x is the model's rate for the current
    J = gain * encoder * x + bias. For the spiking models (lif, fastlif) the
    rates are also measured by simulating --duration seconds at --dt at each
    x, which shows FastLIF's linearisation error.

    Output (NPZ/HDF5): x (P,), rates (P, N) in Hz, gain, bias, encoders, and
    derivative (P, N) with --derivative, measured (P, N) for spiking models.
    CSV: x, then rates_<i> (and derivative_<i>, measured_<i>) per neuron i.
    """
    from spikerates import io
    from spikerates import tuning as curves_of

    target, figure = options["output"], options["plot_path"]
    check_outputs_are_not_inputs(
        {"-o": target, "--plot": figure}, {"--neurons": options["neurons_file"]}
    )
    fmt = output_format(target, options["to_format"])
    neuron_type = make_neuron(options)
    measure = bool(neuron_type.spiking)
    sizes = {
        "derivative": options["derivative"],
        "measure": measure,
        "dt": options["dt"],
        "duration": options["duration"],
        "max_output_bytes": options["max_output_bytes"],
    }
    with option_errors():
        if options["neurons_file"] is None:
            curves_of.check_size(options["points"], options["n_neurons"], **sizes)
        x = curves_of.input_points(
            options["x_min"], options["x_max"], options["points"]
        )
    population = make_population(ctx, neuron_type, options)
    with option_errors():
        curves_of.check_size(len(x), population.n_neurons, **sizes)
        curves = curves_of.tuning_curves(
            neuron_type,
            population,
            x,
            derivative=options["derivative"],
            measure=measure,
            dt=options["dt"],
            duration=options["duration"],
        )
    attrs = model_attrs(options)
    attrs["units"] = "Hz"
    if curves.measured is not None:
        attrs.update(dt=options["dt"], duration=options["duration"])
    with staged_outputs(target, figure) as (data_path, figure_path):
        io.write_arrays(
            data_path, curves.arrays(), fmt, attrs=attrs, csv_columns=curves.columns()
        )
        if figure_path is not None:
            from spikerates.plot import plot_tuning

            plot_tuning(
                x,
                curves.rates,
                figure_path,
                measured=curves.measured,
                derivative=curves.derivative,
            )
    if config.verbose:
        echo_line(
            f"spikerates: wrote {target}: tuning curves of {curves.n_neurons} "
            f"{options['model']} neurons at {curves.n_points} points",
        )
