"""The resource policy's building blocks, against independent oracles:
``ast.literal_eval`` for the ``params.py`` parser, plain per-line loops for
the line checks, numpy's own reader for the bounded NPZ loader."""

from __future__ import annotations

import ast
import io
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spikerates.errors import ParameterError, ResourceLimitError, SpikeDataError
from spikerates.io import safety

# ----------------------------------------------------------------------------
# params.py


literals = st.recursive(
    st.one_of(
        st.integers(-(10**30), 10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
        st.binary(max_size=8),
        st.booleans(),
        st.none(),
        st.complex_numbers(allow_nan=False, allow_infinity=False),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(
            st.one_of(st.integers(), st.text(max_size=4)), inner, max_size=3
        ),
    ),
    max_leaves=12,
)


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "params.py"
    path.write_text(text, encoding="utf-8")
    return str(path)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(literals, min_size=1, max_size=4))
def test_params_agree_with_literal_eval(tmp_path_factory, values) -> None:
    tmp_path = tmp_path_factory.mktemp("params")
    lines = [f"v{i} = {value!r}" for i, value in enumerate(values)]
    text = "\n".join(lines) + "\n"
    parsed = safety.parse_params(_write(tmp_path, text))
    for i, line in enumerate(lines):
        expected = ast.literal_eval(line.split("=", 1)[1].strip())
        assert repr(parsed[f"v{i}"]) == repr(expected), line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a = 1, 2\n", {"a": (1, 2)}),
        ("a = (1)\nb = (1,)\nc = ()\n", {"a": 1, "b": (1,), "c": ()}),
        ("a = b = 0x1F\n", {"a": 31, "b": 31}),
        ("a = 'x' 'y'\n", {"a": "xy"}),
        ("a = -2.5e3\n", {"a": -2500.0}),
        ("a = 3\na = f(x)\n", {}),
        ("if True:\n    a = 1\nb = 2\n", {"b": 2}),
        ("import os\na = os.getcwd()\nb = [1, {'k': None}]\n", {"b": [1, {"k": None}]}),
        ("a = {1, 2}\n", {}),
        ("a = 1; b = 2\nc = 3; a = 4\n", {"a": 4, "b": 2, "c": 3}),
        ("a = 1\nx; a = 2\n", {"a": 2}),
        ("a = 1\n*b, a = 1, 2\n", {}),
        ("a = 1\na += 1\nc = 2\nc: int = 3\n", {}),
        ("a = 1\nif a == 1: pass\n", {"a": 1}),
        ("a = f'x'\n", {}),
    ],
)
def test_params_statements(tmp_path, text, expected) -> None:
    assert safety.parse_params(_write(tmp_path, text)) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a = = 3\n", "line 1: not valid Python syntax"),
        ("a = (1,\n", "not valid Python syntax"),
        ("a = " + "9" * 101 + "\n", "101 digits"),
        ("a = " + "[" * 40 + "]" * 40 + "\n", "nested more than 32 deep"),
        ("a = '\x00'\n", "binary data"),
    ],
)
def test_params_errors(tmp_path, text, match) -> None:
    with pytest.raises(SpikeDataError, match=match):
        safety.parse_params(_write(tmp_path, text))


def test_params_size_limit(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SPIKERATES_MAX_PARAMS_BYTES", "1K")
    with pytest.raises(ResourceLimitError, match="SPIKERATES_MAX_PARAMS_BYTES"):
        safety.parse_params(_write(tmp_path, "a = 1\n" * 200))


# ----------------------------------------------------------------------------
# Limits from the environment


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("8G", 8 << 30), ("512M", 512 << 20), ("3e9", 3_000_000_000), ("1KiB", 1024)],
)
def test_limit_from_the_environment(monkeypatch, raw, expected) -> None:
    monkeypatch.setenv("SPIKERATES_MAX_ARRAY_BYTES", raw)
    assert safety.limit("MAX_ARRAY_BYTES") == expected


@pytest.mark.parametrize("raw", ["-1", "0", "lots", "nan"])
def test_limit_must_be_positive(monkeypatch, raw) -> None:
    monkeypatch.setenv("SPIKERATES_MAX_ARRAY_BYTES", raw)
    with pytest.raises(ParameterError, match="SPIKERATES_MAX_ARRAY_BYTES"):
        safety.limit("MAX_ARRAY_BYTES")


def test_limit_default() -> None:
    assert safety.limit("MAX_DECOMPRESSION_RATIO") == safety.MAX_DECOMPRESSION_RATIO


# ----------------------------------------------------------------------------
# Sizes and times


def test_array_size_is_exact_for_huge_shapes() -> None:
    shape = (2**40, 2**40)
    with pytest.raises(ResourceLimitError, match="over the limit"):
        safety.check_array_size(shape, 8)
    assert safety.declared_bytes(shape, 8) == 2**83


def test_ratio_applies_above_the_floor_only() -> None:
    small = safety.DECOMPRESSION_FLOOR_BYTES // 8
    assert safety.check_array_size((small,), 8, stored=1) == small * 8
    with pytest.raises(ResourceLimitError, match="ratio"):
        safety.check_array_size((small + 1,), 8, stored=1)


