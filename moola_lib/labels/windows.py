"""Self-contained labelled windows (labels file format (b), ``moola_lib.labels.sets``): each window's 105 bars of
[open, high, low, close] checked like an OHLCV file's bars, bad ticks warned about, and windows that share bars
(overlap in time) grouped. Features of such windows start cold (``COLD_START_WARNING``).
"""

from __future__ import annotations

import json
import warnings

import numpy as np

from ..bars.constants import WINDOW_LENGTH
from ..bars.ohlcv import OUTLIER_FACTOR, DataValidationError, SuspectOutlierWarning, price_checks, suspect_outliers

COLD_START_WARNING = (
    "features are computed from each window alone (cold start): ATR, EMA and zigzag warm "
    "up inside the window, bars before the warm-up are invalid, and the values differ from "
    "the full-history features the encoder was pretrained on. Prefer labels given as "
    "timestamps into the OHLCV file."
)


def window_array(cell, wid, name) -> np.ndarray:
    """One window's bars [105, 4] from a ``features`` cell (nested lists, a flat list or JSON text), checked like
    an OHLCV file's bars; DataValidationError naming the window and the first bad bars."""
    if isinstance(cell, str):
        cell = json.loads(cell)
    try:
        arr = np.array([np.asarray(row, dtype=float) for row in cell]) if len(cell) else np.empty((0, 4))
    except (TypeError, ValueError) as e:
        raise DataValidationError(
            name, "window_bars", f"window_id {wid!r}: features are not numeric rows ({e})"
        ) from None
    if arr.ndim == 1 and arr.size == 4 * WINDOW_LENGTH:
        arr = arr.reshape(WINDOW_LENGTH, 4)
    if arr.shape != (WINDOW_LENGTH, 4):
        raise DataValidationError(
            name,
            "window_length",
            f"window_id {wid!r}: features must be "
            f"{WINDOW_LENGTH} rows of [open, high, low, close], got shape {arr.shape}",
        )
    checks = [("non_finite", ~np.isfinite(arr).all(axis=1), "hold NaN or inf")]
    if not checks[0][1].any():
        checks += price_checks(*arr.T)  # the checks of OHLCV files (load_ohlcv), on finite bars
    for check, bad, what in checks:
        if bad.any():
            raise DataValidationError(
                name,
                check,
                f"window_id {wid!r}: {int(bad.sum())} of its {WINDOW_LENGTH} "
                f"bars {what}; first at bar offset(s) "
                f"{', '.join(map(str, np.flatnonzero(bad)[:5]))} (0-based)",
            )
    return arr


def outlier_notes(ohlc: np.ndarray, ids: np.ndarray, name: str) -> list[str]:
    """Warn, as for OHLCV files, about bars of a window with a price OUTLIER_FACTOR x away from the bars
    around them (a bad tick in a hand-made window); the windows are kept."""
    found = {wid: np.flatnonzero(suspect_outliers(w)) for w, wid in zip(ohlc, ids)}
    found = {wid: bad for wid, bad in found.items() if len(bad)}
    if not found:
        return []
    where = "; ".join(
        f"window_id {wid!r} at bar offset(s) {', '.join(map(str, bad[:5]))}" for wid, bad in list(found.items())[:5]
    )
    note = (
        f"{name}: {len(found)} window(s) with suspect outlier bars (a price more than {OUTLIER_FACTOR:g}x away "
        f"from the median close around it): {where}. They are kept: check the file"
    )
    warnings.warn(note, SuspectOutlierWarning, stacklevel=4)
    return [note]


def shared_bar_groups(ohlc: np.ndarray, run: int = 5) -> np.ndarray:
    """Group windows without timestamps that share a run of ``run`` identical consecutive OHLC bars
    (i.e. overlap in time); connected windows get the same group id."""
    parent = list(range(len(ohlc)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[bytes, int] = {}
    for i, w in enumerate(ohlc):
        for k in range(len(w) - run + 1):
            j = owner.setdefault(w[k : k + run].tobytes(), i)
            if j != i:
                parent[find(i)] = find(j)
    roots = [find(i) for i in range(len(ohlc))]
    _, groups = np.unique(roots, return_inverse=True)
    return groups.astype(np.int64)
