"""The one use of scipy internals: its compiled loop ``Y += A @ X``.

scipy's ``_sparsetools.coo_matmat_dense`` adds a coordinate-format sparse
matrix times a dense matrix into an existing output, with no temporaries.
It is not public API, so it is probed once (its result checked on a small
product) and the public sparse product is used wherever it is missing or
computes something else.
"""

from __future__ import annotations

import numpy as np

__all__ = ["add_coo_product", "compiled_coo_product"]

_PROBED: list = []


def compiled_coo_product():
    """scipy's ``coo_matmat_dense`` when it computes ``Y += A @ X``, else None."""
    if not _PROBED:
        kernel = None
        try:
            from scipy.sparse import _sparsetools  # deferred: slow to import

            kernel = _sparsetools.coo_matmat_dense
            rows, cols = np.array([0, 1, 1], np.int32), np.array([1, 0, 1], np.int32)
            x = np.array([[1.0, 2.0], [3.0, 4.0]])
            y = np.ones((2, 2))
            kernel(
                3,
                2,
                rows,
                cols,
                np.array([2.0, 3.0, 4.0]),
                x.reshape(-1),
                y.reshape(-1),
            )
            if not np.array_equal(y, [[7.0, 9.0], [16.0, 23.0]]):
                kernel = None
        except Exception:  # absent, or another signature: use the public API
            kernel = None
        _PROBED.append(kernel)
    return _PROBED[0]


def add_coo_product(
    rows: np.ndarray,
    cols: np.ndarray,
    data: np.ndarray,
    dense: np.ndarray,
    out: np.ndarray,
    *,
    compiled: bool = True,
) -> None:
    """``out += A @ dense`` for the coordinate matrix ``A[rows, cols] = data``.

    Parameters
    ----------
    rows, cols : (S,) ndarray of one integer dtype
        Coordinates of the entries of A.
    data : (S,) ndarray of float64
        The entries; each adds ``data * dense[col]`` to ``out[row]``, in
        entry order.
    dense : (C, W) ndarray of float64, C-contiguous
    out : (R, W) ndarray of float64, C-contiguous
        Updated in place.
    compiled : bool
        Use scipy's compiled loop when this scipy has it (otherwise, or with
        False, scipy's public product and one addition: the same sums).
    """
    kernel = compiled_coo_product() if compiled else None
    if kernel is not None:
        kernel(
            data.size,
            dense.shape[1],
            rows,
            cols,
            data,
            dense.reshape(-1),
            out.reshape(-1),
        )
        return
    from scipy import sparse as sp_sparse  # deferred: slow to import

    matrix = sp_sparse.coo_array((data, (rows, cols)), shape=(out.shape[0], len(dense)))
    out += matrix @ dense
