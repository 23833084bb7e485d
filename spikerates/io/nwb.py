"""NWB files (Neurodata Without Borders, on HDF5).

Reading uses plain h5py through :mod:`spikerates.io.hdf5`: a Units table
``/units`` (``spike_times``, ``spike_times_index``, ``id``...).
"""

from __future__ import annotations

from spikerates.io import hdf5
from spikerates.io.registry import Format, register
from spikerates.names import format_spec

FORMAT = register(
    Format(
        spec=format_spec("nwb"),
        read=hdf5.read,
        read_table=hdf5.read_table,
        write_events=hdf5.write_events,
        write_dense=hdf5.write_dense,
        write_arrays=hdf5.write_arrays,
        matrix_backend=hdf5.MatrixBackend,
    )
)
