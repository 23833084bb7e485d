"""The ``spikerates`` group: global options, help, error reporting, batches,
and a check that every option of every command has an effect.

Driven in-process through click's CliRunner.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import click
import h5py
import nengo_extras.neurons as reference
import numpy as np
import pytest

from spikerates import __version__
from spikerates.cli import cli as command_group

COMMANDS = [
    ["events"],
    ["rates", "kernel"],
    ["rates", "isi"],
    ["rates", "count"],
    ["tuning"],
    ["simulate"],
    ["info"],
    ["metrics"],
    ["psth"],
]


# ----------------------------------------------------------------------------
# Global options and help


def test_version(cli):
    result = cli.run(["--version"])
    assert result.exit_code == 0
    assert __version__ in result.stdout


@pytest.mark.parametrize("command", [[], ["rates"], *COMMANDS])
def test_help(cli, command):
    result = cli.run([*command, "--help"])
    assert result.exit_code == 0
    assert "Usage: " in result.stdout
    assert "Examples:" in result.stdout
    if command in COMMANDS:
        assert "[default:" in result.stdout


def test_no_command_shows_usage(cli):
    result = cli.run([])
    assert result.exit_code == 2
    assert result.stdout.startswith("Usage: ")
    assert "Commands:" in result.stdout


def test_verbose_and_quiet_conflict(cli):
    cli.assert_usage_error(cli.run(["-v", "-q", "tuning"]), "-v and -q")


# ----------------------------------------------------------------------------
# Errors: spikerates' own types are the user's mistakes, anything else a bug


def test_missing_input(cli, tmp_path):
    out = tmp_path / "out.npz"
    result = cli.run(["rates", "kernel", tmp_path / "nope.npz", "-o", out])
    cli.assert_one_line_error(result, "nope.npz")
    assert cli.entries(tmp_path) == []


def test_glob_without_match(cli, tmp_path):
    result = cli.run(["events", str(tmp_path / "*.npz"), "-o", tmp_path / "out.csv"])
    cli.assert_one_line_error(result, "*.npz", "no file matches")


@pytest.mark.parametrize(
    "name,content,fragments",
    [
        ("junk.npz", b"this is not a zip file", ["junk.npz"]),
        ("junk.h5", b"\x89HDF\r\n\x1a\n garbage", ["junk.h5"]),
        ("bad.csv", b"t,0,1\n0.001,0,1000\n0.002,x,0\n", ["bad.csv"]),
        ("empty.csv", b"", ["empty.csv"]),
        ("nonuniform.csv", b"t,0\n0.001,0\n0.002,1000\n0.004,0\n", ["nonuniform.csv"]),
        (
            "ambiguous.csv",
            b"t,0\n0.001,0\n0.002,0.5\n0.003,0\n",
            ["ambiguous.csv", "values"],
        ),
    ],
)
@pytest.mark.parametrize("command", [["events"], ["rates", "kernel"], ["rates", "isi"]])
def test_bad_data(cli, tmp_path, name, content, fragments, command):
    data_dir = tmp_path / "in"
    data_dir.mkdir()
    path = data_dir / name
    path.write_bytes(content)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "result.h5"
    result = cli.run([*command, path, "-o", out, "--plot", out_dir / "f.png"])
    cli.assert_one_line_error(result, *fragments)
    assert cli.entries(out_dir) == []


def test_unwritable_output(cli, tmp_path, dense_files):
    target = tmp_path / "missing_dir" / "out.npz"
    result = cli.run(["rates", "kernel", dense_files["npz"], "-o", target])
    cli.assert_one_line_error(result, "missing_dir")


def test_verbose_prints_traceback(cli, tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"nope")
    result = cli.run(["-v", "events", path])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("spikerates: error: ")
    result = cli.run(["-v", "tuning", "--neurons", path])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr


def test_verbose_summary(cli, tmp_path, dense_files):
    out = tmp_path / "r.npz"
    result = cli.run(["-v", "rates", "kernel", dense_files["npz"], "-o", out])
    assert result.exit_code == 0
    assert "wrote" in result.stderr and "600 steps" in result.stderr


def _break(monkeypatch, module: str, name: str, exc: Exception) -> None:
    """Make ``module.name`` raise ``exc`` when called."""
    import importlib

    def broken(*args, **kwargs):
        raise exc

    monkeypatch.setattr(importlib.import_module(module), name, broken)


INTERNAL_CASES = [
    (["events", "{npz}"], "spikerates.io", "write_events"),
    (["rates", "kernel", "{npz}"], "spikerates.pipeline", "estimate_rates"),
    (["tuning"], "spikerates.tuning", "tuning_curves"),
    (["simulate"], "spikerates.simulate", "simulate_spikes"),
]


@pytest.mark.parametrize("args,module,name", INTERNAL_CASES)
def test_internal_error_is_one_line(
    cli, monkeypatch, tmp_path, dense_files, args, module, name
):
    """A bug (here a ValueError) is not reported as the user's mistake."""
    _break(monkeypatch, module, name, ValueError("an invariant broke\nline two"))
    args = [a.format(npz=dense_files["npz"]) for a in args]
    result = cli.run([*args, "-o", tmp_path / "o.npz"])
    assert result.exit_code == 1
    lines = cli.error_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("spikerates: internal error: ")
    assert lines[0].endswith(
        "ValueError: an invariant broke line two (rerun with -v for the traceback)"
    )
    assert "Traceback" not in result.stderr
    assert cli.entries(tmp_path) == []
    verbose = cli.run(["-v", *args, "-o", tmp_path / "o.npz"])
    assert verbose.exit_code == 1
    assert "Traceback (most recent call last)" in verbose.stderr
    last = verbose.stderr.strip().splitlines()[-1]
    assert last.startswith("spikerates: internal error: ")
    assert "rerun" not in last


