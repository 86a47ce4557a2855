"""moola_lib: self-supervised pretraining of the Jade BiLSTM encoder on market bars.

The public names (DESIGN.md section 7) are importable from the package root; each is loaded from its
module on first use, so ``import moola_lib`` stays cheap (no torch until a model is used).

Wings, imports pointing only downwards (README.md, "Architecture"; tests/test_architecture.py): generic
helpers (``util``) <- the pipeline's stages in the order of the data's journey (``bars`` <- ``features`` <-
``pretraining`` <- ``labels``) <- the labelling wing (``labelling``) and the evaluation wing (``transfer``) <-
the classifier (``classifier``) <- the studies that validated the product (``studies``) <- the notebook
layer (``notebook``) <- the command-line tools (``tools``). The modules directly in this package are thin
``python -m`` entry points.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "DataValidationError": "bars.ohlcv",
    "load_ohlcv": "bars.ohlcv",
    "validate_ohlcv": "bars.ohlcv",
    "split_slices": "bars.sources",
    "DEFAULT_SPLITS": "bars.splits",
    "synthetic_ohlcv": "bars.synthetic",
    "synthetic_market": "bars.synthetic",
    "FEATURE_NAMES": "features.relativity",
    "FEATURE_RANGES": "features.options",
    "ORIGINAL_FEATURE_OPTIONS": "features.options",
    "relativity_features": "features.relativity",
    "swing_points": "features.relativity",
    "window_starts": "bars.windows",
    "split_windows": "bars.windows",
    "gather_windows": "bars.windows",
    "JadeEncoder": "pretraining.model",
    "JadePretrainer": "pretraining.model",
    "JadeClassifier": "pretraining.model",
    "save_encoder": "pretraining.checkpoints",
    "load_encoder": "pretraining.checkpoints",
    "ConfigError": "util.config",
    "PretrainConfig": "pretraining.config",
    "apply_overrides": "util.config",
    "pretrain": "pretraining.job",
    "load_pretrain_data": "pretraining.job",
    "load_pretrainer": "pretraining.job",
    "LabelledSet": "labels.sets",
    "load_labels": "labels.sets",
    "synthetic_labelled_set": "labels.testbed",
    "exclude_intervals": "labels.spans",
    "TransferConfig": "transfer.config",
    "run_transfer": "transfer.protocol",
    "ArmClassifier": "classifier.model",
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
