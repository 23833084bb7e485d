"""``spikerates simulate``: run a spiking population over an input signal."""

from __future__ import annotations

from typing import Any

import click

from spikerates.cli.options import (
    INPUT_SIGNAL,
    POSITIVE,
    neuron_options,
    output_options,
    plot_option,
)
from spikerates.cli.runner import (
    fail_on_user_error,
    output_format,
    settings,
    stderr_is_terminal,
)
from spikerates.cli.tuning import (
    _usage_from_parameter_error,
    derived_seed,
    make_neuron,
    make_population,
    model_attrs,
)

MODELS = ("lif", "fastlif")
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
@click.pass_context
def simulate(ctx: click.Context, **options: Any) -> None:
    """Simulate a LIF population driven by an input signal.

    Each neuron receives J = gain * encoder * x(t) + bias and emits spikes of
    amplitude/dt. The output holds the dense layout (t, spikes (M, N)) or,
    with --events, spike times per neuron; NPZ and HDF5 outputs also keep
    input (M,), gain, bias and encoders. CSV carries only t and the spikes.
    """
    n_steps = round(options["duration"] / options["dt"])
    if n_steps < 1:
        raise click.BadParameter(
            f"must be at least --dt ({options['dt']:g} s)", param_hint="'--duration'"
        )
    target = options["output"]
    fmt = output_format(target, options["to_format"])
    neuron_type = make_neuron(options)
    kind, value = options["input_signal"]

    def run() -> None:
        population = make_population(ctx, neuron_type, options)
        t, x = _input_signal(kind, value, options, n_steps)
        _simulate(neuron_type, population, t, x, options, target, fmt)

    fail_on_user_error(run)


def _input_signal(kind: str, value: str, options: dict[str, Any], n_steps: int):
    """The grid t = dt*(1..M) and the input x on it."""
    import numpy as np

    from spikerates import io
    from spikerates import simulate as engine
    from spikerates.errors import ParameterError, SpikeDataError

    dt, duration = options["dt"], options["duration"]
    if kind == "spec":
        try:
            return engine.make_input(
                value, dt, duration, seed=derived_seed(options["seed"], INPUT_STREAM)
            )
        except ParameterError as exc:
            raise _usage_from_parameter_error(exc) from None
    table = io.read_table(value)
    for column in ("t", "x"):
        if column not in table:
            raise SpikeDataError(
                f"no column {column!r} (an input file needs columns t,x; found "
                f"{', '.join(table) or 'none'})",
                path=value,
                dataset=column,
            )
    t = dt * np.arange(1, n_steps + 1)
    try:
        x = engine.resample_input(table["t"], table["x"], t)
    except ParameterError as exc:
        raise SpikeDataError(exc.message, path=value) from None
    return t, x


def _simulate(neuron_type, population, t, x, options, target: str, fmt: str) -> None:
    import numpy as np

    from spikerates import io
    from spikerates import simulate as engine
    from spikerates.spiketrains import SpikeTrains

    gain = np.asarray(population.gain, dtype=np.float64)
    bias = np.asarray(population.bias, dtype=np.float64)
    encoders = np.asarray(population.encoders, dtype=np.float64)
    n_neurons = len(gain)
    dt = options["dt"]
    initial_voltage = None
    if options["initial_voltage"] == "uniform":
        initial_voltage = engine.random_initial_voltage(
            n_neurons, derived_seed(options["seed"], VOLTAGE_STREAM)
        )

    as_events = options["as_events"]
    spikes = None if as_events else np.empty((len(t), n_neurons), dtype=np.float64)
    # With --events only the spike times are kept, so memory grows with the
    # number of spikes rather than with duration x neurons.
    pieces: list[list[np.ndarray]] = [[] for _ in range(n_neurons)]
    amplitude_per_spike = options["amplitude"] / dt
    config = settings()
    from tqdm import tqdm

    bar = tqdm(
        total=len(t),
        unit="step",
        file=click.get_text_stream("stderr"),
        disable=config.quiet or not stderr_is_terminal(),
        leave=False,
    )
    k0 = 0
    with bar:
        for t_chunk, s_chunk in engine.iter_simulate(
            neuron_type,
            gain,
            bias,
            x,
            dt=dt,
            encoders=encoders,
            initial_voltage=initial_voltage,
        ):
            k1 = k0 + len(t_chunk)
            if spikes is not None:
                spikes[k0:k1] = s_chunk
            else:
                rows, units = np.nonzero(s_chunk)
                counts = np.rint(s_chunk[rows, units] / amplitude_per_spike).astype(int)
                order = np.argsort(units, kind="stable")
                rows, units, counts = rows[order], units[order], counts[order]
                bounds = np.searchsorted(units, np.arange(n_neurons + 1))
                for j in range(n_neurons):
                    a, b = bounds[j], bounds[j + 1]
                    if b > a:
                        pieces[j].append(np.repeat(t_chunk[rows[a:b]], counts[a:b]))
            bar.update(len(t_chunk))
            k0 = k1

    unit_ids = np.arange(n_neurons)
    extra = None
    if fmt not in ("csv", "tsv"):
        extra = {
            "input": np.asarray(x),
            "gain": gain,
            "bias": bias,
            "encoders": encoders,
        }
    attrs = model_attrs(options)
    attrs.update(dt=dt, duration=options["duration"], input=_input_name(options))
    if as_events:
        trains = SpikeTrains(
            spike_times=[
                np.concatenate(p) if p else np.empty(0, dtype=np.float64)
                for p in pieces
            ],
            unit_ids=unit_ids,
            t_start=float(t[0] - dt),
            t_stop=float(t[-1]),
            source="simulate",
        )
        io.write_events(target, trains, fmt, extra=extra, attrs=attrs)
        n_spikes = sum(len(s) for s in trains.spike_times)
    else:
        io.write_dense(target, t, spikes, unit_ids, fmt, extra=extra, attrs=attrs)
        n_spikes = int(np.count_nonzero(spikes))
    if config.verbose:
        click.echo(
            f"spikerates: wrote {target}: {n_neurons} {options['model']} neurons, "
            f"{len(t)} steps of {dt:g} s, {n_spikes} spikes",
            err=True,
        )
    if options["plot_path"] is not None:
        from spikerates.plot import plot_simulation

        raster = trains if as_events else engine_dense(t, spikes, unit_ids)
        plot_simulation(t, raster, x, options["plot_path"], unit_ids=unit_ids)


def engine_dense(t, spikes, unit_ids):
    """The simulated matrix as the data model's dense spikes (for plotting)."""
    from spikerates.spiketrains import DenseSpikes

    return DenseSpikes(
        t=t, spikes=spikes, unit_ids=unit_ids, values="amplitude", source="simulate"
    )


def _input_name(options: dict[str, Any]) -> str:
    kind, value = options["input_signal"]
    return value if kind == "spec" else f"file:{value}"