def test_user_errors_of_the_library_are_one_line(cli, monkeypatch, dense_files):
    from spikerates.errors import ParameterError, ResourceLimitError

    for exc in (ParameterError("tau", "too long"), ResourceLimitError("too big")):
        _break(monkeypatch, "spikerates.pipeline", "estimate_rates", exc)
        result = cli.run(["rates", "kernel", dense_files["npz"]])
        line = cli.assert_one_line_error(result, dense_files["npz"], str(exc))
        assert "internal" not in line


# ----------------------------------------------------------------------------
# Many inputs


@pytest.fixture()
def batch_inputs(files, tmp_path, dense_spikes):
    t, spikes = dense_spikes
    folder = tmp_path / "in"
    folder.mkdir()
    paths = [
        files.write_dense(folder / "a.npz", t, spikes),
        files.write_dense(folder / "b.h5", t, spikes[:, :2]),
        files.write_dense(folder / "c.csv", t, spikes[:, 1:]),
    ]
    return folder, paths


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_batch_outputs(cli, files, tmp_path, dense_spikes, batch_inputs, jobs):
    t, spikes = dense_spikes
    folder, paths = batch_inputs
    out = tmp_path / "out"
    args = ["rates", "kernel", *paths, "-o", out, "--to", "h5", "--jobs", jobs]
    result = cli.run(args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert cli.entries(out) == ["a.h5", "b.h5", "c.h5"]
    expected = reference.rates_kernel(t, spikes)
    cli.assert_same_rates(files.read_rates(out / "a.h5")[1], expected)
    cli.assert_same_rates(files.read_rates(out / "b.h5")[1], expected[:, :2])
    cli.assert_same_rates(files.read_rates(out / "c.h5")[1], expected[:, 1:])


def test_batch_glob_and_plot(cli, tmp_path, batch_inputs):
    folder, _ = batch_inputs
    out = tmp_path / "ev"
    fig = tmp_path / "raster.png"
    result = cli.run(["events", str(folder / "*"), "-o", out, "--plot", fig])
    assert result.exit_code == 0, result.stderr
    assert cli.entries(out) == ["a.npz", "b.npz", "c.npz"]
    for stem in "abc":
        assert (tmp_path / f"raster-{stem}.png").exists()


def test_batch_one_bad_input(cli, tmp_path, batch_inputs):
    folder, paths = batch_inputs
    bad = folder / "bad.npz"
    bad.write_bytes(b"broken")
    out = tmp_path / "out"
    args = ["rates", "isi", paths[0], str(bad), paths[2], "-o", out, "--jobs", "2"]
    result = cli.run(args)
    assert result.exit_code == 1
    lines = cli.error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("spikerates: error: ")
    assert "bad.npz" in lines[0]
    assert cli.entries(out) == ["a.npz", "c.npz"]


# ----------------------------------------------------------------------------
# Every option of every command has an effect
#
# Each option has an example: a command line with the option and a reference
# command line without it (or with another value). Both must succeed and
# their outputs (standard output and written files, read back as numbers)
# must differ -- or be the same where the option must not change the result
# (a format given explicitly, chunking, parallel jobs). A new option without
# an example fails test_every_option_has_an_example.


@dataclass(frozen=True)
class Example:
    """An option's example: ``args`` against ``ref``, and what to expect."""

    args: tuple[str, ...]
    ref: tuple[str, ...]
    # differs | same | moved | figure | refused | stdout | quiet | stderr:<text>
    expect: str = "differs"
    extra: tuple[str, ...] = field(default=())


def _ex(base: list[str], option: list[str], expect: str = "differs", ref=None):
    ref = base if ref is None else ref
    return Example(tuple(base + option), tuple(ref), expect)


EVENTS = ["events", "{dense}"]
KERNEL = ["rates", "kernel", "{dense}"]
ISI = ["rates", "isi", "{dense}"]
TUNING = ["tuning", "--n-neurons", "3", "--seed", "1", "--points", "11"]
TUNING_LIF = [*TUNING, "--model", "lif", "--duration", "0.2"]
SIMULATE = ["simulate", "--n-neurons", "3", "--seed", "1", "--duration", "0.2"]


def _spike_examples(command: list[str], base: list[str]) -> dict:
    """Examples of the options shared by the commands reading spikes."""
    return {
        "--output": _ex(base, ["-o", "{tmp}/out.csv"], "moved"),
        "--to": _ex(base, ["--to", "npz"]),
        "--from": _ex([*command, "{dat}", "--from", "npz"], [], "same", ref=base),
        "--dt": _ex([*command, "{events}", "--t-start", "0"], ["--dt", "0.004"]),
        "--t-start": _ex(base, ["--t-start", "0.1"]),
        "--t-stop": _ex(base, ["--t-stop", "0.3"]),
        "--units": _ex(base, ["--units", "1,3"]),
        "--label": _ex([*command, "{phy}"], ["--label", "good"]),
        "--dataset": _ex(
            [*command, "{two}", "--dataset", "/a/spikes"], ["--dataset", "/b/spikes"]
        ),
        "--values": _ex([*command, "{halves}"], ["--values", "counts"]),
        # Refusing external data is tested in test_hostile.py; on a file
        # without any, the flag changes nothing.
        "--allow-external-data": _ex(base, ["--allow-external-data"], "same"),
        "--jobs": _ex(
            [*command, "{dense}", "{events}", "-o", "{tmp}/d", "--to", "csv"],
            ["--jobs", "2"],
            "same",
        ),
        "--engine": _ex(
            [*command, "{dense}", "{events}", "-o", "{tmp}/d", "--to", "csv"],
            ["--engine", "local"],
            "same",
        ),
        "--scheduler": _ex(
            [*command, "{dense}", "{events}", "-o", "{tmp}/d", "--to", "csv"],
            ["--scheduler", "{scheduler}"],
            "same",
        ),
        "--shard": _ex(
            [*command, "{dense}", "{events}", "-o", "{tmp}/d", "--to", "csv"],
            ["--shard", "2/2"],
        ),
        # nothing to skip in a fresh folder: the same outputs
        "--skip-existing": _ex(
            [*command, "{dense}", "{events}", "-o", "{tmp}/d", "--to", "csv"],
            ["--skip-existing"],
            "same",
        ),
        "--log": _ex(base, ["--log", "{tmp}/run.jsonl"]),
        "--plot": _ex(base, ["--plot", "{tmp}/f.png"], "figure"),
        "--max-output-size": _ex(base, ["--max-output-size", "100"], "refused"),
        "--id-column": _ex([*command, "{nwb}"], ["--id-column", "quality"]),
        "--segment": _ex(
            [*command, "{segments}", "--segment", "0"], ["--segment", "1"]
        ),
    }


def _rates_examples(command: list[str]) -> dict:
    base = [*command, "{dense}"]
    examples = _spike_examples(command, base)
    examples["--chunk-duration"] = _ex(base, ["--chunk-duration", "0.07"], "same")
    examples["--dtype"] = _ex(base, ["--dtype", "float32"])
    if command[-1] in ("kernel", "isi"):
        on_events = [*command, "{events}", "--t-start", "0"]
        examples["--epochs"] = _ex(on_events, ["--epochs", "{epochs}"])
        # kernel rates are binned by default, ISI rates of spike times exact
        flag = "--exact" if command[-1] == "kernel" else "--binned"
        examples["--exact"] = _ex(on_events, [flag])
    return examples


def _neuron_examples(base: list[str], spiking_base: list[str]) -> dict:
    return {
        "--tau-rc": _ex(base, ["--tau-rc", "0.05"]),
        "--tau-ref": _ex(base, ["--tau-ref", "0.001"]),
        "--amplitude": _ex(base, ["--amplitude", "0.5"]),
        "--min-voltage": _ex(spiking_base, ["--min-voltage", "-1"]),
        "--n-neurons": _ex(base, ["--n-neurons", "4"]),
        "--max-rates": _ex(base, ["--max-rates", "100"]),
        "--intercepts": _ex(base, ["--intercepts", "0"]),
        "--encoders": _ex(base, ["--encoders", "positive"]),
        "--seed": _ex(base, ["--seed", "2"]),
        "--neurons": _ex([base[0], "--neurons", "{neurons}"], [], ref=base),
        "--output": _ex(base, ["-o", "{tmp}/out.csv"], "moved"),
        "--to": _ex(base, ["--to", "npz"]),
        "--plot": _ex(base, ["--plot", "{tmp}/f.png"], "figure"),
        "--max-output-size": _ex(base, ["--max-output-size", "100"], "refused"),
    }


OPTION_EXAMPLES: dict[tuple[tuple[str, ...], str], Example] = {}
_events = _spike_examples(["events"], EVENTS)
# events are not binned: --dt sets the grid --t-stop snaps to (0.25 s at the
# default 1 ms, 0.35 s at 0.3 s)
_events["--dt"] = _ex(
    ["events", "{events}", "--t-start", "0.05", "--t-stop", "0.2505"],
    ["--dt", "0.3"],
)
for _name, _example in _events.items():
    OPTION_EXAMPLES[("events",), _name] = _example
_kernel = _rates_examples(["rates", "kernel"])
_kernel.update(
    {
        "--kind": _ex(KERNEL, ["--kind", "alpha"]),
        "--tau": _ex(KERNEL, ["--tau", "0.02"]),
        "--normalize": _ex(
            [*KERNEL, "--kind", "expon", "--tau", "0.005"], ["--normalize"]
        ),
        "--causal": _ex([*KERNEL, "--kind", "expon"], ["--causal"]),
        "--border-correction": _ex(KERNEL, ["--border-correction"]),
    }
)
_isi = _rates_examples(["rates", "isi"])
_isi.update(
    {
        # fractional values are amplitudes only when told so; as amplitudes
        # they are the same spikes as the 1/dt values of "halves"
        "--values": _ex(
            ["rates", "isi", "{fractional}"],
            ["--values", "amplitude"],
            "same",
            ref=["rates", "isi", "{halves}"],
        ),
        "--interp": _ex(ISI, ["--interp", "linear"]),
        "--midpoint": _ex(ISI, ["--midpoint"]),
    }
)
_tuning = _neuron_examples(TUNING, TUNING_LIF)
_tuning.update(
    {
        "--model": _ex(TUNING, ["--model", "softlif"]),
        "--sigma": _ex([*TUNING, "--model", "softlif"], ["--sigma", "0.3"]),
        "--x-min": _ex(TUNING, ["--x-min", "-0.5"]),
        "--x-max": _ex(TUNING, ["--x-max", "0.5"]),
        "--points": _ex(TUNING, ["--points", "5"]),
        "--derivative": _ex([*TUNING, "--model", "softlif"], ["--derivative"]),
        "--dt": _ex(TUNING_LIF, ["--dt", "0.005"]),
        # the voltage floor never matters at constant input: it is recorded
        "--min-voltage": _ex(
            [*TUNING_LIF, "-o", "{tmp}/t.h5"], ["--min-voltage", "-1"]
        ),
        "--duration": _ex(TUNING_LIF, ["--duration", "0.3"]),
    }
)
_simulate = _neuron_examples(SIMULATE, [*SIMULATE, "--input", "sine:5"])
_simulate.update(
    {
        "--model": _ex([*SIMULATE, "--input", "sine:5"], ["--model", "fastlif"]),
        "--input": _ex(SIMULATE, ["--input", "sine:3"]),
        "--dt": _ex(SIMULATE, ["--dt", "0.0005"]),
        "--duration": _ex(SIMULATE, ["--duration", "0.3"]),
        "--events": _ex(SIMULATE, ["--events"]),
        "--initial-voltage": _ex(SIMULATE, ["--initial-voltage", "uniform"]),
    }
)
for _path, _examples in (
    (("rates", "kernel"), _kernel),
    (("rates", "isi"), _isi),
    (("tuning",), _tuning),
    (("simulate",), _simulate),
):
    for _name, _example in _examples.items():
        OPTION_EXAMPLES[_path, _name] = _example
OPTION_EXAMPLES[("rates", "kernel"), "--pool"] = _ex(
    [*KERNEL, "--tau", "auto"], ["--pool"]
)
_count = _rates_examples(["rates", "count"])
_count["--dtype"] = _ex(
    ["rates", "count", "{dense}", "--as", "rate", "--to", "npz"],
    ["--dtype", "float32"],
)
_count["--as"] = _ex(["rates", "count", "{dense}"], ["--as", "rate"])
for _name, _example in _count.items():
    OPTION_EXAMPLES[("rates", "count"), _name] = _example


def _analysis_examples(command: list[str], rest: list[str]) -> dict:
    """Examples of the reading options of info, metrics and psth."""
    base = [*command, "{dense}", *rest]
    return {
        "--from": _ex(
            [*command, "{dat}", *rest, "--from", "npz"], [], "same", ref=base
        ),
        "--dataset": _ex(
            [*command, "{two}", *rest, "--dataset", "/a/spikes"],
            ["--dataset", "/b/spikes"],
        ),
        "--units": _ex(base, ["--units", "1,3"]),
        "--label": _ex([*command, "{phy}", *rest], ["--label", "good"]),
        "--t-start": _ex(base, ["--t-start", "0.12"]),
        "--t-stop": _ex(base, ["--t-stop", "0.45"]),
        # Refusing external data is tested in test_hostile.py.
        "--allow-external-data": _ex(base, ["--allow-external-data"], "same"),
        "--id-column": _ex([*command, "{nwb}", *rest], ["--id-column", "quality"]),
        "--segment": _ex(
            [*command, "{segments}", *rest, "--segment", "0"], ["--segment", "1"]
        ),
    }


INFO = ["info", "{dense}", "--to", "csv"]
_info = _analysis_examples(["info"], ["--to", "csv"])
_info.update(
    {
        "--output": _ex(INFO, ["-o", "{tmp}/out.csv"], "moved"),
        "--to": _ex(["info", "{dense}"], ["--to", "json"]),
        "--values": _ex(["info", "{halves}", "--to", "csv"], ["--values", "counts"]),
    }
)
METRICS = ["metrics", "{dense}"]
_metrics = _analysis_examples(["metrics"], [])
_metrics.update(
    {
        "--output": _ex(
            # short bins: no NaN, which never compares equal
            [*METRICS, "--to", "csv", "--presence-bin", "0.1", "--fano-window", "0.1"],
            ["-o", "{tmp}/out.csv"],
            "moved",
        ),
        "--to": _ex(METRICS, ["--to", "csv"]),
        "--values": _ex(["metrics", "{halves}"], ["--values", "counts"]),
        "--presence-bin": _ex(METRICS, ["--presence-bin", "0.1"]),
        "--isi-threshold": _ex(METRICS, ["--isi-threshold", "0.01"]),
        "--min-isi": _ex(METRICS, ["--min-isi", "0.001"]),
        "--fano-window": _ex(METRICS, ["--fano-window", "0.05"]),
        "--plot": _ex(METRICS, ["--plot", "{tmp}/f.png"], "figure"),
    }
)
_PSTH_REST = ["--events", "{trials}", "--window", "-0.05:0.1", "--bootstrap", "50"]
PSTH = ["psth", "{dense}", *_PSTH_REST]
PSTH_GAUSS = [*PSTH, "--kind", "gauss"]
_psth = _analysis_examples(["psth"], _PSTH_REST)
_psth.update(
    {
        "--events": _ex(
            ["psth", "{dense}", "--window", "-0.05:0.1", "--events", "{trials}"],
            [],
            ref=["psth", "{dense}", "--window", "-0.05:0.1", "--events", "{late}"],
        ),
        "--window": _ex(
            ["psth", "{dense}", "--events", "{trials}", "--window", "-0.05:0.1"],
            [],
            ref=["psth", "{dense}", "--events", "{trials}", "--window", "0:0.1"],
        ),
        "--dt": _ex(PSTH, ["--dt", "0.05"]),
        "--kind": _ex(PSTH, ["--kind", "gauss", "--tau", "0.02"]),
        "--tau": _ex(PSTH_GAUSS, ["--tau", "0.05"], ref=[*PSTH_GAUSS, "--tau", "0.02"]),
        "--pool": _ex([*PSTH_GAUSS, "--tau", "auto"], ["--pool"]),
        "--align-to": _ex(PSTH, ["--align-to", "late"]),
        "--group-by": _ex(PSTH, ["--group-by", "side"]),
        "--ci": _ex(PSTH, ["--ci", "0.5"]),
        "--bootstrap": _ex(PSTH, ["--bootstrap", "20"]),
        "--seed": _ex(PSTH, ["--seed", "1"]),
        "--trials": _ex([*PSTH, "-o", "{tmp}/p.npz"], ["--trials"]),
        "--output": _ex(PSTH, ["-o", "{tmp}/out.csv"], "moved"),
        "--to": _ex(PSTH, ["--to", "tsv"]),
        "--plot": _ex(PSTH, ["--plot", "{tmp}/f.png"], "figure"),
        "--values": _ex(
            ["psth", "{halves}", "--events", "{trials_long}", "--window", "-1:1"],
            ["--values", "counts"],
        ),
    }
)
for _path, _examples in (
    (("info",), _info),
    (("metrics",), _metrics),
    (("psth",), _psth),
):
    for _name, _example in _examples.items():
        OPTION_EXAMPLES[_path, _name] = _example
OPTION_EXAMPLES[(), "--version"] = Example(("--version",), ("--help",), "stdout")
OPTION_EXAMPLES[(), "--verbose"] = Example(
    ("-v", *KERNEL), tuple(KERNEL), "stderr:spikerates: {dense}: wrote -:"
)
# The thread count changes how the work is split, never the result; with -v
# it is reported.
OPTION_EXAMPLES[(), "--threads"] = Example(
    ("-v", "--threads", "1", *KERNEL),
    ("-v", *KERNEL),
    "stderr:spikerates: threads: 1 (requested",
)
OPTION_EXAMPLES[(), "--quiet"] = Example(
    ("-q", *KERNEL, "--t-start", "0.1"), (*KERNEL, "--t-start", "0.1"), "quiet"
)


def _all_options() -> set[tuple[tuple[str, ...], str]]:
    """(command path, longest flag) of every option of every command."""
    found = set()

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                found.add((path, max(param.opts, key=len)))

    walk(command_group, ())
    return found


def test_every_option_has_an_example():
    assert sorted(_all_options() - set(OPTION_EXAMPLES)) == []
    assert sorted(set(OPTION_EXAMPLES) - _all_options()) == []


@pytest.fixture(scope="session")
def option_inputs(tmp_path_factory, dense_files, events_file, phy_dir, dense_spikes):
    """Paths for the placeholders of the option examples."""
    import shutil

    t, spikes = dense_spikes
    root = tmp_path_factory.mktemp("option_inputs")
    dat = root / "spikes.dat"
    shutil.copy(dense_files["npz"], dat)
    two = root / "two.h5"
    with h5py.File(two, "w") as f:
        f["a/t"] = t
        f["a/spikes"] = spikes
        f["b/t"] = t
        f["b/spikes"] = spikes[::-1]
    # dt = 0.5 s and values 0 or 2: one spike each as amplitudes (2 = 1/dt),
    # two as counts
    halves = root / "halves.npz"
    fractional = root / "fractional.npz"
    occupied = np.random.default_rng(8).random((200, 3)) < 0.2
    np.savez(halves, t=0.5 * np.arange(1, 201), spikes=2.0 * occupied)
    np.savez(fractional, t=0.5 * np.arange(1, 201), spikes=0.7 * occupied)
    trials = root / "trials.csv"
    trials.write_text(
        "time,late,side\n0.1,0.12,a\n0.2,0.23,b\n0.3,0.31,a\n0.4,0.44,b\n"
    )
    late = root / "late.csv"
    late.write_text("time\n0.12\n0.23\n0.31\n0.44\n")
    trials_long = root / "trials_long.csv"
    trials_long.write_text("time\n" + "".join(f"{10 * k}\n" for k in range(1, 10)))
    neurons = root / "neurons.csv"
    neurons.write_text("max_rate,intercept,encoder\n150,-0.2,1\n250,0.3,-1\n")
    epochs = root / "epochs.csv"
    epochs.write_text("start,stop\n0.05,0.12\n0.2,0.28\n")
    nwb = _write_nwb(root / "units.nwb")
    segments = root / "segments.npz"
    _write_segments(segments)
    return {
        "dense": dense_files["npz"],
        "dat": str(dat),
        "events": events_file[0],
        "phy": phy_dir[0],
        "two": str(two),
        "halves": str(halves),
        "fractional": str(fractional),
        "neurons": str(neurons),
        "epochs": str(epochs),
        "nwb": str(nwb),
        "segments": str(segments),
        "trials": str(trials),
        "late": str(late),
        "trials_long": str(trials_long),
    }


def _write_nwb(path):
    """An NWB Units table (pynwb) whose 'quality' column names each unit."""
    import warnings
    from datetime import datetime, timezone

    import pynwb

    nwb = pynwb.NWBFile(
        session_description="options",
        identifier="options",
        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )
    nwb.add_unit_column("quality", "a name per unit")
    for unit, (times, name) in enumerate(
        [([0.1, 0.25, 0.3], "alpha"), ([0.05, 0.2], "beta")]
    ):
        nwb.add_unit(spike_times=times, id=unit, quality=name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pynwb.NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
    return path


def _write_segments(path) -> None:
    """A SpikeInterface sorting of two segments with different spikes."""
    import spikeinterface.core as si

    segments = [
        {0: np.array([10, 200, 300]), 1: np.array([50, 60])},
        {0: np.array([5, 15]), 1: np.array([100, 250, 280])},
    ]
    sorting = si.NumpySorting.from_unit_dict(segments, sampling_frequency=1000.0)
    si.NpzSortingExtractor.write_sorting(sorting, str(path))


@pytest.fixture(scope="session")
def dask_scheduler():
    """The address of a Dask scheduler with one worker process on 127.0.0.1."""
    distributed = pytest.importorskip("distributed")
    import logging

    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # no fixed port to collide on
        silence_logs=logging.CRITICAL,
    ) as cluster:
        yield cluster.scheduler_address


def _outputs(result, folder) -> dict:
    """What a run produced, as comparable values: standard output (numbers
    where it is a table) and every file written into ``folder``."""

    def text_values(text: str):
        lines = text.strip().splitlines()
        try:
            rows = np.array([[float(v) for v in ln.split(",")] for ln in lines[1:]])
        except ValueError:
            return text
        return (lines[0] if lines else "", rows)

    produced: dict = {"stdout": None}
    if result.stdout_bytes[:4] == b"PK\x03\x04":
        import io

        with np.load(io.BytesIO(result.stdout_bytes)) as z:
            produced["stdout"] = {k: z[k] for k in z.files}
    elif result.stdout_bytes:
        produced["stdout"] = text_values(result.stdout)
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(dirpath, name)
            key = os.path.relpath(path, folder)
            if name.endswith(".npz"):
                with np.load(path) as z:
                    produced[key] = {k: z[k] for k in z.files}
            elif name.endswith(".csv"):
                with open(path) as f:
                    produced[key] = text_values(f.read())
            elif name.endswith(".h5"):
                with h5py.File(path, "r") as f:
                    produced[key] = {
                        "attrs": {k: str(v) for k, v in f.attrs.items()},
                        **{k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)},
                    }
            else:
                with open(path, "rb") as f:
                    produced[key] = f.read()[:8]
    return produced


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
            return False
        if a.dtype.kind in "fc":
            return a.dtype == b.dtype and np.allclose(a, b, rtol=1e-9, atol=1e-12)
        return np.array_equal(a, b)
    return type(a) is type(b) and a == b


