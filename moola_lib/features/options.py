"""Feature options of ``relativity_features``: their names, defaults and checks (DESIGN.md section 3).

Contract: ``FEATURE_OPTION_DEFAULTS`` maps every keyword option of ``moola_lib.features.relativity.relativity_features``
to its default (the function's signature takes its defaults from here); ``ORIGINAL_FEATURE_OPTIONS`` are
the original's settings, which reproduce its values exactly. ``resolve_feature_options`` checks a partial
mapping and fills in the rest; ``feature_ranges`` gives each feature's clip range under given options
(``FEATURE_RANGES`` under the defaults). Unknown names, wrong types and bad values raise
``FeatureOptionError``. Pure python/numpy, no compiled code: cheap to import for configs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..bars.constants import WINDOW_LENGTH
from ..util.names import valid_names_hint

DIST_TRANSFORMS = ("log", "linear")  # dist features: sign(d) * ln(1 + |d|), or d itself


class FeatureOptionError(ValueError):
    """An unknown feature option, or an option of the wrong type or with an invalid value."""


_INT_OPTIONS = ("atr_period", "ema_period", "hybrid_max_age")
_FLOAT_OPTIONS = ("reversal_atr", "hybrid_atr", "bars_norm", "dist_clip")


def check_options(options: Mapping) -> None:
    """Raise FeatureOptionError on the first option of a wrong type or an invalid value."""

    def fail(name, what):
        raise FeatureOptionError(f"feature option {name} must be {what}, got {options[name]!r}")

    for name in _INT_OPTIONS:
        value = options[name]
        if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
            fail(name, "an integer" + (" (negative disables the hybrid rule)" if name == "hybrid_max_age" else ""))
        if name != "hybrid_max_age" and value < 1:
            fail(name, "an integer >= 1")
    for name in _FLOAT_OPTIONS:
        value = options[name]
        if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, (bool, np.bool_)):
            fail(name, "a number")
        if not np.isfinite(value) or value < 0 or (value == 0 and name in ("bars_norm", "dist_clip")):
            fail(name, "a finite number > 0" if name in ("bars_norm", "dist_clip") else "a finite number >= 0")
    if options["dist_transform"] not in DIST_TRANSFORMS:
        fail("dist_transform", f"one of {', '.join(map(repr, DIST_TRANSFORMS))}")


# keyword options of relativity_features and their defaults, for configs to check against
FEATURE_OPTION_DEFAULTS: dict[str, int | float | str] = {
    "atr_period": 10,
    "ema_period": 20,
    "reversal_atr": 2.0,
    "hybrid_max_age": -1,
    "hybrid_atr": 0.5,
    "bars_norm": WINDOW_LENGTH,
    "dist_transform": "log",
    "dist_clip": 4.0,
}

# the original's settings (DESIGN.md section 3): relativity_features(bars, **ORIGINAL_FEATURE_OPTIONS)
# gives its values exactly. An encoder whose stored options are empty or partial was made with these.
ORIGINAL_FEATURE_OPTIONS: dict[str, int | float | str] = {
    **FEATURE_OPTION_DEFAULTS,
    "reversal_atr": 1.2,
    "hybrid_max_age": 5,
    "dist_transform": "linear",
    "dist_clip": 3.0,
}


def resolve_feature_options(options: Mapping | None = None, *, base: Mapping | None = None) -> dict:
    """Every feature option with its value: ``options`` over ``base`` (default: FEATURE_OPTION_DEFAULTS).

    Unknown names, wrong types and bad values raise FeatureOptionError; floats given as ints become
    floats, so equal settings compare equal."""
    options = dict(options or {})
    for name in options:
        if name not in FEATURE_OPTION_DEFAULTS:
            raise FeatureOptionError(
                f"unknown feature option {name!r}.{valid_names_hint(name, FEATURE_OPTION_DEFAULTS)}"
            )
    resolved = {**(FEATURE_OPTION_DEFAULTS if base is None else base), **options}
    check_options(resolved)
    return {k: float(v) if k in _FLOAT_OPTIONS else (int(v) if k in _INT_OPTIONS else v) for k, v in resolved.items()}


def feature_ranges(**options) -> dict[str, tuple[float, float]]:
    """Each feature's (low, high) clip range under ``options`` (defaults: FEATURE_OPTION_DEFAULTS)."""
    bound = resolve_feature_options(options)["dist_clip"]
    return {
        "open_norm": (0.0, 1.0),
        "close_norm": (0.0, 1.0),
        "body_pct": (-1.0, 1.0),
        "upper_wick_pct": (0.0, 1.0),
        "lower_wick_pct": (0.0, 1.0),
        "range_z": (0.0, 3.0),
        "dist_to_prev_SH": (-bound, bound),
        "dist_to_prev_SL": (-bound, bound),
        "bars_since_SH_norm": (0.0, 3.0),
        "bars_since_SL_norm": (0.0, 3.0),
    }


FEATURE_RANGES: dict[str, tuple[float, float]] = feature_ranges()  # under the defaults
