"""Every vocabulary of spikerates, defined once.

Format names and their extensions, value modes, neuron model names, input
signal kinds, kernel kinds and ISI interpolation kinds. The library checks
against these tuples and the command line builds its choices from them.

This module imports nothing, so the command line can build its choices
without loading NumPy or SciPy.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FORMAT_ALIASES",
    "FORMAT_EXTENSIONS",
    "FORMAT_NAMES",
    "FORMAT_SPECS",
    "INPUT_KINDS",
    "ISI_INTERP_KINDS",
    "KERNEL_KINDS",
    "NEURON_MODELS",
    "READ_FORMATS",
    "RATE_MODELS",
    "SPIKING_MODELS",
    "STDOUT_FORMAT",
    "VALUE_MODES",
    "WRITE_FORMATS",
    "FormatSpec",
    "canonical_format",
    "format_for_extension",
    "format_spec",
]


# ----------------------------------------------------------------------------
# File formats


@dataclass(frozen=True)
class FormatSpec:
    """The name side of a file format: what users type and what files end with.

    Parameters
    ----------
    name : str
        Canonical name (``--from``/``--to``).
    aliases : tuple of str
        Other accepted names.
    extensions : tuple of str
        File extensions, lower case with the dot; the first is the one written.
        Empty for formats recognised by content or folder layout only.
    readable, writable : bool
        Whether spikerates reads / writes the format.
    folder : bool
        The input is a folder rather than a file.
    binary : bool
        Files are binary (not printed to a terminal).
    description : str
        One line for help texts.
    """

    name: str
    aliases: tuple[str, ...]
    extensions: tuple[str, ...]
    readable: bool
    writable: bool
    folder: bool
    binary: bool
    description: str


#: Every format, in the order help texts list them.
FORMAT_SPECS: tuple[FormatSpec, ...] = (
    FormatSpec(
        name="hdf5",
        aliases=("h5", "hdf"),
        extensions=(".h5", ".hdf5", ".hdf"),
        readable=True,
        writable=True,
        folder=False,
        binary=True,
        description="plain HDF5: dense /t, /spikes or a Units table /units",
    ),
    FormatSpec(
        name="nwb",
        aliases=(),
        extensions=(".nwb",),
        readable=True,
        writable=True,
        folder=False,
        binary=True,
        description="Neurodata Without Borders (HDF5): Units table, rates TimeSeries",
    ),
    FormatSpec(
        name="npz",
        aliases=(),
        extensions=(".npz",),
        readable=True,
        writable=True,
        folder=False,
        binary=True,
        description="NumPy archive: dense t, spikes or events spike_times...",
    ),
    FormatSpec(
        name="csv",
        aliases=(),
        extensions=(".csv",),
        readable=True,
        writable=True,
        folder=False,
        binary=False,
        description="comma-separated text: dense t,<unit>,... or events unit,time",
    ),
    FormatSpec(
        name="tsv",
        aliases=(),
        extensions=(".tsv", ".tab"),
        readable=True,
        writable=True,
        folder=False,
        binary=False,
        description="tab-separated text, as csv",
    ),
    FormatSpec(
        name="phy",
        aliases=(),
        extensions=(),
        readable=True,
        writable=False,
        folder=True,
        binary=True,
        description="Phy/Kilosort output folder (spike_times.npy, spike_clusters.npy)",
    ),
    FormatSpec(
        name="spikeinterface",
        aliases=("si",),
        extensions=(),
        readable=True,
        writable=False,
        folder=True,
        binary=True,
        description="SpikeInterface sorting folder (numpy_folder or npz_folder)",
    ),
    FormatSpec(
        name="nix",
        aliases=(),
        extensions=(".nix",),
        readable=True,
        writable=False,
        folder=False,
        binary=True,
        description="NIX file written by neo (HDF5)",
    ),
)

_BY_NAME = {spec.name: spec for spec in FORMAT_SPECS}

#: Canonical format names.
FORMAT_NAMES: tuple[str, ...] = tuple(spec.name for spec in FORMAT_SPECS)
#: Other accepted names -> canonical name.
FORMAT_ALIASES: dict[str, str] = {
    alias: spec.name for spec in FORMAT_SPECS for alias in spec.aliases
}
#: Names (canonical and aliases) accepted for reading (``--from``).
READ_FORMATS: tuple[str, ...] = tuple(
    name
    for spec in FORMAT_SPECS
    if spec.readable
    for name in (spec.name, *spec.aliases)
)
#: Names (canonical and aliases) accepted for writing (``--to``).
WRITE_FORMATS: tuple[str, ...] = tuple(
    name
    for spec in FORMAT_SPECS
    if spec.writable
    for name in (spec.name, *spec.aliases)
)
#: Extension written for each writable format name and alias (``h5`` -> ``.h5``).
FORMAT_EXTENSIONS: dict[str, str] = {
    name: spec.extensions[0]
    for spec in FORMAT_SPECS
    if spec.writable
    for name in (spec.name, *spec.aliases)
}
_EXTENSION_FORMATS: dict[str, str] = {
    ext: spec.name for spec in FORMAT_SPECS for ext in spec.extensions
}
#: Format written to standard output when none is given.
STDOUT_FORMAT = "csv"


def format_spec(name: str) -> FormatSpec:
    """The :class:`FormatSpec` of the canonical format name ``name``."""
    return _BY_NAME[name]


def canonical_format(name: str) -> str | None:
    """The canonical format name of ``name`` (an alias, any case, an optional
    leading dot), or None when it names no format."""
    key = name.strip().lower().lstrip(".")
    key = FORMAT_ALIASES.get(key, key)
    return key if key in _BY_NAME else None


def format_for_extension(extension: str) -> str | None:
    """The format whose files end with ``extension`` (``".nwb"``), or None."""
    return _EXTENSION_FORMATS.get(extension.lower())


# ----------------------------------------------------------------------------
# Dense spike values

#: Meanings of dense spike values: decide from the data, spikes per bin, or
#: ``1/dt`` per spike.
VALUE_MODES = ("auto", "counts", "amplitude")


# ----------------------------------------------------------------------------
# Neuron models and input signals

#: Rate (non-spiking) neuron models.
RATE_MODELS = ("softlif", "lifrate")
#: Spiking neuron models (simulated step by step).
SPIKING_MODELS = ("lif", "fastlif")
#: Every neuron model name.
NEURON_MODELS = (*RATE_MODELS, *SPIKING_MODELS)

#: Kinds of input signal (``KIND:PARAMETERS``, e.g. ``sine:2:0.8``).
INPUT_KINDS = ("constant", "ramp", "sine", "white")


# ----------------------------------------------------------------------------
# Estimators

#: Kernel shapes accepted by :func:`spikerates.estimators.rates_kernel`.
KERNEL_KINDS = ("gauss", "expon", "alpha", "expogauss")

#: Interpolation kinds accepted by :func:`spikerates.estimators.rates_isi`
#: (the ``kind`` values of :class:`scipy.interpolate.interp1d`).
ISI_INTERP_KINDS = (
    "zero",
    "linear",
    "nearest",
    "nearest-up",
    "previous",
    "next",
    "slinear",
    "quadratic",
    "cubic",
)