def _invoke(cli, args, inputs, folder, exit_code=0):
    folder.mkdir(parents=True, exist_ok=True)
    values = {**inputs, "tmp": str(folder)}
    result = cli.run([a.format(**values) for a in args])
    assert result.exit_code == exit_code, (args, result.stderr)
    return result, _outputs(result, folder)


@pytest.mark.parametrize(
    "key", sorted(OPTION_EXAMPLES), ids=lambda key: " ".join([*key[0], key[1]])
)
def test_option_has_an_effect(cli, tmp_path, option_inputs, key, request):
    example = OPTION_EXAMPLES[key]
    if "{scheduler}" in example.args:
        scheduler = request.getfixturevalue("dask_scheduler")
        option_inputs = {**option_inputs, "scheduler": scheduler}
    ref, ref_out = _invoke(cli, example.ref, option_inputs, tmp_path / "ref")
    refused = example.expect == "refused"
    got, got_out = _invoke(
        cli, example.args, option_inputs, tmp_path / "got", exit_code=int(refused)
    )
    if refused:
        line = cli.assert_one_line_error(got, "--max-output-size")
        assert "above the limit of 100 bytes" in line
        assert got_out == {"stdout": None}
    elif example.expect == "differs":
        assert not _same(got_out, ref_out)
    elif example.expect == "same":
        assert _same(got_out, ref_out)
    elif example.expect == "moved":
        assert got.stdout == "" and ref.stdout
        assert _same(got_out.pop("out.csv"), ref_out.pop("stdout"))
    elif example.expect == "figure":
        assert _same(got_out.pop("stdout"), ref_out.pop("stdout"))
        assert got_out == {"f.png": b"\x89PNG\r\n\x1a\n"}
    elif example.expect == "stdout":
        assert __version__ in got.stdout and __version__ not in ref.stdout
    elif example.expect == "quiet":
        assert "spikerates: note: " in ref.stderr and got.stderr == ""
        assert _same(got_out, ref_out)
    elif example.expect.startswith("stderr:"):
        wanted = example.expect.split(":", 1)[1].format(**option_inputs)
        assert wanted in got.stderr and wanted not in ref.stderr
        assert _same(got_out, ref_out)
    else:
        raise AssertionError(example.expect)
