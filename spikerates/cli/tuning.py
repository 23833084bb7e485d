"""``spikerates tuning``: tuning curves of a neuron population."""

from __future__ import annotations

from typing import Any

import click

from spikerates.cli.options import (
    POPULATION_OPTIONS,
    POSITIVE,
    explicit,
    neuron_options,
    output_options,
    plot_option,
)
from spikerates.cli.runner import fail_on_user_error, output_format, settings

MODELS = ("softlif", "lifrate", "lif", "fastlif")
SPIKING_MODELS = ("lif", "fastlif")


# ----------------------------------------------------------------------------
# Neuron type and population from the neuron options (shared with simulate)


def _usage_from_parameter_error(exc: Exception) -> click.UsageError:
    """A library ParameterError about an option, as a usage error (exit 2)."""
    name = getattr(exc, "name", None)
    message = getattr(exc, "message", str(exc))
    if name:
        option = "--" + name.replace("_", "-")
        return click.BadParameter(message, param_hint=f"'{option}'")
    return click.UsageError(message)


def make_neuron(options: dict[str, Any]):
    """The neuron type named by ``--model`` with its parameters."""
    from spikerates.errors import ParameterError
    from spikerates.neurons import make_neuron_type

    try:
        return make_neuron_type(
            options["model"],
            tau_rc=options["tau_rc"],
            tau_ref=options["tau_ref"],
            amplitude=options["amplitude"],
            sigma=options.get("sigma", 1.0),
            min_voltage=options["min_voltage"],
        )
    except ParameterError as exc:
        raise _usage_from_parameter_error(exc) from None


