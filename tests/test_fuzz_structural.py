"""Structural fuzzing: files that are well-formed containers holding the
wrong things (the right names with wrong shapes, dtypes, extreme values,
extra or missing members, odd links and attributes), for every format.

Through :func:`spikerates.io.read_spikes` and ``read_table`` only
spikerates' own errors may escape; through the command line every run ends
with exit status 0 or 1 and no traceback. Sizes are small by construction,
so memory stays bounded (checked at the end).
"""

from __future__ import annotations

import os
import resource
import tempfile
import warnings

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spikerates import io
from spikerates.cli import cli
from spikerates.errors import SpikeratesError

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CLI_SETTINGS = settings(SETTINGS, max_examples=10)

#: Names the readers look for, and a few they do not.
NAMES = (
    "t",
    "spikes",
    "spike_times",
    "spike_times_index",
    "unit_ids",
    "id",
    "labels",
    "quality",
    "t_start",
    "t_stop",
    "obs_intervals",
    "obs_intervals_index",
    "spike_clusters",
    "gain",
    "bias",
    "x",
)

EXTREMES = (
    0,
    1,
    -1,
    0.5,
    1e-300,
    1e300,
    -1e300,
    1e10,
    2.0**63,
    float("nan"),
    float("inf"),
    -float("inf"),
)
DTYPES = (
    np.float64,
    np.float32,
    np.int64,
    np.int32,
    np.uint64,
    np.uint8,
    np.bool_,
    np.dtype("U4"),
    np.dtype("S4"),
)


