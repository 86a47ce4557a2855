"""moola_lib: self-supervised pretraining of the Jade BiLSTM encoder on market bars.

The public names (DESIGN.md section 7) are importable from the package root; each is loaded from its
module on first use, so ``import moola_lib`` stays cheap (no torch until a model is used).

Wings, imports pointing only downwards (README.md, "Architecture"; tests/test_architecture.py): generic
helpers (``moola_lib.util``) <- the pipeline (the modules directly in this package) <- the labelling wing
(``moola_lib.labelling``) and the evaluation wing (``moola_lib.transfer``) <- the notebook layer
(``moola_lib.notebook``) <- the command-line tools (``moola_lib.tools``).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "DataValidationError": "data",
    "load_ohlcv": "data",
    "validate_ohlcv": "data",
    "split_slices": "sources",
    "DEFAULT_SPLITS": "splits",
    "synthetic_ohlcv": "synthetic",
    "synthetic_market": "synthetic",
    "FEATURE_NAMES": "features",
    "FEATURE_RANGES": "feature_options",
    "ORIGINAL_FEATURE_OPTIONS": "feature_options",
    "relativity_features": "features",
    "swing_points": "features",
    "window_starts": "windows",
    "split_windows": "windows",
    "gather_windows": "windows",
    "JadeEncoder": "models",
    "JadePretrainer": "models",
    "JadeClassifier": "models",
    "save_encoder": "models",
    "load_encoder": "models",
    "ConfigError": "config",
    "PretrainConfig": "config",
    "apply_overrides": "config",
    "pretrain": "pretrain",
    "load_pretrain_data": "pretrain",
    "load_pretrainer": "pretrain",
    "LabelledSet": "labels",
    "load_labels": "labels",
    "synthetic_labelled_set": "testbed",
    "exclude_intervals": "label_spans",
    "TransferConfig": "transfer.config",
    "run_transfer": "transfer.protocol",
    "start_run": "notebook.runs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'moola_lib' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"moola_lib.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
