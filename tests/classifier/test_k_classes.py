"""Your classes, end to end (issue 29): a labels file of three classes of the user's own is read (its
classes found in the file), cross-validated by transfer with every metric over K classes, drawn, and fitted
and scanned by the classifier with one probability column per class; a class with too few windows for the
folds, and class lists the labelling tool cannot offer, are refused with one line naming them."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from moola_lib.bars.ohlcv import DataValidationError
from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.classifier.errors import ClassifierError
from moola_lib.classifier.model import ArmClassifier
from moola_lib.classifier.scan import detections, scan, scan_to_files
from moola_lib.features.options import resolve_feature_options
from moola_lib.labelling.session import MAX_CLASSES, readable_classes
from moola_lib.labels.sources import LabelledSpec, labelled_from_params
from moola_lib.pretraining.checkpoints import save_encoder
from moola_lib.pretraining.model import JadeEncoder
from moola_lib.transfer import figures
from moola_lib.transfer.protocol import run_transfer
from moola_lib.util.config import ConfigError

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
CLASSES = ["breakout", "drift", "reversal"]
CFG = dict(
    folds=3,
    repeats=1,
    epochs=1,
    fractions=[1.0],
    n_bootstrap=20,
    device="cpu",
    progress=False,
    n_jobs=1,
    group_by_session=False,
)


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    folder = tmp_path_factory.mktemp("k3")
    bars = synthetic_ohlcv("2025-06-02", "2025-06-13", seed=5)
    bars.to_parquet(folder / "bars.parquet")
    starts = np.arange(45) * 250 + 200
    labels = [CLASSES[i % 3] for i in range(45)]
    pd.DataFrame({"start": bars.index[starts], "label": labels}).to_csv(folder / "labels.csv", index=False)
    torch.manual_seed(0)
    encoder = JadeEncoder(hidden_size=8, num_layers=1)
    encoder.feature_options = resolve_feature_options()
    save_encoder(encoder, folder / "encoder.pt")
    spec = LabelledSpec(labels_path=str(folder / "labels.csv"), data_path=str(folder / "bars.parquet"))
    return folder, bars, labelled_from_params(spec)


def test_three_classes_of_the_users_own_run_through_transfer(three):
    folder, _, labelled = three
    assert labelled.classes == tuple(CLASSES) and labelled.class_counts() == dict.fromkeys(CLASSES, 15)
    res = run_transfer(labelled, folder / "encoder.pt", {**CFG, "arms": ["baseline", "frozen", "simple"]})
    summary = res["arms"]["frozen"]["summary"]
    assert {f"recall_{c}" for c in CLASSES} <= set(summary)
    assert np.array(res["arms"]["frozen"]["confusion"]).shape == (3, 3)
    assert 0 <= summary["balanced_accuracy"]["mean"] <= 1 and summary["log_loss"]["mean"] > 0
    assert res["verdict"].startswith("1. Use ") and res["decision"]["recommended"] in res["arms"]
    figures.confusion_matrices(res)
    figures.metrics_bars(res)


def test_the_classifier_fits_and_scans_three_classes(three):
    folder, bars, labelled = three
    clf = ArmClassifier("simple_logistic", encoder=folder / "encoder.pt", config=CFG).fit(labelled)
    assert list(clf.classes_) == CLASSES
    scores = scan(clf, bars, "2025-06-12", "2025-06-13", stride=30)
    assert [c for c in scores.columns if c.startswith("p_")] == [f"p_{c}" for c in CLASSES]
    assert np.allclose(scores[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1.0)


def test_a_background_class_is_kept_with_the_model_and_never_detected(three, tmp_path):
    _, bars, labelled = three
    clf = ArmClassifier("simple_logistic", config=CFG, background="drift").fit(labelled)
    clf.save(tmp_path / "model")
    loaded = ArmClassifier.load(tmp_path / "model")
    assert loaded.meta["background"] == "drift" and loaded.background == "drift"
    bars.to_parquet(tmp_path / "scan.parquet")
    done = scan_to_files(loaded, tmp_path / "scan.parquet", tmp_path / "scores.csv", threshold=0.3, stride=30)
    assert done["detected_classes"] == ["breakout", "reversal"]
    found = detections(scan(loaded, bars, stride=30), 0.3, loaded.meta["background"])  # every p >= 0.3
    assert set(found["class"]) == {"breakout", "reversal"}
    with pytest.raises(ClassifierError, match=r"'none' is not one of the labelled classes \['breakout', 'drift'"):
        ArmClassifier("simple_logistic", config=CFG, background="none").fit(labelled)


def test_a_class_too_small_for_the_folds_is_named_with_its_count(three):
    _, _, labelled = three
    with pytest.raises(DataValidationError, match=r"\{'breakout': 15, 'drift': 15, 'reversal': 15\}.*folds=16"):
        labelled.check_folds(16)


@pytest.mark.parametrize(
    "classes, message",
    [
        (["up"], "give 2 to"),
        ([f"c{i}" for i in range(MAX_CLASSES + 1)], "give 2 to"),
        (["Up", "up "], "each class once"),
        (["up", ""], "non-empty name"),
    ],
)
def test_class_lists_the_labelling_tool_cannot_offer_are_refused(classes, message):
    with pytest.raises(ConfigError, match=message):
        readable_classes(classes)
    assert readable_classes([" Breakout", "drift", "Reversal"]) == ("breakout", "drift", "reversal")
