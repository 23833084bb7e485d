"""Coverage-guided fuzzing of the ``params.py`` parser (atheris).

    python tests/fuzz/fuzz_params.py -atheris_runs=100000 -max_len=4096 \
        -rss_limit_mb=1024 -timeout=10 tests/fuzz/corpus/params

Each input is written as ``params.py`` and parsed with
:func:`spikerates.io.safety.parse_params`, which must never execute it,
recurse on it, or raise anything but a
:class:`spikerates.errors.SpikeratesError`. Whatever it returns must agree
with :func:`ast.literal_eval` on the same assignments.
"""

from __future__ import annotations

import ast
import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(__file__))
from _target import quiet, scratch_dir, write  # noqa: E402

with atheris.instrument_imports(include=["spikerates"]):
    from spikerates.errors import SpikeratesError
    from spikerates.io.safety import parse_params

PATH = os.path.join(scratch_dir(), "params.py")


def _nan_safe(value: object) -> str:
    return repr(value)


def test_one_input(data: bytes) -> None:
    write(PATH, data)
    try:
        params = parse_params(PATH)
    except SpikeratesError:
        return
    # Every value found is one that Python itself reads as that literal.
    try:
        tree = ast.parse(data.decode("utf-8-sig"))
    except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError):
        return
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id in params:
                try:
                    expected = ast.literal_eval(node.value)
                except (ValueError, TypeError, SyntaxError, RecursionError):
                    continue
                if _nan_safe(expected) != _nan_safe(params[target.id]):
                    # A later assignment may have overridden this one.
                    last = [
                        n
                        for n in tree.body
                        if isinstance(n, ast.Assign)
                        and any(
                            isinstance(t, ast.Name) and t.id == target.id
                            for t in n.targets
                        )
                    ][-1]
                    if last is node:
                        raise AssertionError(
                            f"{target.id}: parsed {params[target.id]!r}, "
                            f"Python reads {expected!r}"
                        )


if __name__ == "__main__":
    quiet()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