def make_population(ctx: click.Context, neuron_type, options: dict[str, Any]):
    """The population: from ``--neurons FILE`` or drawn from ``--seed``.

    A population option that cannot hold (e.g. a max rate above 1/tau-ref)
    is a usage error; a bad table file is a data error.
    """
    from spikerates import io, simulate
    from spikerates.errors import ParameterError, SpikeDataError

    path = options["neurons_file"]
    if path is not None:
        given = [name for name in POPULATION_OPTIONS if explicit(ctx, name)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise click.UsageError(f"--neurons FILE cannot be combined with {flag}")
        table = io.read_table(path)
        try:
            return simulate.population_from_table(neuron_type, table)
        except SpikeDataError as exc:
            if exc.path is None:
                raise SpikeDataError(
                    exc.message, path=path, dataset=exc.dataset
                ) from exc
            raise
        except ValueError as exc:
            raise SpikeDataError(str(exc), path=path) from exc
    try:
        return simulate.make_population(
            neuron_type,
            options["n_neurons"],
            max_rates=options["max_rates"],
            intercepts=options["intercepts"],
            encoders=options["encoders"],
            seed=options["seed"],
        )
    except ParameterError as exc:
        raise _usage_from_parameter_error(exc) from None


def derived_seed(seed: int | None, stream: int) -> int | None:
    """An independent seed for a second random stream (input, voltages).

    The population keeps ``--seed`` itself, so ``tuning`` and ``simulate``
    with the same seed describe the same neurons.
    """
    if seed is None:
        return None
    import numpy as np

    return int(np.random.SeedSequence((seed, stream)).generate_state(1)[0])


def model_attrs(options: dict[str, Any]) -> dict[str, Any]:
    """Attributes describing the model, saved with NPZ/HDF5 outputs."""
    attrs: dict[str, Any] = {
        "model": options["model"],
        "tau_rc": options["tau_rc"],
        "tau_ref": options["tau_ref"],
        "amplitude": options["amplitude"],
    }
    if options["model"] == "softlif":
        attrs["sigma"] = options["sigma"]
    if options["model"] in SPIKING_MODELS:
        attrs["min_voltage"] = options["min_voltage"]
    if options["neurons_file"] is not None:
        attrs["neurons_file"] = options["neurons_file"]
    elif options["seed"] is not None:
        attrs["seed"] = options["seed"]
    return attrs


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
@click.pass_context
def tuning(ctx: click.Context, **options: Any) -> None:
    """Tuning curves: firing rate (Hz) against input x of each neuron.

    The analytic rate of each neuron at x is the model's rate for the current
    J = gain * encoder * x + bias. For the spiking models (lif, fastlif) the
    rates are also measured by simulating --duration seconds at --dt at each
    x, which shows FastLIF's linearisation error.

    Output (NPZ/HDF5): x (P,), rates (P, N) in Hz, gain, bias, encoders, and
    derivative (P, N) with --derivative, measured (P, N) for spiking models.
    CSV: x, then rates_<i> (and derivative_<i>, measured_<i>) per neuron i.
    """
    if options["x_max"] <= options["x_min"]:
        raise click.BadParameter(
            f"must be greater than --x-min ({options['x_min']:g})",
            param_hint="'--x-max'",
        )
    if options["derivative"] and options["model"] != "softlif":
        raise click.BadParameter(
            f"needs --model softlif (the derivative of {options['model']} is not "
            "defined at its threshold)",
            param_hint="'--derivative'",
        )
    if options["duration"] < options["dt"]:
        raise click.BadParameter(
            f"must be at least --dt ({options['dt']:g} s)", param_hint="'--duration'"
        )
    target = options["output"]
    fmt = output_format(target, options["to_format"])
    neuron_type = make_neuron(options)

    def run() -> None:
        population = make_population(ctx, neuron_type, options)
        _tuning(neuron_type, population, options, target, fmt)

    fail_on_user_error(run)


def _tuning(neuron_type, population, options: dict[str, Any], target: str, fmt):
    import numpy as np

    from spikerates import io

    x = np.linspace(options["x_min"], options["x_max"], options["points"])
    encoders = np.asarray(population.encoders, dtype=np.float64)
    gain = np.asarray(population.gain, dtype=np.float64)
    bias = np.asarray(population.bias, dtype=np.float64)
    # Each neuron sees its own encoded input e * x.
    x_encoded = x[:, None] * encoders[None, :]
    arrays: dict[str, np.ndarray] = {
        "x": x,
        "rates": np.atleast_2d(neuron_type.rates(x_encoded, gain, bias)),
        "gain": gain,
        "bias": bias,
        "encoders": encoders,
    }
    if options["derivative"]:
        # d rate / dx = (d rate / d(e x)) * e
        arrays["derivative"] = neuron_type.derivative(x_encoded, gain, bias) * encoders
    if options["model"] in SPIKING_MODELS:
        from spikerates.simulate import measure_rates

        arrays["measured"] = measure_rates(
            neuron_type,
            gain,
            bias,
            x,
            encoders=encoders,
            dt=options["dt"],
            duration=options["duration"],
        )
    attrs = model_attrs(options)
    attrs["units"] = "Hz"
    if options["model"] in SPIKING_MODELS:
        attrs.update(dt=options["dt"], duration=options["duration"])
    columns: dict[str, np.ndarray] = {"x": x}
    for name in ("rates", "derivative", "measured"):
        if name in arrays:
            for i in range(arrays[name].shape[1]):
                columns[f"{name}_{i}"] = arrays[name][:, i]
    io.write_arrays(target, arrays, fmt, attrs=attrs, csv_columns=columns)
    if settings().verbose:
        n_points, n_neurons = arrays["rates"].shape
        click.echo(
            f"spikerates: wrote {target}: tuning curves of {n_neurons} "
            f"{options['model']} neurons at {n_points} points",
            err=True,
        )
    if options["plot_path"] is not None:
        from spikerates.plot import plot_tuning

        plot_tuning(
            x,
            arrays["rates"],
            options["plot_path"],
            measured=arrays.get("measured"),
            derivative=arrays.get("derivative"),
        )
