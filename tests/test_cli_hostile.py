"""The command line under hostile input, failures and signals.

Every case ends in one line on standard error with the documented exit
status (1 error, 2 usage, 128 + N for signal N, 141 for a closed pipe), no
traceback, no file beside the requested outputs, and earlier outputs intact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest

from spikerates import __version__  # noqa: F401  (the package under test)


def assert_quiet_failure(cli, result, exit_code: int, *fragments: str) -> str:
    """One stderr line with the fragments, the exit status, no traceback."""
    assert result.exit_code == exit_code, (result.exit_code, result.stderr)
    lines = cli.error_lines(result)
    assert "Traceback" not in result.stderr
    if exit_code == 2:
        assert any(line.startswith("Error: ") for line in lines), lines
        text = result.stderr
    else:
        assert len(lines) == 1, lines
        assert lines[0].startswith("spikerates: error: "), lines[0]
        text = lines[0]
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    return text


# ----------------------------------------------------------------------------
# All outputs of a run are committed together, after everything succeeded


def test_failing_plot_keeps_the_previous_output(cli, tmp_path, dense_files):
    keep = tmp_path / "keep.h5"
    keep.write_bytes(b"previous result")
    args = ["rates", "kernel", dense_files["npz"], "-o", keep]
    result = cli.run([*args, "--plot", tmp_path / "nonexistent" / "p.png"])
    assert_quiet_failure(cli, result, 1, "nonexistent", "does not exist")
    assert keep.read_bytes() == b"previous result"
    assert cli.entries(tmp_path) == ["keep.h5"]


@pytest.mark.parametrize("command", [["events"], ["rates", "kernel"]])
def test_error_while_plotting_commits_nothing(
    cli, monkeypatch, tmp_path, dense_files, command
):
    import spikerates.plot
    from spikerates.errors import SpikeDataError

    def broken(*args, **kwargs):
        raise SpikeDataError("the figure cannot be drawn")

    monkeypatch.setattr(spikerates.plot, "plot_raster", broken)
    monkeypatch.setattr(spikerates.plot, "plot_rates", broken)
    out = tmp_path / "out.npz"
    out.write_bytes(b"previous result")
    fig = tmp_path / "fig.png"
    result = cli.run([*command, dense_files["npz"], "-o", out, "--plot", fig])
    assert_quiet_failure(cli, result, 1, "cannot be drawn")
    assert out.read_bytes() == b"previous result"
    assert cli.entries(tmp_path) == ["out.npz"]


def test_plot_must_not_be_the_input(cli, tmp_path, dense_spikes, files):
    t, spikes = dense_spikes
    source = files.write_dense(tmp_path / "in.csv", t, spikes)
    os.replace(source, tmp_path / "in.png")
    before = (tmp_path / "in.png").read_bytes()
    args = ["events", tmp_path / "in.png", "--from", "csv", "--plot"]
    result = cli.run([*args, tmp_path / "in.png", "-o", tmp_path / "e.npz"])
    assert_quiet_failure(cli, result, 2, "--plot", "would overwrite its input")
    assert (tmp_path / "in.png").read_bytes() == before
    assert cli.entries(tmp_path) == ["in.png"]


def test_plot_must_not_be_the_output(cli, tmp_path, dense_files):
    out = tmp_path / "out.png"
    args = ["rates", "kernel", dense_files["npz"], "-o", out, "--to", "npz"]
    result = cli.run([*args, "--plot", out])
    assert_quiet_failure(cli, result, 2, "--plot", "would overwrite the output")
    assert cli.entries(tmp_path) == []


@pytest.mark.parametrize("command", [["tuning"], ["simulate"]])
def test_outputs_must_not_be_the_neurons_file(cli, tmp_path, command):
    neurons = tmp_path / "neurons.csv"
    neurons.write_text("max_rate,intercept\n100,0\n200,-0.5\n")
    before = neurons.read_bytes()
    result = cli.run([*command, "--neurons", neurons, "-o", neurons, "--to", "csv"])
    assert_quiet_failure(cli, result, 2, "would overwrite --neurons")
    result = cli.run([*command, "--neurons", neurons, "--plot", neurons])
    assert result.exit_code == 2
    assert neurons.read_bytes() == before


def test_simulate_output_must_not_be_the_input_signal(cli, tmp_path):
    signal_file = tmp_path / "signal.csv"
    signal_file.write_text("t,x\n0,0\n2,1\n")
    result = cli.run(["simulate", "--input", signal_file, "-o", signal_file])
    assert_quiet_failure(cli, result, 2, "would overwrite --input")
    assert signal_file.read_text() == "t,x\n0,0\n2,1\n"


# ----------------------------------------------------------------------------
# The output side: links, read-only files, folders


def test_symlinked_output_keeps_its_link(cli, tmp_path, dense_files, files):
    real = tmp_path / "results" / "rates.npz"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "latest.npz"
    link.symlink_to(real)
    result = cli.run(["rates", "kernel", dense_files["npz"], "-o", link])
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert files.read_rates(real)[1].shape == (600, 4)
    assert cli.entries(real.parent) == ["rates.npz"]


def test_read_only_output_is_not_replaced(cli, tmp_path, dense_files):
    out = tmp_path / "rates.npz"
    out.write_bytes(b"protected")
    out.chmod(0o444)
    result = cli.run(["rates", "kernel", dense_files["npz"], "-o", out])
    assert_quiet_failure(cli, result, 1, "rates.npz", "read-only")
    assert out.read_bytes() == b"protected"
    assert cli.entries(tmp_path) == ["rates.npz"]


def test_missing_output_folder_is_named(cli, tmp_path, dense_files):
    out = tmp_path / "missing" / "rates.npz"
    result = cli.run(["rates", "kernel", dense_files["npz"], "-o", out])
    assert_quiet_failure(cli, result, 1, "missing", "does not exist")


def test_permission_denied_is_not_called_missing(
    cli, monkeypatch, tmp_path, dense_files
):
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    out = tmp_path / "rates.npz"
    result = cli.run(["rates", "kernel", dense_files["npz"], "-o", out])
    line = assert_quiet_failure(cli, result, 1, "permission denied")
    assert "does not exist" not in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_folder(cli, tmp_path, dense_files):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    result = cli.run(["rates", "kernel", dense_files["npz"], "-o", folder / "r.npz"])
    assert_quiet_failure(cli, result, 1, "permission denied")
    assert cli.entries(folder) == []


def test_control_characters_from_a_file_are_escaped(cli, tmp_path):
    path = tmp_path / "units.csv"
    path.write_text("unit,time\n\x1b[2J\x1b]0;owned\x07,0.5\nok,0.7\n")
    result = cli.run(["events", path, "--units", "missing", "-o", tmp_path / "e.npz"])
    line = assert_quiet_failure(cli, result, 1, "missing")
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "\\x1b[2J" in line


# ----------------------------------------------------------------------------
# Option values: one line, never a traceback


@pytest.mark.parametrize(
    "args,exit_code,fragment",
    [
        (["rates", "kernel", "{events}", "--t-start", "-inf"], 2, "--t-start"),
        (["rates", "kernel", "{events}", "--t-stop", "inf"], 2, "--t-stop"),
        (["rates", "kernel", "{events}", "--t-start", "nan"], 2, "--t-start"),
        (["rates", "kernel", "{events}", "--t-stop", "1e300"], 1, "--max-output-size"),
        (["rates", "kernel", "{events}", "--t-start", "-1e300"], 1, "limit"),
        (
            [
                "rates",
                "isi",
                "{events}",
                "--t-start",
                "1e20",
                "--t-stop",
                "1.0000001e20",
            ],
            1,
            "limit",
        ),  # fmt: skip
        (["rates", "kernel", "{events}", "--dt", "1e-300"], 1, "limit"),
        (["rates", "kernel", "{events}", "--tau", "nan"], 2, "--tau"),
        (["rates", "kernel", "{events}", "--chunk-duration", "inf"], 2, "--chunk"),
        (["events", "{events}", "--t-start", "nan"], 2, "--t-start"),
        (["events", "{events}", "--dt", "inf"], 2, "--dt"),
        (["simulate", "--duration", "nan"], 2, "--duration"),
        (["simulate", "--dt", "-inf"], 2, "--dt"),
        (["simulate", "--duration", "1e9"], 1, "--max-output-size"),
        (["simulate", "--duration", "1e9", "--events"], 1, "steps"),
        (["simulate", "--n-neurons", "1000000000"], 1, "1000000000 neurons"),
        (["simulate", "--duration", "1e300", "--dt", "1e-300"], 1, "time steps"),
        (["tuning", "--points", "10000000000"], 1, "10000000000 points"),
        (["tuning", "--n-neurons", "1000000000"], 1, "limit"),
        (["tuning", "--model", "lif", "--duration", "1e6"], 1, "neuron-steps"),
        (["tuning", "--x-max", "1e400"], 2, "--x-max"),
        (["tuning", "--max-rates", "inf"], 2, "--max-rates"),
        (["tuning", "--tau-rc", "1e300", "--tau-ref", "nan"], 2, "--tau-ref"),
        (["tuning", "--max-output-size", "lots"], 2, "--max-output-size"),
    ],
)
def test_extreme_option_values(cli, tmp_path, events_file, args, exit_code, fragment):
    args = [a.format(events=events_file[0]) for a in args]
    result = cli.run([*args, "-o", tmp_path / "out.npz"])
    assert_quiet_failure(cli, result, exit_code, fragment)
    assert cli.entries(tmp_path) == []


def test_huge_kernel_is_refused(cli, tmp_path, events_file):
    args = ["rates", "kernel", events_file[0], "--tau", "1e4", "--dt", "1e-6"]
    result = cli.run([*args, "-o", tmp_path / "out.npz"])
    assert_quiet_failure(cli, result, 1, "tau")


def test_intercepts_range_excludes_its_high_bound(cli, files, tmp_path):
    import nengo

    out = tmp_path / "t.npz"
    args = ["tuning", "--n-neurons", 300, "--seed", 3, "--intercepts", "-1:1"]
    result = cli.run([*args, "-o", out])
    assert result.exit_code == 0, result.stderr
    data = files.load(out)
    _, intercepts = nengo.LIFRate().max_rates_intercepts(data["gain"], data["bias"])
    assert np.all((intercepts >= -1 - 1e-9) & (intercepts < 1))
    assert intercepts.max() > 0.9  # the whole range is drawn
    result = cli.run(["tuning", "--intercepts", "1:2", "-o", out])
    assert_quiet_failure(cli, result, 2, "intercepts must be below 1")


# ----------------------------------------------------------------------------
# Signals, pipes and closed streams: the real script in subprocesses


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory, files):
    """Spike times of 20 units over 600 s: minutes of CSV rates at 1 ms."""
    rng = np.random.default_rng(2)
    trains = [np.sort(rng.uniform(0, 600, 3000)) for _ in range(20)]
    root = tmp_path_factory.mktemp("long")
    return files.write_events_npz(root / "long.npz", trains, np.arange(20))


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _default_signals() -> None:
    """In the child: the signal dispositions a shell gives a program (a test
    runner's worker may ignore some, and ignored signals are inherited)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def _hidden(folder) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(".")]


def _writing(folder) -> bool:
    """Whether a hidden temporary file in ``folder`` holds data already."""
    sizes = []
    for name in _hidden(folder):
        try:
            sizes.append(os.path.getsize(os.path.join(folder, name)))
        except FileNotFoundError:
            pass
    return any(size > 0 for size in sizes)


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name
)
def test_signal_removes_temporaries_and_keeps_the_output(
    script, tmp_path, long_recording, signum
):
    out = tmp_path / "rates.csv"
    out.write_text("previous result\n")
    args = ["rates", "kernel", long_recording, "-o", out, "--chunk-duration", "0.05"]
    process = subprocess.Popen(
        [*script.command, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_default_signals,
    )
    try:
        # interrupted while writing: its temporary files exist
        assert _wait_for(lambda: _writing(tmp_path)), "the run never started writing"
        seen = _hidden(tmp_path)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, (stderr.decode(), seen)
    assert stderr.decode().splitlines() == [f"spikerates: interrupted by {signum.name}"]
    assert sorted(os.listdir(tmp_path)) == ["rates.csv"]
    assert out.read_text() == "previous result\n"


def test_signal_removes_the_stdout_buffer(script, tmp_path, long_recording):
    """Binary output to a pipe is buffered in the temporary folder; a signal
    removes the buffer."""
    buffers = tmp_path / "tmp"
    buffers.mkdir()
    args = [
        "rates",
        "kernel",
        long_recording,
        "--to",
        "npz",
        "--chunk-duration",
        "0.05",
    ]
    process = subprocess.Popen(
        [*script.command, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(buffers)},
        preexec_fn=_default_signals,
    )
    try:
        assert _wait_for(lambda: os.listdir(buffers)), "no buffer was made"
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM
    assert stdout == b""
    assert stderr.decode().splitlines() == ["spikerates: interrupted by SIGTERM"]
    assert os.listdir(buffers) == []


def test_csv_streams_to_a_pipe_and_stops_when_it_closes(
    script, tmp_path, long_recording
):
    result = script.shell(
        f"spikerates rates kernel {long_recording} --chunk-duration 0.05 "
        "| head -c 300 > head.csv; echo ${PIPESTATUS[0]} > status",
        tmp_path,
    )
    assert result.returncode == 0
    assert (tmp_path / "status").read_text().strip() == str(128 + signal.SIGPIPE)
    assert result.stderr == b""
    head = (tmp_path / "head.csv").read_text()
    assert head.startswith("t,0,1,2,") and len(head) == 300
    assert sorted(os.listdir(tmp_path)) == ["head.csv", "status"]


def test_closed_stdout(script, tmp_path):
    result = script.shell("spikerates simulate --n-neurons 3 >&-", tmp_path)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        "spikerates: error: output: standard output is closed; write to a file "
        "with -o FILE"
    ]
    result = script.shell("spikerates simulate --n-neurons 3 -o s.npz >&-", tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert os.listdir(tmp_path) == ["s.npz"]
