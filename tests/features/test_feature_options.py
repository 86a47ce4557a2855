"""Feature options travel with the encoder (issue 9): checkpoints and encoder files store every option
with its value; files made before that (tests/fixtures/original_encoder, made with the original's code)
mean the original's settings, and transfer computes the labelled windows' features with them."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from moola_lib.features.options import (
    FEATURE_OPTION_DEFAULTS,
    ORIGINAL_FEATURE_OPTIONS,
    resolve_feature_options,
)
from moola_lib.labels.provenance import encoder_feature_options
from moola_lib.pretraining.checkpoints import load_encoder, save_encoder
from moola_lib.pretraining.job import load_pretrainer
from moola_lib.pretraining.model import JadeEncoder

OLD = Path(__file__).parents[1] / "fixtures" / "original_encoder"
ORIGINAL = resolve_feature_options(ORIGINAL_FEATURE_OPTIONS)
DEFAULTS = resolve_feature_options(FEATURE_OPTION_DEFAULTS)


def test_fixture_was_made_before_options_were_recorded():
    ckpt = torch.load(OLD / "checkpoint_best.pt", weights_only=True)
    assert ckpt["config"]["feature_options"] == {} and "feature_options" not in ckpt["encoder"]
    assert "feature_options" not in torch.load(OLD / "encoder.pt", weights_only=True)


@pytest.mark.parametrize("name", ["checkpoint_best.pt", "encoder.pt"])
def test_old_encoder_means_the_original_settings(name):
    assert ORIGINAL != DEFAULTS
    assert encoder_feature_options(OLD / name) == ORIGINAL
    encoder = load_encoder(OLD / name, hidden_size=8)
    assert encoder.feature_options == ORIGINAL


def test_old_checkpoint_still_loads_as_a_pretrainer():
    model = load_pretrainer(OLD / "checkpoint_best.pt")
    out = model(torch.zeros(1, 105, 10), torch.zeros(1, 105, dtype=torch.bool))
    assert out.shape == (1, 105, 10) and torch.isfinite(out).all()


def test_exported_old_encoder_without_its_run_means_the_original(tmp_path):
    shutil.copy(OLD / "encoder.pt", tmp_path / "encoder.pt")  # no training_results.json, no source
    obj = torch.load(tmp_path / "encoder.pt", weights_only=True)
    obj["metadata"] = {}
    torch.save(obj, tmp_path / "encoder.pt")
    assert encoder_feature_options(tmp_path / "encoder.pt") == ORIGINAL


def test_new_encoder_files_store_and_return_their_options(tmp_path):
    encoder = JadeEncoder(hidden_size=4, num_layers=1)
    encoder.feature_options = resolve_feature_options({"reversal_atr": 3.0})
    save_encoder(encoder, tmp_path / "encoder.pt")
    stored = torch.load(tmp_path / "encoder.pt", weights_only=True)["feature_options"]
    assert stored == {**DEFAULTS, "reversal_atr": 3.0}
    assert encoder_feature_options(tmp_path / "encoder.pt") == stored
    assert load_encoder(tmp_path / "encoder.pt", hidden_size=4, num_layers=1).feature_options == stored
    # a fresh encoder records nothing (it was not pretrained on any features)
    save_encoder(JadeEncoder(hidden_size=4, num_layers=1), tmp_path / "fresh.pt")
    assert "feature_options" not in torch.load(tmp_path / "fresh.pt", weights_only=True)


def test_transfer_computes_the_labelled_features_with_an_old_encoders_options():
    from moola_lib.labels.testbed import synthetic_labelled_set
    from moola_lib.notebook.params import TransferParams
    from moola_lib.notebook.steps import labelled_from_params

    params = TransferParams(encoder_path=str(OLD / "checkpoint_best.pt"), n_labelled=40)
    labelled = labelled_from_params(params)
    kwargs = dict(start=params.labels_start, end=params.labels_end, history_start=params.synthetic_start)
    original = synthetic_labelled_set(40, params.class_balance, 0.0, params.seed, feature_options=ORIGINAL, **kwargs)
    defaults = synthetic_labelled_set(40, params.class_balance, 0.0, params.seed, **kwargs)
    assert (labelled.window_id == original.window_id).all()
    assert np.array_equal(labelled.X, original.X) and not np.array_equal(labelled.X, defaults.X)
