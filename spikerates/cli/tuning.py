"""``spikerates tuning``: tuning curves of a neuron population."""

from __future__ import annotations

from typing import Any

import click

from spikerates.cli.common import (
    POSITIVE,
    Settings,
    make_neuron,
    make_population,
    model_attrs,
    neuron_options,
    option_errors,
    output_format,
    output_options,
    pass_settings,
    plot_option,
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
    "--x-min", type=float, default=-1.0, show_default=True, help="First input value."
)
@click.option(
    "--x-max", type=float, default=1.0, show_default=True, help="Last input value."
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

    target = options["output"]
    fmt = output_format(target, options["to_format"])
    neuron_type = make_neuron(options)
    with option_errors():
        x = curves_of.input_points(
            options["x_min"], options["x_max"], options["points"]
        )
    population = make_population(ctx, neuron_type, options)
    with option_errors():
        curves = curves_of.tuning_curves(
            neuron_type,
            population,
            x,
            derivative=options["derivative"],
            dt=options["dt"],
            duration=options["duration"],
        )
    attrs = model_attrs(options)
    attrs["units"] = "Hz"
    if curves.measured is not None:
        attrs.update(dt=options["dt"], duration=options["duration"])
    io.write_arrays(
        target, curves.arrays(), fmt, attrs=attrs, csv_columns=curves.columns()
    )
    if config.verbose:
        click.echo(
            f"spikerates: wrote {target}: tuning curves of {curves.n_neurons} "
            f"{options['model']} neurons at {curves.n_points} points",
            err=True,
        )
    if options["plot_path"] is not None:
        from spikerates.plot import plot_tuning

        plot_tuning(
            x,
            curves.rates,
            options["plot_path"],
            measured=curves.measured,
            derivative=curves.derivative,
        )
