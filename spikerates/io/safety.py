"""The resource policy of the readers: what an input may ask of the machine.

A small or hostile file must not make spikerates read other files, allocate
without bound, run for minutes or crash with a traceback. Every reader goes
through the functions here at the one place it opens its format:

* HDF5 files are opened read-only and scanned once (a bounded walk over at
  most :data:`MAX_HDF5_OBJECTS` links, :data:`MAX_HDF5_DEPTH` groups deep)
  before anything is read. External links, datasets with external storage
  and virtual datasets are refused unless external data is allowed
  explicitly (``allow_external=True``, ``--allow-external-data``); links are
  never followed out of the file without that permission.
* A dataset or array is read whole only when its declared size is at most
  :data:`MAX_ARRAY_BYTES`, and when the bytes it declares are not more than
  :data:`MAX_DECOMPRESSION_RATIO` times the bytes it stores (an HDF5 dataset
  declaring gigabytes it never wrote, an NPZ entry that deflates a
  thousandfold), the ratio being checked above
  :data:`DECOMPRESSION_FLOOR_BYTES`.
* NPZ members are read by :func:`open_npz` without pickle: the zip entry's
  flags (encryption, compression method) and sizes are checked first, the
  ``.npy`` header is parsed with :mod:`numpy.lib.format` and its errors
  reported, and the data is read in blocks into an array of the declared
  size only.
* Text is read by bounded lines: a header line is at most
  :data:`MAX_HEADER_BYTES` with at most :data:`MAX_COLUMNS` fields, any
  other line at most :data:`MAX_LINE_BYTES`; standard input at most
  :data:`MAX_STDIN_BYTES`, and binary noise on it is refused at once.
* ``params.py`` is parsed by :func:`parse_params` from Python's tokens with
  an explicit stack: nothing is executed and nothing recurses, whatever the
  nesting; integers longer than :data:`MAX_INT_DIGITS` digits are refused.
* Times in seconds beyond :data:`MAX_ABS_TIME` are refused
  (:func:`check_times`), before any grid is computed from them.

Each limit can be raised for one run through the environment variable
``SPIKERATES_<NAME>`` (e.g. ``SPIKERATES_MAX_ARRAY_BYTES=8G``). Going past a
limit raises :class:`InputLimitError`, both a
:class:`~spikerates.errors.ResourceLimitError` and a
:class:`~spikerates.errors.SpikeDataError` naming the file and dataset; a
malformed structure raises :class:`~spikerates.errors.SpikeDataError`.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import math
import os
import re
import tokenize
import zipfile
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np

from spikerates.errors import ResourceLimitError, SpikeDataError

__all__ = [
    "DECOMPRESSION_FLOOR_BYTES",
    "MAX_ABS_TIME",
    "MAX_ARRAY_BYTES",
    "MAX_COLUMNS",
    "MAX_DECOMPRESSION_RATIO",
    "MAX_HDF5_DEPTH",
    "MAX_HDF5_OBJECTS",
    "MAX_HEADER_BYTES",
    "MAX_INT_DIGITS",
    "MAX_LINE_BYTES",
    "MAX_LITERAL_DEPTH",
    "MAX_PARAMS_BYTES",
    "MAX_STDIN_BYTES",
    "MAX_ZIP_MEMBERS",
    "InputLimitError",
    "SafeNpz",
    "allow_external_data",
    "check_array_size",
    "check_dataset",
    "check_line_lengths",
    "check_ragged",
    "check_times",
    "external_data_allowed",
    "iter_lines",
    "limit",
    "load_npy",
    "open_hdf5_readonly",
    "open_npz",
    "parse_params",
    "read_attr_scalar",
    "read_stdin",
    "safe_link",
    "scan_hdf5",
]

# ----------------------------------------------------------------------------
# The limits (defaults; each can be raised with SPIKERATES_<NAME>)

#: Largest array read whole into memory, in bytes (2 GiB). Larger HDF5
#: dense matrices are still streamed by row blocks.
MAX_ARRAY_BYTES = 2 << 30
#: Largest ratio of declared (uncompressed) bytes to stored bytes.
MAX_DECOMPRESSION_RATIO = 1000
#: Arrays below this declared size (16 MiB) skip the ratio check: a small
#: all-zero array may compress as well as it likes.
DECOMPRESSION_FLOOR_BYTES = 16 << 20
#: Longest header line of a text table, in bytes (1 MiB).
MAX_HEADER_BYTES = 1 << 20
#: Most fields in a text header (units of a dense CSV).
MAX_COLUMNS = 100_000
#: Longest line of a text table after the header, in bytes (16 MiB).
MAX_LINE_BYTES = 16 << 20
#: Most bytes read from standard input (4 GiB).
MAX_STDIN_BYTES = 4 << 30
#: Most links visited when an HDF5 file is scanned.
MAX_HDF5_OBJECTS = 100_000
#: Deepest group nesting followed in an HDF5 file.
MAX_HDF5_DEPTH = 64
#: Most members of an NPZ archive.
MAX_ZIP_MEMBERS = 10_000
#: Largest ``params.py`` read, in bytes (1 MiB).
MAX_PARAMS_BYTES = 1 << 20
#: Deepest nesting of brackets in a ``params.py`` literal.
MAX_LITERAL_DEPTH = 32
#: Most digits of an integer literal in ``params.py``.
MAX_INT_DIGITS = 100
#: Largest magnitude of a time in seconds (1e10 s, about 317 years).
MAX_ABS_TIME = 1e10

_DEFAULTS: dict[str, int | float] = {
    "MAX_ARRAY_BYTES": MAX_ARRAY_BYTES,
    "MAX_DECOMPRESSION_RATIO": MAX_DECOMPRESSION_RATIO,
    "DECOMPRESSION_FLOOR_BYTES": DECOMPRESSION_FLOOR_BYTES,
    "MAX_HEADER_BYTES": MAX_HEADER_BYTES,
    "MAX_COLUMNS": MAX_COLUMNS,
    "MAX_LINE_BYTES": MAX_LINE_BYTES,
    "MAX_STDIN_BYTES": MAX_STDIN_BYTES,
    "MAX_HDF5_OBJECTS": MAX_HDF5_OBJECTS,
    "MAX_HDF5_DEPTH": MAX_HDF5_DEPTH,
    "MAX_ZIP_MEMBERS": MAX_ZIP_MEMBERS,
    "MAX_PARAMS_BYTES": MAX_PARAMS_BYTES,
    "MAX_LITERAL_DEPTH": MAX_LITERAL_DEPTH,
    "MAX_INT_DIGITS": MAX_INT_DIGITS,
    "MAX_ABS_TIME": MAX_ABS_TIME,
}

_SIZE_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class InputLimitError(ResourceLimitError, SpikeDataError):
    """An input that asks for more than a limit of the resource policy.

    Both a :class:`~spikerates.errors.ResourceLimitError` and a
    :class:`~spikerates.errors.SpikeDataError` (``path``, ``dataset``,
    ``message``), so it is reported like any bad input.
    """


def env_name(name: str) -> str:
    """The environment variable that raises limit ``name``."""
    return f"SPIKERATES_{name}"


def limit(name: str) -> int | float:
    """The value of limit ``name`` for this run.

    The default (:data:`MAX_ARRAY_BYTES`...) unless the environment variable
    ``SPIKERATES_<name>`` holds a number, optionally with a binary suffix
    ``K``, ``M``, ``G`` or ``T`` for byte sizes (``8G``).

    Raises
    ------
    ParameterError
        For a value that is not a positive number.
    """
    from spikerates.errors import ParameterError

    default = _DEFAULTS[name]
    raw = os.environ.get(env_name(name))
    if raw is None or not raw.strip():
        return default
    text = raw.strip().upper().removesuffix("IB").removesuffix("B")
    match = re.fullmatch(r"([0-9.eE+]+)\s*([KMGT]?)", text)
    try:
        if match is None:
            raise ValueError(raw)
        value = float(match.group(1)) * _SIZE_SUFFIXES[match.group(2)]
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ParameterError(
            env_name(name), f"must be a positive number (e.g. 8G), got {raw!r}"
        )
    return int(value) if isinstance(default, int) else value


def format_bytes(n: float) -> str:
    """``n`` bytes for a message: ``2.4 GB``, ``180 kB``."""
    n = float(n)
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def _too_big(
    what: str, value: float, name: str, path: str | None, dataset: str | None
) -> InputLimitError:
    limit_value = limit(name)
    shown = format_bytes if name.endswith("BYTES") else (lambda v: f"{v:g}")
    return InputLimitError(
        f"{what} {shown(value)}, over the limit of {shown(limit_value)}; "
        f"set {env_name(name)} to raise it",
        path=path,
        dataset=dataset,
    )


# ----------------------------------------------------------------------------
# Sizes


def declared_bytes(shape: tuple[int, ...], itemsize: int) -> int:
    """Bytes of an array of ``shape`` and ``itemsize`` (exact, no overflow)."""
    return math.prod(int(n) for n in shape) * int(itemsize)


def check_array_size(
    shape: tuple[int, ...],
    itemsize: int,
    *,
    stored: int | None = None,
    path: str | None = None,
    dataset: str | None = None,
    whole: bool = True,
) -> int:
    """Check an array's declared size before it is read; return it in bytes.

    Parameters
    ----------
    shape : tuple of int
        The declared shape.
    itemsize : int
        Bytes per element.
    stored : int, optional
        Bytes the file actually stores for it (compressed size), for the
        decompression-ratio check.
    path, dataset : str, optional
        Named in the error.
    whole : bool
        The array is read whole into memory (then :data:`MAX_ARRAY_BYTES`
        applies); False for an array streamed by blocks.

    Raises
    ------
    InputLimitError
        Above :data:`MAX_ARRAY_BYTES`, or declaring more than
        :data:`MAX_DECOMPRESSION_RATIO` times what it stores.
    """
    if any(int(n) < 0 for n in shape):
        raise SpikeDataError(
            f"declares a negative dimension {tuple(shape)}", path=path, dataset=dataset
        )
    size = declared_bytes(shape, itemsize)
    if whole and size > limit("MAX_ARRAY_BYTES"):
        raise _too_big(
            f"an array of shape {tuple(int(n) for n in shape)} needs",
            size,
            "MAX_ARRAY_BYTES",
            path,
            dataset,
        )
    if stored is not None and size > limit("DECOMPRESSION_FLOOR_BYTES"):
        ratio = math.inf if stored <= 0 else size / stored
        if ratio > limit("MAX_DECOMPRESSION_RATIO"):
            raise InputLimitError(
                f"declares {format_bytes(size)} but stores {format_bytes(stored)} "
                f"(a ratio over {limit('MAX_DECOMPRESSION_RATIO'):g}: never written "
                f"or compressed beyond the limit); set "
                f"{env_name('MAX_DECOMPRESSION_RATIO')} to raise it",
                path=path,
                dataset=dataset,
            )
    return size


def check_times(
    values: Any, *, path: str | None = None, dataset: str | None = None
) -> None:
    """Refuse times in seconds beyond :data:`MAX_ABS_TIME`, so that no grid
    arithmetic overflows on them (NaN and infinities are left to the data
    model, which names them).

    Parameters
    ----------
    values : array_like
        Times in seconds (any shape, any numeric dtype).
    """
    arr = np.asarray(values)
    if arr.size == 0 or arr.dtype.kind not in "iuf":
        return
    bound = limit("MAX_ABS_TIME")
    if arr.dtype.kind == "f":
        bad = np.isfinite(arr) & (np.abs(arr) > bound)
    else:
        if -bound <= float(arr.min()) and float(arr.max()) <= bound:
            return
        bad = (arr > bound) | (arr < -bound) if arr.dtype.kind == "i" else arr > bound
    if np.any(bad):
        first = arr.ravel()[np.flatnonzero(np.ravel(bad))[0]]
        shown = f"{float(first):g}" if arr.dtype.kind == "f" else str(int(first))
        raise SpikeDataError(
            f"time {shown} s is beyond ±{bound:g} s; times must be seconds "
            f"(set {env_name('MAX_ABS_TIME')} to allow more)",
            path=path,
            dataset=dataset,
        )


def check_ragged(
    flat: Any,
    index: Any,
    *,
    path: str | None = None,
    dataset: str = "spike_times",
) -> None:
    """Check an NWB-style ragged pair before it is split into units.

    The times must pass :func:`check_times`; an end offset beyond the number
    of times is named as stored (an unsigned ``2**64 - 1`` is not shown as
    ``-1``, a float ``1e300`` not as a wrapped integer).

    Parameters
    ----------
    flat : array_like, shape (n,)
        All spike times in seconds.
    index : array_like, shape (N,)
        End offset of each unit in ``flat``.
    """
    check_times(flat, path=path, dataset=dataset)
    ends = np.asarray(index)
    if ends.size == 0 or ends.dtype.kind not in "iuf":
        return
    n_values = int(np.size(flat))
    if ends.dtype.kind == "f":
        beyond = ~(np.abs(ends) <= n_values)
    else:
        beyond = (
            (ends > n_values) | (ends < 0)
            if ends.dtype.kind == "i"
            else ends > n_values
        )
    if np.any(beyond):
        value = ends.ravel()[np.flatnonzero(np.ravel(beyond))[0]]
        shown = repr(float(value)) if ends.dtype.kind == "f" else str(int(value))
        raise SpikeDataError(
            f"offset {shown} is out of range for {n_values} spike times",
            path=path,
            dataset=f"{dataset}_index",
        )


# ----------------------------------------------------------------------------
# HDF5

_allow_external: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "spikerates_allow_external_data", default=False
)


@contextlib.contextmanager
def allow_external_data(allowed: bool = True) -> Iterator[None]:
    """Within the block, HDF5 external data is followed when ``allowed``.

    The default, outside any such block, is to refuse it.
    """
    token = _allow_external.set(bool(allowed))
    try:
        yield
    finally:
        _allow_external.reset(token)


def external_data_allowed(allow_external: bool | None = None) -> bool:
    """``allow_external`` if given, else the setting of the enclosing
    :func:`allow_external_data` block (False by default)."""
    return _allow_external.get() if allow_external is None else bool(allow_external)


def _refuse_external(kind: str, path: str | None, dataset: str) -> SpikeDataError:
    return SpikeDataError(
        f"{kind}; data outside this file is not read unless "
        "--allow-external-data (allow_external_data=True) is given",
        path=path,
        dataset=dataset,
    )


def check_dataset(
    ds: Any,
    allow_external: bool | None = None,
    *,
    path: str | None = None,
    whole: bool = True,
    sizes: bool = True,
) -> int:
    """Check an h5py Dataset before reading it; return its declared bytes.

    Parameters
    ----------
    ds : h5py.Dataset
    allow_external : bool, optional
        Follow external storage and virtual datasets (default: refuse, or the
        enclosing :func:`allow_external_data` setting).
    path : str, optional
        The file, named in errors.
    whole : bool
        The dataset is read whole (``MAX_ARRAY_BYTES`` applies); False when
        it is streamed by blocks (only the decompression ratio applies).
    sizes : bool
        Check the declared size (False: only where the data lives).

    Raises
    ------
    SpikeDataError
        For external storage or a virtual dataset (unless allowed).
    InputLimitError
        For a declared size over the limits.
    """
    import h5py

    name = ds.name or "(anonymous dataset)"
    try:
        dcpl = ds.id.get_create_plist()
        external = dcpl.get_external_count() > 0
        virtual = dcpl.get_layout() == h5py.h5d.VIRTUAL
        shape = ds.shape or ()
        itemsize = ds.dtype.itemsize
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise SpikeDataError(
            f"unreadable dataset header ({exc})", path=path, dataset=name
        ) from exc
    if shape is None:
        return 0
    allowed = external_data_allowed(allow_external)
    if external and not allowed:
        raise _refuse_external("stores its data in external files", path, name)
    if virtual and not allowed:
        raise _refuse_external("is a virtual dataset mapping other files", path, name)
    if not sizes:
        return declared_bytes(shape, itemsize)
    check_vlen_heap(ds, path=path)
    stored: int | None = None
    if not (external or virtual):
        try:
            stored = int(ds.id.get_storage_size())
        except (OSError, RuntimeError, ValueError):
            stored = 0
    return check_array_size(
        shape, itemsize, stored=stored, path=path, dataset=name, whole=whole
    )


def _file_bytes(ds: Any) -> tuple[Any, int] | None:
    """A reader of the raw bytes of the file holding ``ds`` and its size."""
    name = ds.file.filename
    if isinstance(name, str) and os.path.isfile(name):
        fh = open(name, "rb")  # noqa: SIM115 - closed by the caller
        return fh, os.fstat(fh.fileno()).st_size
    try:
        image = ds.file.id.get_file_image()
    except (OSError, RuntimeError, ValueError, AttributeError):
        return None
    return io.BytesIO(image), len(image)


def check_vlen_heap(ds: Any, *, path: str | None = None) -> None:
    """Walk the global heap collections a variable-length dataset points to.

    libhdf5 can loop forever in native code on a damaged collection, where
    no timeout reaches it, or allocate what a damaged reference declares; so
    before such a dataset is read, each of its heap references (contiguous
    or chunked layout, chunks unfiltered or deflated) must name a collection
    (``GCOL``) inside the file whose objects chain within bounds, and an
    object of the collection large enough for the value.
    """
    import struct

    import h5py

    if h5py.check_vlen_dtype(ds.dtype) is None and not (
        h5py.check_string_dtype(ds.dtype) is not None
        and h5py.check_string_dtype(ds.dtype).length is None
    ):
        return
    name = ds.name
    try:
        # The layout parsed here is that of 8-byte addresses and lengths.
        if tuple(ds.file.id.get_create_plist().get_sizes()) != (8, 8):
            return
        layout = ds.id.get_create_plist().get_layout()
    except (OSError, RuntimeError, ValueError):
        return
    if layout not in (h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED):
        return
    opened = _file_bytes(ds)
    if opened is None:
        return
    fh, size = opened

    def damaged(why: str) -> SpikeDataError:
        return SpikeDataError(
            f"damaged variable-length data ({why})", path=path, dataset=name
        )

    try:
        if layout == h5py.h5d.CONTIGUOUS:
            pieces = _contiguous_refs(ds, fh, size, damaged)
        else:
            pieces = _chunked_refs(ds, fh, size, damaged)
        collections: dict[int, dict[int, int]] = {}
        # What reading makes of the values: each is a copy of its heap
        # object (many references may name one large object) and a Python
        # object of its own.
        vlen = h5py.check_vlen_dtype(ds.dtype)
        item = 1 if vlen is None else max(1, np.dtype(vlen).itemsize)
        values = 0
        for refs in pieces:
            for pos in range(0, len(refs) - 15, 16):
                length, address, index = struct.unpack_from("<IQI", refs, pos)
                values += _VALUE_OVERHEAD + length * item
                if length == 0:
                    continue
                objects = collections.get(address)
                if objects is None:
                    if address + 16 > size:
                        raise damaged("a heap address beyond the end of the file")
                    fh.seek(address)
                    head = fh.read(16)
                    if head[:4] != b"GCOL":
                        raise damaged("no heap collection where one is named")
                    (extent,) = struct.unpack_from("<Q", head, 8)
                    if extent < 16 or address + extent > size:
                        raise damaged("a heap collection beyond the end of the file")
                    fh.seek(address)
                    body = fh.read(extent)
                    objects = _heap_objects(body, extent, damaged)
                    collections[address] = objects
                if objects.get(index, -1) < length:
                    raise damaged("a reference to a missing heap object")
        if values > limit("MAX_ARRAY_BYTES") or (
            values > limit("DECOMPRESSION_FLOOR_BYTES")
            and values > limit("MAX_DECOMPRESSION_RATIO") * size
        ):
            raise InputLimitError(
                f"its variable-length values would take {format_bytes(values)} "
                f"read, from a file of {format_bytes(size)} (references that "
                f"repeat large values); set {env_name('MAX_DECOMPRESSION_RATIO')} "
                f"or {env_name('MAX_ARRAY_BYTES')} to raise the limits",
                path=path,
                dataset=name,
            )
    finally:
        fh.close()


#: Bytes a variable-length value costs once read, beyond its data (the
#: Python object and libhdf5's descriptor).
_VALUE_OVERHEAD = 64


#: Bytes of one heap reference of a variable-length value (8-byte addresses).
_VLEN_REF_BYTES = 16


def _contiguous_refs(
    ds: Any, fh: Any, size: int, damaged: Callable[[str], SpikeDataError]
) -> Iterator[bytes]:
    """The raw heap references of a contiguous dataset."""
    try:
        offset = ds.id.get_offset()
        stored = int(ds.id.get_storage_size())
    except (OSError, RuntimeError, ValueError):
        return
    if offset is None or stored == 0:
        return
    if offset + stored > size:
        raise damaged("data beyond the end of the file")
    fh.seek(offset)
    yield fh.read(min(stored, _VLEN_REF_BYTES * math.prod(ds.shape or ())))


def _chunked_refs(
    ds: Any, fh: Any, size: int, damaged: Callable[[str], SpikeDataError]
) -> Iterator[bytes]:
    """The raw heap references of each chunk of a chunked dataset (only the
    elements inside the dataset's extent). Chunks are read as stored and
    inflated here when deflated; with any other filter nothing is yielded
    (the references cannot be read without libhdf5)."""
    import zlib

    import h5py

    try:
        plist = ds.id.get_create_plist()
        filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        n_chunks = int(ds.id.get_num_chunks())
    except (OSError, RuntimeError, ValueError):
        return
    if any(f != h5py.h5z.FILTER_DEFLATE for f in filters) or not ds.chunks:
        return
    if n_chunks > limit("MAX_HDF5_OBJECTS"):
        raise damaged(f"{n_chunks} chunks")
    shape = np.asarray(ds.shape, dtype=np.int64)
    chunk = np.asarray(ds.chunks, dtype=np.int64)
    chunk_bytes = _VLEN_REF_BYTES * int(chunk.prod())
    for i in range(n_chunks):
        try:
            info = ds.id.get_chunk_info(i)
        except (OSError, RuntimeError, ValueError):
            raise damaged("an unreadable chunk index") from None
        if info.byte_offset is None or info.size == 0:
            continue
        if info.byte_offset + info.size > size:
            raise damaged("a chunk beyond the end of the file")
        fh.seek(info.byte_offset)
        raw = fh.read(info.size)
        if filters and not info.filter_mask & 1:
            inflate = zlib.decompressobj()
            try:
                raw = inflate.decompress(raw, chunk_bytes)
            except zlib.error:
                raise damaged("a chunk that does not inflate") from None
        if len(raw) < chunk_bytes:
            raise damaged("a chunk shorter than its elements")
        refs = np.frombuffer(raw[:chunk_bytes], dtype=np.uint8).reshape(
            (*chunk, _VLEN_REF_BYTES)
        )
        # Only the elements inside the extent are ever read.
        inside = np.minimum(chunk, np.maximum(shape - np.asarray(info.chunk_offset), 0))
        yield refs[tuple(slice(0, int(n)) for n in inside)].tobytes()


def _heap_objects(
    body: bytes, extent: int, damaged: Callable[[str], SpikeDataError]
) -> dict[int, int]:
    """The objects of one global heap collection, walked as libhdf5 walks it.

    libhdf5 reads every record up to the end of the collection, the free
    space record (object 0) included, whose size counts its own header; a
    free space record of size 0 would never move its walk forward.
    """
    import struct

    objects: dict[int, int] = {}
    at = 16
    while at + 16 <= extent:
        obj, _, obj_size = struct.unpack_from("<HHxxxxQ", body, at)
        if obj == 0:
            if obj_size == 0:
                raise damaged("an empty free space record in a heap collection")
            at += obj_size
            continue
        step = 16 + ((obj_size + 7) // 8) * 8
        if at + step > extent:
            raise damaged("a heap object past its collection")
        objects[obj] = obj_size
        at += step
    return objects


def scan_hdf5(
    f: Any, allow_external: bool | None = None, *, path: str | None = None
) -> int:
    """Walk every link of an open file once, within bounds; return the count.

    Refuses external links, user-defined links, external storage and virtual
    datasets (unless allowed), and files with more than
    :data:`MAX_HDF5_OBJECTS` links or groups nested deeper than
    :data:`MAX_HDF5_DEPTH`. Hard links are followed once per object (cycles
    end); soft links are not followed (their targets are reached through the
    hard links that hold them).
    """
    import h5py

    allowed = external_data_allowed(allow_external)
    max_objects = int(limit("MAX_HDF5_OBJECTS"))
    max_depth = int(limit("MAX_HDF5_DEPTH"))
    seen: set[Any] = set()
    count = 0
    root = f["/"]
    if not isinstance(root, h5py.Group):
        raise SpikeDataError("damaged HDF5 file (its root is not a group)", path=path)
    stack: list[tuple[Any, str, int]] = [(root, "/", 0)]
    while stack:
        group, gname, depth = stack.pop()
        try:
            key = (group.id.fileno, h5py.h5o.get_info(group.id).addr)
        except (OSError, RuntimeError, ValueError):
            key = gname
        if key in seen:
            continue
        seen.add(key)
        if depth > max_depth:
            raise InputLimitError(
                f"groups nested more than {max_depth} deep; set "
                f"{env_name('MAX_HDF5_DEPTH')} to raise the limit",
                path=path,
                dataset=gname,
            )
        links: list[tuple[bytes, Any]] = []

        room = max_objects - count

        def collect(name: bytes, info: Any, links: list = links, room=room) -> Any:
            links.append((name, info.type))
            return True if len(links) > room else None

        try:
            group.id.links.iterate(collect, info=True)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise SpikeDataError(
                f"unreadable group ({exc})", path=path, dataset=gname
            ) from exc
        count += len(links)
        if count > max_objects:
            raise InputLimitError(
                f"holds more than {max_objects} objects; set "
                f"{env_name('MAX_HDF5_OBJECTS')} to raise the limit",
                path=path,
            )
        for raw_name, link_type in links:
            try:
                name = raw_name.decode("utf-8")
            except UnicodeDecodeError:
                shown = raw_name.decode("utf-8", "replace")
                raise SpikeDataError(
                    f"the name {shown!r} is not UTF-8 text", path=path, dataset=gname
                ) from None
            full = gname.rstrip("/") + "/" + name
            if link_type == h5py.h5l.TYPE_SOFT:
                continue
            if link_type != h5py.h5l.TYPE_HARD:
                if allowed:
                    continue
                kind = (
                    "is an external link to another file"
                    if link_type == h5py.h5l.TYPE_EXTERNAL
                    else "is a user-defined link"
                )
                raise _refuse_external(kind, path, full)
            try:
                obj = group.get(name)
            except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
                raise SpikeDataError(
                    f"unreadable object ({exc})", path=path, dataset=full
                ) from exc
            if isinstance(obj, h5py.Group):
                stack.append((obj, full, depth + 1))
            elif isinstance(obj, h5py.Dataset):
                # Sizes are checked when a dataset is read, not here: a file
                # is not refused for a dataset nobody asked for.
                check_dataset(obj, allowed, path=path, sizes=False)
    return count


def open_hdf5_readonly(
    path_or_fileobj: Any,
    allow_external: bool | None = None,
    *,
    name: str | None = None,
) -> Any:
    """Open an HDF5 file read-only and check it with :func:`scan_hdf5`.

    Parameters
    ----------
    path_or_fileobj : str or binary file object
    allow_external : bool, optional
        Follow external links, external storage and virtual datasets
        (default: refuse them, or the :func:`allow_external_data` setting).
    name : str, optional
        The file as named in errors (default: the path).

    Returns
    -------
    h5py.File

    Raises
    ------
    SpikeDataError
        For a file that is not HDF5, or holds external data not allowed.
    InputLimitError
        For a file past the object or depth limits.
    """
    import h5py

    if name is None:
        name = path_or_fileobj if isinstance(path_or_fileobj, str) else None
    try:
        f = h5py.File(path_or_fileobj, "r")
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        text = str(exc)
        reason = text.split("(", 1)[-1].rstrip(")") if "(" in text else text
        raise SpikeDataError(
            f"not a readable HDF5 file ({reason or type(exc).__name__})", path=name
        ) from exc
    try:
        scan_hdf5(f, allow_external, path=name)
    except SpikeDataError:
        f.close()
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        # h5py's errors on a damaged file, from anywhere in the walk.
        f.close()
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise SpikeDataError(f"damaged HDF5 file ({text})", path=name) from exc
    except BaseException:
        f.close()
        raise
    return f


def safe_link(group: Any, name: str, allow_external: bool | None = None) -> Any:
    """``group[name]`` when it is a link inside the file, else None.

    Each component of ``name`` is checked: an external (or user-defined)
    link raises unless external data is allowed; a missing or broken link
    gives None.
    """
    import h5py

    obj = group
    parts = [p for p in name.split("/") if p]
    if name.startswith("/"):
        obj = group.file["/"]
    for part in parts:
        if not isinstance(obj, h5py.Group):
            return None
        try:
            link = obj.get(part, getlink=True)
        except (OSError, RuntimeError, ValueError, KeyError, TypeError):
            return None
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink | h5py.SoftLink):
            if not external_data_allowed(allow_external):
                full = obj.name.rstrip("/") + "/" + part
                raise _refuse_external(
                    "is a link to another file", obj.file.filename, full
                )
        try:
            obj = obj.get(part)
        except (OSError, RuntimeError, ValueError, KeyError, TypeError):
            return None
        if obj is None:
            return None
    return obj


def read_attr_scalar(
    obj: Any, key: str, *, path: str | None = None, kind: str = "number"
) -> float | None:
    """Attribute ``key`` of an HDF5 object as one finite float, or None.

    Raises
    ------
    SpikeDataError
        When the attribute is not a single finite number.
    """
    dataset = f"{obj.name.rstrip('/')}/@{key}"
    try:
        if key not in obj.attrs:
            return None
        aid = obj.attrs.get_id(key)
        shape = aid.shape
        if shape is not None and math.prod(shape) > 1:
            raise SpikeDataError(
                f"expected one {kind}, got an array of shape {shape}",
                path=path,
                dataset=dataset,
            )
        value = obj.attrs[key]
    except SpikeDataError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise SpikeDataError(
            f"unreadable attribute ({exc})", path=path, dataset=dataset
        ) from exc
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.size != 1:
        raise SpikeDataError(
            f"expected one {kind}, got {arr.dtype} of shape {arr.shape}",
            path=path,
            dataset=dataset,
        )
    number = float(arr.ravel()[0])
    if not math.isfinite(number):
        raise SpikeDataError(
            f"must be a finite {kind}, got {number}", path=path, dataset=dataset
        )
    return number


# ----------------------------------------------------------------------------
# NPY and NPZ

_NPY_MAGIC = b"\x93NUMPY"
_READ_BLOCK = 16 << 20
_ZIP_METHODS = {
    zipfile.ZIP_STORED,
    zipfile.ZIP_DEFLATED,
    zipfile.ZIP_BZIP2,
    zipfile.ZIP_LZMA,
}
PICKLE_MESSAGE = (
    "holds Python objects (pickled), which are not read; store numbers or text"
)


def _npy_header(
    fh: IO[bytes], path: str | None, dataset: str | None
) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, header bytes) of a ``.npy`` stream."""
    from numpy.lib import format as npy_format

    start = fh.tell() if fh.seekable() else 0
    try:
        magic = fh.read(len(_NPY_MAGIC))
        if magic != _NPY_MAGIC:
            raise SpikeDataError(
                "not a .npy array (no NUMPY signature)", path=path, dataset=dataset
            )
        version = tuple(fh.read(2))
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npy_format.read_array_header_2_0(fh)
        else:
            raise SpikeDataError(
                f"unknown .npy format version {version}", path=path, dataset=dataset
            )
    except SpikeDataError:
        raise
    except (Exception, RecursionError) as exc:
        # numpy's header parser raises ValueError, SyntaxError, tokenize
        # errors and others on a broken header.
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise SpikeDataError(
            f"broken .npy header ({text})", path=path, dataset=dataset
        ) from None
    if not isinstance(dtype, np.dtype):
        raise SpikeDataError("broken .npy header", path=path, dataset=dataset)
    if dtype.hasobject:
        raise SpikeDataError(PICKLE_MESSAGE, path=path, dataset=dataset)
    if dtype.kind not in "biufcSUV" or dtype.itemsize == 0:
        raise SpikeDataError(
            f"unsupported dtype {dtype} in the .npy header", path=path, dataset=dataset
        )
    shape = tuple(int(n) for n in shape)
    if dtype.subdtype is not None:
        # A subarray dtype such as (3,)<f8: its dimensions are the array's
        # last ones, as numpy reads it.
        if fortran:
            raise SpikeDataError(
                f"unsupported dtype {dtype} in Fortran order in the .npy header",
                path=path,
                dataset=dataset,
            )
        dtype, extra = dtype.subdtype
        shape = (*shape, *(int(n) for n in extra))
        if dtype.kind not in "biufcSUV" or dtype.itemsize == 0:
            raise SpikeDataError(
                f"unsupported dtype {dtype} in the .npy header",
                path=path,
                dataset=dataset,
            )
    header = (fh.tell() - start) if fh.seekable() else 0
    return shape, bool(fortran), dtype, header


def _read_exact(
    fh: IO[bytes],
    shape: tuple[int, ...],
    fortran: bool,
    dtype: np.dtype,
    path: str | None,
    dataset: str | None,
) -> np.ndarray:
    nbytes = declared_bytes(shape, dtype.itemsize)
    buf = np.empty(nbytes, dtype=np.uint8)
    view = memoryview(buf)
    pos = 0
    while pos < nbytes:
        chunk = fh.read(min(_READ_BLOCK, nbytes - pos))
        if not chunk:
            raise SpikeDataError(
                f"truncated: the header declares {format_bytes(nbytes)}, the data "
                f"ends after {format_bytes(pos)}",
                path=path,
                dataset=dataset,
            )
        view[pos : pos + len(chunk)] = chunk
        pos += len(chunk)
    arr = buf.view(dtype)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def load_npy(path: str, *, dataset: str | None = None) -> np.ndarray:
    """Read a ``.npy`` file with the header checked first, never unpickling.

    Raises
    ------
    SpikeDataError
        For a broken header, an object dtype, or data shorter than declared.
    InputLimitError
        For a declared size above :data:`MAX_ARRAY_BYTES`.
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            shape, fortran, dtype, header = _npy_header(fh, path, dataset)
            nbytes = check_array_size(shape, dtype.itemsize, path=path, dataset=dataset)
            if os.path.isfile(path) and header + nbytes > size:
                raise SpikeDataError(
                    f"truncated: the header declares shape {shape} "
                    f"({format_bytes(nbytes)}) but the file holds "
                    f"{format_bytes(size - header)} of data",
                    path=path,
                    dataset=dataset,
                )
            return _read_exact(fh, shape, fortran, dtype, path, dataset)
    except OSError as exc:
        raise SpikeDataError(
            f"cannot read ({exc.strerror or exc})", path=path, dataset=dataset
        ) from exc


class SafeNpz:
    """An NPZ archive read member by member within the resource policy.

    Like :class:`numpy.lib.npyio.NpzFile`: ``files`` lists the array names
    (``.npy`` dropped), ``archive[name]`` reads one, ``close()`` closes.
    Nothing is unpickled.
    """

    def __init__(self, fileobj: Any, *, name: str | None = None) -> None:
        self.name = name
        try:
            self.zip = zipfile.ZipFile(fileobj)
        except Exception as exc:
            # zipfile's parser raises BadZipFile, NotImplementedError (a
            # version it does not know), struct.error, ValueError... on
            # damaged archives: all of them mean the same to the user.
            raise SpikeDataError(
                f"not a readable NPZ archive ({exc or type(exc).__name__})", path=name
            ) from exc
        try:
            infos = self.zip.infolist()
            if len(infos) > limit("MAX_ZIP_MEMBERS"):
                raise _too_big(
                    "the member count is", len(infos), "MAX_ZIP_MEMBERS", name, None
                )
            self._infos: dict[str, zipfile.ZipInfo] = {}
            for info in infos:
                key = info.filename
                key = key[: -len(".npy")] if key.endswith(".npy") else key
                self._infos.setdefault(key, info)
        except BaseException:
            self.zip.close()
            raise
        self.files = list(self._infos)

    def __contains__(self, key: str) -> bool:
        return key in self._infos

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __getitem__(self, key: str) -> np.ndarray:
        info = self._infos.get(key)
        if info is None:
            raise KeyError(f"{key} is not a member of the archive")
        if info.flag_bits & 0x1:
            raise SpikeDataError(
                "the member is encrypted; spikerates reads unencrypted archives",
                path=self.name,
                dataset=key,
            )
        if info.compress_type not in _ZIP_METHODS:
            raise SpikeDataError(
                f"the member uses compression method {info.compress_type}, which "
                "is not supported (stored, deflate, bzip2 or lzma)",
                path=self.name,
                dataset=key,
            )
        if not info.filename.endswith(".npy"):
            raise SpikeDataError(
                "the member is not a .npy array", path=self.name, dataset=key
            )
        try:
            with self.zip.open(info) as entry:
                fh = io.BufferedReader(entry, 1 << 16)  # type: ignore[arg-type]
                shape, fortran, dtype, _ = _npy_header(fh, self.name, key)
                check_array_size(
                    shape,
                    dtype.itemsize,
                    stored=info.compress_size,
                    path=self.name,
                    dataset=key,
                )
                nbytes = declared_bytes(shape, dtype.itemsize)
                if nbytes > info.file_size:
                    raise SpikeDataError(
                        f"truncated: the header declares shape {shape} "
                        f"({format_bytes(nbytes)}) but the member holds "
                        f"{format_bytes(info.file_size)}",
                        path=self.name,
                        dataset=key,
                    )
                arr = _read_exact(fh, shape, fortran, dtype, self.name, key)
                # Reading to the end makes zipfile check the CRC.
                while fh.read(_READ_BLOCK):
                    pass
                return arr
        except SpikeDataError:
            raise
        except (
            zipfile.BadZipFile,
            OSError,
            EOFError,
            ValueError,
            RuntimeError,
            NotImplementedError,
            Exception,
        ) as exc:
            text = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise SpikeDataError(
                f"cannot read ({text}); the archive may be truncated or damaged",
                path=self.name,
                dataset=key,
            ) from exc

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> SafeNpz:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_npz(fileobj: Any, *, name: str | None = None) -> SafeNpz:
    """Open an NPZ archive (path or binary file object) for bounded reading.

    A single ``.npy`` array (not an archive) is refused with its own message.
    """
    head = b""
    with contextlib.suppress(OSError, ValueError):
        if isinstance(fileobj, str | os.PathLike):
            with open(fileobj, "rb") as fh:
                head = fh.read(len(_NPY_MAGIC))
        else:
            pos = fileobj.tell()
            head = fileobj.read(len(_NPY_MAGIC))
            fileobj.seek(pos)
    if head == _NPY_MAGIC:
        raise SpikeDataError("holds a single .npy array, not an NPZ archive", path=name)
    return SafeNpz(fileobj, name=name)


# ----------------------------------------------------------------------------
# Text


def iter_lines(
    fh: IO[bytes],
    *,
    max_line: int | None = None,
    path: str | None = None,
    what: str = "line",
) -> Iterator[bytes]:
    """The lines of a binary stream (with their ends), each bounded.

    A line longer than ``max_line`` bytes (default :data:`MAX_LINE_BYTES`)
    raises :class:`InputLimitError` after reading at most that much of it,
    so a file without line breaks (``/dev/zero``) ends at once.
    """
    bound = int(limit("MAX_LINE_BYTES") if max_line is None else max_line)
    number = 0
    while True:
        line = fh.readline(bound + 1)
        if not line:
            return
        number += 1
        if len(line) > bound and not line.endswith(b"\n"):
            if b"\x00" in line:
                raise SpikeDataError("binary data, not text", path=path)
            name = "MAX_HEADER_BYTES" if what == "header line" else "MAX_LINE_BYTES"
            raise InputLimitError(
                f"line {number}: a {what} longer than {format_bytes(bound)}; "
                f"set {env_name(name)} to raise the limit",
                path=path,
            )
        yield line


def check_line_lengths(
    fh: IO[bytes],
    *,
    sep: str | None = None,
    n_fields: int | None = None,
    max_line: int | None = None,
    path: str | None = None,
) -> None:
    """Read a binary stream to its end and refuse an overlong or overwide line.

    A line longer than ``max_line`` bytes (default :data:`MAX_LINE_BYTES`)
    is refused; with ``sep`` and ``n_fields`` (the header's), so is a line
    of more than ``max(2 * n_fields, n_fields + 64)`` fields, which a table
    parser would turn into as many columns. Memory stays at one block; a
    block whose lines all have the header's width costs two ``count`` calls.
    """
    bound = int(limit("MAX_LINE_BYTES") if max_line is None else max_line)
    block = max(1, min(bound, 1 << 20))
    sep_byte = None if sep is None else sep.encode()
    width = 0 if n_fields is None else max(0, n_fields - 1)
    max_seps = max(2 * width + 2, width + 64) if sep_byte else 0
    run = run_seps = 0
    line = 1

    def refuse(number: int, what: str) -> InputLimitError:
        name = "MAX_LINE_BYTES" if what == "long" else "MAX_COLUMNS"
        detail = (
            f"a line longer than {format_bytes(bound)}"
            if what == "long"
            else f"more than {max_seps + 1} fields where the header names "
            f"{n_fields} columns"
        )
        hint = f"; set {env_name(name)} to raise the limit" if what == "long" else ""
        return InputLimitError(f"line {number}: {detail}{hint}", path=path)

    while True:
        chunk = fh.read(block)
        if not chunk:
            # The last line, when the text does not end with a line break.
            if run > bound:
                raise refuse(line, "long")
            if sep_byte and run_seps > max_seps:
                raise refuse(line, "wide")
            return
        n_breaks = chunk.count(b"\n")
        if n_breaks == 0:
            run += len(chunk)
            run_seps += chunk.count(sep_byte) if sep_byte else 0
            if run > bound:
                raise refuse(line, "long")
            if sep_byte and run_seps > max_seps:
                raise refuse(line, "wide")
            continue
        first, last = chunk.find(b"\n"), chunk.rfind(b"\n")
        if run + first > bound:
            raise refuse(line, "long")
        if sep_byte and run_seps + chunk.count(sep_byte, 0, first) > max_seps:
            raise refuse(line, "wide")
        if sep_byte and n_breaks > 1:
            seps = chunk.count(sep_byte, first + 1, last)
            if seps != (n_breaks - 1) * width:
                # Some line differs from the header: find any that is too wide.
                wide = _widest_line(chunk[first + 1 : last], sep_byte[0], max_seps)
                if wide is not None:
                    raise refuse(line + 1 + wide, "wide")
        line += n_breaks
        run = len(chunk) - last - 1
        run_seps = chunk.count(sep_byte, last + 1) if sep_byte else 0


def _widest_line(text: bytes, sep: int, max_seps: int) -> int | None:
    """Index of the first line of ``text`` with more than ``max_seps``
    separators, or None."""
    arr = np.frombuffer(text, dtype=np.uint8)
    breaks = np.flatnonzero(arr == 10)
    cum = np.concatenate([[0], np.cumsum(arr == sep)])
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [arr.size]])
    over = np.flatnonzero(cum[ends] - cum[starts] > max_seps)
    return int(over[0]) if over.size else None


def check_header_fields(line: str, n_fields: int, *, path: str | None = None) -> None:
    """Refuse a text header with more than :data:`MAX_COLUMNS` fields."""
    bound = int(limit("MAX_COLUMNS"))
    if n_fields > bound:
        raise InputLimitError(
            f"the header names {n_fields} columns, over the limit of {bound}; "
            f"set {env_name('MAX_COLUMNS')} to raise it",
            path=path,
        )


def read_stdin(stream: IO[bytes], *, name: str = "-") -> bytes:
    """All of a binary stream, at most :data:`MAX_STDIN_BYTES`.

    Binary data that is neither HDF5 nor a zip archive (NUL bytes in the
    first block) is refused at once, so ``< /dev/zero`` ends immediately.
    """
    from spikerates.io._source import HDF5_SIGNATURE, ZIP_SIGNATURES

    bound = int(limit("MAX_STDIN_BYTES"))
    parts: list[bytes] = []
    total = 0
    first = True
    while True:
        chunk = stream.read(min(1 << 20, bound + 1 - total))
        if not chunk:
            break
        if first:
            first = False
            binary = chunk.startswith(HDF5_SIGNATURE) or chunk.startswith(
                ZIP_SIGNATURES
            )
            if not binary and b"\x00" in chunk[:4096]:
                raise SpikeDataError(
                    "binary data that is neither HDF5 nor NPZ, and not text",
                    path=name,
                )
        parts.append(chunk)
        total += len(chunk)
        if total > bound:
            raise InputLimitError(
                f"more than {format_bytes(bound)} on standard input; set "
                f"{env_name('MAX_STDIN_BYTES')} to raise the limit or give a file",
                path=name,
            )
    return b"".join(parts)


# ----------------------------------------------------------------------------
# params.py

_CLOSE = {"(": ")", "[": "]", "{": "}"}
_CONSTANTS = {"True": True, "False": False, "None": None}


class _NotLiteral(Exception):
    """The value of an assignment is not a plain literal (it is skipped)."""


def _number(text: str, negative: bool, path: str, line: int) -> int | float | complex:
    digits = text.replace("_", "")
    if digits[-1:] in "jJ":
        if len(digits) > limit("MAX_INT_DIGITS"):
            raise _NotLiteral
        imaginary = complex(digits)
        return -imaginary if negative else imaginary
    is_int = not any(c in digits for c in ".eE") or digits.lower().startswith("0x")
    if is_int:
        if len(digits) > limit("MAX_INT_DIGITS"):
            raise SpikeDataError(
                f"line {line}: an integer of {len(digits)} digits, over the limit "
                f"of {limit('MAX_INT_DIGITS'):g}",
                path=path,
            )
        try:
            value: int | float = int(digits, 0)
        except ValueError:
            value = int(digits.lstrip("0") or "0")
    else:
        value = float(digits)
    return -value if negative else value


def _string(text: str) -> str | bytes:
    import ast

    prefix = re.match(r"[A-Za-z]*", text).group(0).lower()  # type: ignore[union-attr]
    if "f" in prefix or "t" in prefix:
        raise _NotLiteral
    # One string token: literal_eval on it does not recurse.
    return ast.literal_eval(text)


class _Frame:
    """One open bracket of a literal being parsed."""

    __slots__ = ("opening", "items", "keys", "key", "state", "comma")

    def __init__(self, opening: str) -> None:
        self.opening = opening
        self.items: list[Any] = []
        self.keys: list[Any] = []
        self.key: Any = None
        # "value" (or "key" in a dict): a value may come; "colon": a dict key
        # waits for its colon; "comma": a value was read.
        self.state = "key" if opening == "{" else "value"
        self.comma = False

    def put(self, value: Any) -> None:
        if self.state == "key":
            self.key, self.state = value, "colon"
        elif self.state == "value":
            if self.opening == "{":
                self.keys.append(self.key)
            self.items.append(value)
            self.state = "comma"
        else:
            raise _NotLiteral

    def close(self) -> Any:
        if self.state == "colon" or (self.opening == "{" and self.state == "value"):
            raise _NotLiteral
        if self.state != "comma" and self.items and not self.comma:
            raise _NotLiteral
        if self.opening == "[":
            return list(self.items)
        if self.opening == "{":
            return dict(zip(self.keys, self.items, strict=True))
        if len(self.items) == 1 and not self.comma:
            return self.items[0]
        if self.opening == "" and not self.items:
            raise _NotLiteral
        return tuple(self.items)


def _complex_sum(
    tokens: list[tokenize.TokenInfo], i: int, negative: bool, path: str
) -> tuple[int | float | complex, int]:
    """The number at ``tokens[i]``, with a following ``+ 2j`` or ``- 2j``
    added (how a complex literal is written), and the index of its last
    token."""
    value = _number(tokens[i].string, negative, path, tokens[i].start[0])
    if (
        not isinstance(value, complex)
        and i + 2 < len(tokens)
        and tokens[i + 1].type == tokenize.OP
        and tokens[i + 1].string in ("+", "-")
        and tokens[i + 2].type == tokenize.NUMBER
        and tokens[i + 2].string[-1:] in "jJ"
    ):
        imaginary = _number(tokens[i + 2].string, False, path, tokens[i].start[0])
        value = value + imaginary if tokens[i + 1].string == "+" else value - imaginary
        i += 2
    return value, i


def _literal(tokens: list[tokenize.TokenInfo], path: str) -> Any:
    """The value of a literal from its tokens, parsed with an explicit stack.

    The statement's value is read as if in parentheses, so ``a = 1, 2`` is a
    tuple like in Python.
    """
    max_depth = int(limit("MAX_LITERAL_DEPTH"))
    stack = [_Frame("")]
    i, n = 0, len(tokens)
    while i < n:
        tok = tokens[i]
        kind, text, line = tok.type, tok.string, tok.start[0]
        top = stack[-1]
        if kind == tokenize.OP and text in "+-" and len(text) == 1:
            negative = False
            while i < n and tokens[i].type == tokenize.OP and tokens[i].string in "+-":
                negative ^= tokens[i].string == "-"
                i += 1
            if i >= n or tokens[i].type != tokenize.NUMBER:
                raise _NotLiteral
            value, i = _complex_sum(tokens, i, negative, path)
            top.put(value)
        elif kind == tokenize.NUMBER:
            value, i = _complex_sum(tokens, i, False, path)
            top.put(value)
        elif kind == tokenize.STRING:
            value = _string(text)
            # Adjacent strings concatenate.
            while i + 1 < n and tokens[i + 1].type == tokenize.STRING:
                i += 1
                more = _string(tokens[i].string)
                if type(more) is not type(value):
                    raise _NotLiteral
                value = value + more  # type: ignore[operator]
            top.put(value)
        elif kind == tokenize.NAME and text in _CONSTANTS:
            top.put(_CONSTANTS[text])
        elif kind == tokenize.OP and text in _CLOSE:
            if top.state not in ("value", "key"):
                raise _NotLiteral
            if len(stack) > max_depth:
                raise SpikeDataError(
                    f"line {line}: brackets nested more than {max_depth} deep",
                    path=path,
                )
            stack.append(_Frame(text))
        elif kind == tokenize.OP and text in (")", "]", "}"):
            if len(stack) < 2 or _CLOSE[top.opening] != text:
                raise _NotLiteral
            value = stack.pop().close()
            stack[-1].put(value)
        elif kind == tokenize.OP and text == ",":
            if top.state != "comma":
                raise _NotLiteral
            top.state = "key" if top.opening == "{" else "value"
            top.comma = True
        elif kind == tokenize.OP and text == ":":
            if top.state != "colon":
                raise _NotLiteral
            try:
                hash(top.key)
            except TypeError:
                raise _NotLiteral from None
            top.state = "value"
        else:
            raise _NotLiteral
        i += 1
    if len(stack) != 1:
        raise _NotLiteral
    return stack[0].close()


def parse_params(path: str) -> dict[str, Any]:
    """Literal assignments of a Phy ``params.py``, without executing it.

    The file (at most :data:`MAX_PARAMS_BYTES`) is split into Python tokens;
    each statement ``name = literal`` (numbers, strings, ``True``/``False``/
    ``None``, and lists, tuples and dicts of them, nested at most
    :data:`MAX_LITERAL_DEPTH` deep) gives one entry. Other statements are
    ignored. Nothing recurses, so no input can exhaust the stack.

    Raises
    ------
    SpikeDataError
        For an unreadable or oversized file, broken syntax, too deep
        nesting, or an integer longer than :data:`MAX_INT_DIGITS` digits.
    """
    bound = int(limit("MAX_PARAMS_BYTES"))
    try:
        with open(path, "rb") as fh:
            raw = fh.read(bound + 1)
    except OSError as exc:
        raise SpikeDataError(f"cannot read ({exc.strerror or exc})", path=path) from exc
    if len(raw) > bound:
        raise _too_big(
            "the file holds", os.path.getsize(path), "MAX_PARAMS_BYTES", path, None
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpikeDataError("not UTF-8 text", path=path) from exc
    if "\x00" in text:
        raise SpikeDataError("binary data, not Python text", path=path)
    _check_syntax(text, path)
    params: dict[str, Any] = {}
    statement: list[tokenize.TokenInfo] = []
    # Only module-level statements count (not those inside an if/def block).
    indent = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            ends = tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER)
            if ends or (tok.type == tokenize.OP and tok.string == ";"):
                if indent == 0:
                    _assign(statement, params, path)
                statement = []
            elif tok.type == tokenize.INDENT:
                indent += 1
            elif tok.type == tokenize.DEDENT:
                indent -= 1
            elif tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.ENCODING):
                continue
            else:
                statement.append(tok)
    except SpikeDataError:
        raise
    except (tokenize.TokenError, SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        if line is None and isinstance(exc, tokenize.TokenError) and exc.args:
            position = exc.args[1] if len(exc.args) > 1 else None
            line = position[0] if isinstance(position, tuple) else None
        message = exc.args[0] if exc.args else type(exc).__name__
        where = f"line {line}: " if line else ""
        raise SpikeDataError(
            f"{where}not valid Python syntax ({message})", path=path
        ) from None
    return params


#: A params.py up to this many characters is also checked by Python's own
#: parser, for its syntax error messages (longer ones are only tokenized).
_SYNTAX_CHECK_CHARS = 100_000


def _check_syntax(text: str, path: str) -> None:
    """Refuse a file that Python would not parse (``a = = 3``)."""
    import ast

    if len(text) > _SYNTAX_CHECK_CHARS:
        return
    try:
        ast.parse(text)
    except SyntaxError as exc:
        where = f"line {exc.lineno}: " if exc.lineno else ""
        raise SpikeDataError(
            f"{where}not valid Python syntax ({exc.msg})", path=path
        ) from None
    except (RecursionError, MemoryError, ValueError):
        # Too deep for the parser's own limits: the tokens decide.
        return


def _assigned_names(tokens: list[tokenize.TokenInfo]) -> list[str]:
    """Every name on the left of the last top-level ``=`` (or augmented
    assignment ``+=``...) of a statement: the names it rebinds."""
    depth, last = 0, None
    for k, tok in enumerate(tokens):
        if tok.type != tokenize.OP:
            continue
        if tok.string in "([{":
            depth += 1
        elif tok.string in ")]}":
            depth -= 1
        elif depth == 0 and tok.string.endswith("=") and tok.string not in _COMPARE:
            last = k
    if last is None:
        return []
    return [t.string for t in tokens[:last] if t.type == tokenize.NAME]


_COMPARE = ("==", "<=", ">=", "!=")


def _assign(
    tokens: list[tokenize.TokenInfo], params: dict[str, Any], path: str
) -> None:
    """Record ``name = literal`` (chained ``a = b = literal`` too); any other
    assignment leaves the names it rebinds without a value."""
    names = []
    i = 0
    while (
        i + 1 < len(tokens)
        and tokens[i].type == tokenize.NAME
        and tokens[i + 1].type == tokenize.OP
        and tokens[i + 1].string == "="
    ):
        names.append(tokens[i].string)
        i += 2
    value: Any = _NO_VALUE
    if names and i < len(tokens):
        try:
            value = _literal(tokens[i:], path)
        except SpikeDataError:
            raise
        except (_NotLiteral, ValueError, SyntaxError, MemoryError, OverflowError):
            value = _NO_VALUE
    if value is _NO_VALUE:
        # Not a plain literal: the names now hold something else.
        for name in _assigned_names(tokens):
            params.pop(name, None)
        return
    for name in names:
        params[name] = value


_NO_VALUE = object()