@st.composite
def arrays(draw) -> np.ndarray:
    """A small array of any dtype and up to 3 dimensions, often with extreme
    or sorted values."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
    if dtype.kind == "U":
        # Text that files can hold: UTF-8 encodable (no lone surrogates).
        text = st.text(st.characters(codec="utf-8", min_codepoint=1), max_size=4)
        return draw(hnp.arrays(dtype, shape, elements=text))
    if dtype.kind == "S":
        return draw(hnp.arrays(dtype, shape))
    if dtype.kind == "b":
        return draw(hnp.arrays(dtype, shape))
    if dtype.kind == "f":
        finfo = np.finfo(dtype)
        extremes = [
            v for v in map(float, EXTREMES) if not np.isfinite(v) or abs(v) < finfo.max
        ]
        elements = st.one_of(
            st.sampled_from(extremes),
            st.floats(-10, 10, width=dtype.itemsize * 8),
        )
        arr = draw(hnp.arrays(dtype, shape, elements=elements))
    else:
        info = np.iinfo(dtype)
        elements = st.one_of(
            st.integers(0, 12), st.sampled_from([int(info.min), int(info.max)])
        )
        arr = draw(hnp.arrays(dtype, shape, elements=elements))
    if draw(st.booleans()) and arr.ndim == 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.sort(arr)
    return arr


@st.composite
def layouts(draw) -> dict[str, np.ndarray]:
    """A valid events, dense or table layout with up to three things wrong:
    a member dropped, replaced by any small array, scaled to an extreme,
    cut short, cast to another dtype, or an unexpected member added."""
    kind = draw(st.sampled_from(["events", "dense", "table"]))
    n_units = draw(st.integers(0, 4))
    if kind == "events":
        counts = draw(st.lists(st.integers(0, 5), min_size=n_units, max_size=n_units))
        flat = np.sort(
            draw(hnp.arrays(np.float64, sum(counts), elements=st.floats(-1, 3)))
        )
        content = {
            "spike_times": flat,
            "spike_times_index": np.cumsum(counts).astype(np.int64),
            "unit_ids": np.arange(n_units) * 3,
        }
        if draw(st.booleans()):
            content["labels"] = np.array(["good"] * n_units)
            content["t_start"] = np.float64(-1.0)
            content["t_stop"] = np.float64(3.0)
    elif kind == "dense":
        n_steps = draw(st.integers(0, 6))
        content = {
            "t": (np.arange(n_steps) + 1) * 1e-3,
            "spikes": draw(
                hnp.arrays(np.int64, (n_steps, n_units), elements=st.integers(0, 2))
            ),
            "unit_ids": np.arange(n_units),
        }
    else:
        content = {"gain": np.ones(n_units), "bias": np.zeros(n_units)}
    for _ in range(draw(st.integers(0, 3))):
        names = sorted(content)
        change = draw(st.sampled_from(["drop", "array", "scale", "cut", "cast", "add"]))
        if change == "add" or not names:
            content[draw(st.sampled_from(NAMES))] = draw(arrays())
            continue
        name = draw(st.sampled_from(names))
        value = np.asarray(content[name])
        if change == "drop":
            del content[name]
        elif change == "array":
            content[name] = draw(arrays())
        elif change == "scale" and value.dtype.kind in "iuf":
            factor = draw(st.sampled_from([1e300, -1e300, 1e12, 2.0**64, -1.0]))
            with np.errstate(all="ignore"):
                content[name] = value.astype(np.float64) * factor
        elif change == "cut" and value.ndim:
            content[name] = value[: max(0, len(value) - 1)]
        elif change == "cast":
            dtype = np.dtype(draw(st.sampled_from(DTYPES)))
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    content[name] = value.astype(dtype)
                except (ValueError, TypeError, OverflowError):
                    pass  # text that is no number stays text
    return content


members = st.one_of(
    layouts(),
    st.dictionaries(st.sampled_from(NAMES), arrays(), min_size=1, max_size=6),
)


def _write_npz(folder: str, content: dict[str, np.ndarray], compress: bool) -> str:
    path = os.path.join(folder, "input.npz")
    (np.savez_compressed if compress else np.savez)(path, **content)
    return path


def _write_hdf5(
    folder: str,
    content: dict[str, np.ndarray],
    where: str,
    attrs: dict[str, np.ndarray],
    suffix: str,
) -> str:
    path = os.path.join(folder, f"input{suffix}")
    with h5py.File(path, "w") as f:
        group = f.require_group(where)
        for name, arr in content.items():
            if arr.dtype.kind == "U":
                group.create_dataset(
                    name, data=arr.astype(object), dtype=h5py.string_dtype()
                )
            else:
                group[name] = arr
        for key, value in attrs.items():
            if value.dtype.kind == "U":
                # h5py stores text attributes as UTF-8 bytes.
                value = np.char.encode(value, "utf-8")
            group.attrs[key] = value
    return path


HEADERS = st.lists(
    st.sampled_from(
        [
            "unit",
            "time",
            "t",
            "cluster",
            "spike_time",
            "time_ms",
            "id",
            "0",
            "1",
            "99999999999999999999",
            "",
            "x",
            '"a,b"',
            "#",
        ]
    ),
    min_size=1,
    max_size=5,
)
CELLS = st.sampled_from(
    ["0", "1", "-1", "0.5", "1e300", "-1e300", "nan", "inf", "", "x", "9" * 30, '"']
)


@st.composite
def csv_texts(draw) -> str:
    header = draw(HEADERS)
    sep = draw(st.sampled_from([",", "\t"]))
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=6), max_size=8))
    lines = [sep.join(header), *(sep.join(row) for row in rows)]
    if draw(st.booleans()):
        lines.insert(0, "# a comment")
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))


PARAM_LINES = st.sampled_from(
    [
        "sample_rate = 30000.0",
        "sample_rate = 30000",
        "sample_rate = -1",
        "sample_rate = 0",
        "sample_rate = 1e-300",
        "sample_rate = 1e300",
        "sample_rate = 'fast'",
        "sample_rate = [30000]",
        "sample_rate = " + "9" * 120,
        "sample_rate = 1 + 1",
        "sample_rate = = 3",
        "dtype = 'int16'",
        "n_channels_dat = 32",
        "if True:\n    sample_rate = 2",
        "import os",
    ]
)


def _cli_ok(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 1), (args, result.output)
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


def _read_ok(path: str, fmt: str | None = None) -> None:
    """Read ``path`` every way a command does; only our errors may escape."""
    for lazy in (False, True):
        try:
            data = io.read_spikes(path, fmt, lazy=lazy)
        except SpikeratesError:
            continue
        close = getattr(data, "close", None)
        if close is not None:
            close()
    if not os.path.isdir(path):
        try:
            io.read_table(path, fmt)
        except SpikeratesError:
            pass


def _run_commands(path: str) -> None:
    with tempfile.TemporaryDirectory() as out:
        _cli_ok(["events", path, "-o", os.path.join(out, "e.npz")])
        _cli_ok(
            [
                "rates",
                "kernel",
                path,
                "--t-start",
                "0",
                "--t-stop",
                "1",
                "--dt",
                "0.01",
                "-o",
                os.path.join(out, "r.npz"),
            ]
        )


@SETTINGS
@given(content=members, compress=st.booleans())
def test_npz_structures(content, compress) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _read_ok(_write_npz(folder, content, compress))


@SETTINGS
@given(
    content=members,
    where=st.sampled_from(["/", "/units", "/processing/ecephys"]),
    attrs=st.dictionaries(st.sampled_from(["t_start", "t_stop"]), arrays()),
    suffix=st.sampled_from([".h5", ".nwb"]),
)
def test_hdf5_structures(content, where, attrs, suffix) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _read_ok(_write_hdf5(folder, content, where, attrs, suffix))


@SETTINGS
@given(text=csv_texts(), suffix=st.sampled_from([".csv", ".tsv"]))
def test_csv_structures(text, suffix) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"input{suffix}")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        _read_ok(path)


@SETTINGS
@given(
    samples=arrays(),
    clusters=arrays(),
    params=st.lists(PARAM_LINES, max_size=4),
    labels=st.one_of(st.none(), csv_texts()),
)
def test_phy_structures(samples, clusters, params, labels) -> None:
    with tempfile.TemporaryDirectory() as folder:
        phy = os.path.join(folder, "phy")
        os.mkdir(phy)
        np.save(os.path.join(phy, "spike_times.npy"), samples)
        np.save(os.path.join(phy, "spike_clusters.npy"), clusters)
        with open(os.path.join(phy, "params.py"), "w") as fh:
            fh.write("\n".join(params) + "\n")
        if labels is not None:
            with open(os.path.join(phy, "cluster_group.tsv"), "w") as fh:
                fh.write(labels)
        _read_ok(phy)


@CLI_SETTINGS
@given(content=members, compress=st.booleans())
def test_npz_structures_through_the_command_line(content, compress) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _run_commands(_write_npz(folder, content, compress))


@CLI_SETTINGS
@given(content=members, where=st.sampled_from(["/", "/units"]))
def test_hdf5_structures_through_the_command_line(content, where) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _run_commands(_write_hdf5(folder, content, where, {}, ".h5"))


@CLI_SETTINGS
@given(text=csv_texts())
def test_csv_structures_through_the_command_line(text) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "input.csv")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        _run_commands(path)


@pytest.mark.parametrize("link", ["external", "soft", "dangling soft"])
def test_links_through_the_command_line(tmp_path, link) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.zeros((3, 1))
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["t"] = np.arange(1, 4) * 1e-3
        if link == "external":
            f["spikes"] = h5py.ExternalLink(str(other), "/data")
        elif link == "soft":
            f["data"] = np.zeros((3, 1), dtype=np.int64)
            f["spikes"] = h5py.SoftLink("/data")
        else:
            f["spikes"] = h5py.SoftLink("/nowhere")
    _read_ok(str(tmp_path / "in.h5"))
    _run_commands(str(tmp_path / "in.h5"))


def test_memory_stayed_bounded() -> None:
    """After the structural cases (same worker or not), the process never
    held more than 1 GB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak < 1 << 30