@pytest.mark.parametrize(
    "values",
    [
        np.array([0.0, 1e11]),
        np.array([-1e300]),
        np.array([2**63 - 1], dtype=np.int64),
        np.array([2**64 - 1], dtype=np.uint64),
    ],
)
def test_times_beyond_the_bound(values) -> None:
    with pytest.raises(SpikeDataError, match="beyond"):
        safety.check_times(values)


def test_times_within_the_bound_and_non_finite_pass() -> None:
    safety.check_times(np.array([-1e10, 0.0, 1e10, np.nan, np.inf]))
    safety.check_times(np.array([], dtype=np.float64))
    safety.check_times(np.array(["x"]))


@pytest.mark.parametrize(
    ("index", "shown"),
    [
        (np.array([2**64 - 1], dtype=np.uint64), "18446744073709551615"),
        (np.array([1e300]), "1e+300"),
        (np.array([-1], dtype=np.int64), "-1"),
        (np.array([5], dtype=np.int8), "5"),
    ],
)
def test_ragged_offsets_named_as_stored(index, shown) -> None:
    with pytest.raises(SpikeDataError, match=re.escape(f"offset {shown} is out")):
        safety.check_ragged(np.zeros(3), index)


# ----------------------------------------------------------------------------
# Lines


def _lines_oracle(data: bytes, sep: bytes, n_fields: int, bound: int) -> set[str]:
    """What check_line_lengths may refuse for, by a plain loop over the lines."""
    max_seps = max(2 * (n_fields - 1) + 2, n_fields - 1 + 64)
    found = set()
    for line in data.split(b"\n"):
        if len(line) > bound:
            found.add("long")
        if line.count(sep) > max_seps:
            found.add("wide")
    return found


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.tuples(st.integers(0, 300), st.integers(0, 40)), min_size=0, max_size=40
    ),
    n_fields=st.integers(1, 4),
    bound=st.integers(8, 400),
)
def test_line_check_matches_a_plain_loop(lines, n_fields, bound) -> None:
    data = b"\n".join(b"," * seps + b"x" * chars for seps, chars in lines)
    expected = _lines_oracle(data, b",", n_fields, bound)
    try:
        safety.check_line_lengths(
            io.BytesIO(data), sep=",", n_fields=n_fields, max_line=bound
        )
    except ResourceLimitError as exc:
        kind = "long" if "longer than" in str(exc) else "wide"
        assert kind in expected, (str(exc), expected)
    else:
        assert expected == set()


def test_iter_lines_stops_within_the_bound() -> None:
    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            buffer[:] = b"a" * len(buffer)
            return len(buffer)

    with pytest.raises(ResourceLimitError, match="longer than"):
        list(safety.iter_lines(io.BufferedReader(Endless()), max_line=1000))


def test_standard_input_bound_and_noise(monkeypatch) -> None:
    with pytest.raises(SpikeDataError, match="binary data"):
        safety.read_stdin(io.BytesIO(b"\x00" * 100))
    monkeypatch.setenv("SPIKERATES_MAX_STDIN_BYTES", "1K")
    with pytest.raises(ResourceLimitError, match="standard input"):
        safety.read_stdin(io.BytesIO(b"unit,time\n" * 200))
    assert safety.read_stdin(io.BytesIO(b"unit,time\n0,1\n")) == b"unit,time\n0,1\n"


# ----------------------------------------------------------------------------
# NPZ and NPY


@settings(max_examples=60, deadline=None)
@given(
    arrays=st.dictionaries(
        st.sampled_from(["a", "b", "spike_times", "t"]),
        hnp.arrays(
            st.sampled_from(
                [np.float64, np.int32, np.uint64, np.bool_, np.dtype("U3")]
            ),
            hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
        ),
        min_size=1,
    ),
    compress=st.booleans(),
    fortran=st.booleans(),
)
def test_npz_loader_agrees_with_numpy(arrays, compress, fortran) -> None:
    if fortran:
        arrays = {k: np.asfortranarray(v) for k, v in arrays.items()}
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **arrays)
    with np.load(io.BytesIO(buf.getvalue())) as oracle:
        archive = safety.open_npz(io.BytesIO(buf.getvalue()), name="x.npz")
        try:
            assert sorted(archive.files) == sorted(oracle.files)
            for name in oracle.files:
                np.testing.assert_array_equal(archive[name], oracle[name])
                assert archive[name].dtype == oracle[name].dtype
        finally:
            archive.close()


def test_npy_loader_refuses_a_short_file(tmp_path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.arange(10))
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(SpikeDataError, match="truncated"):
        safety.load_npy(str(path))


def test_npy_loader_refuses_objects(tmp_path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.array([1, None], dtype=object), allow_pickle=True)
    with pytest.raises(SpikeDataError, match="pickled"):
        safety.load_npy(str(path))


def test_format_bytes() -> None:
    assert safety.format_bytes(2.4e9) == "2.4 GB"
    assert safety.format_bytes(512) == "512 bytes"
    assert math.isclose(float(safety.format_bytes(1.5e6).split()[0]), 1.5)
