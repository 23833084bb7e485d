"""Names of the estimator variants, shared by the library and the command line.

This module imports nothing, so the command line can build its choices
without loading NumPy or SciPy.
"""

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
