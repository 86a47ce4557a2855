"""The classifier: every kind of arm fitted on all labelled windows with the protocol's recipe, calibrated,
saved, read back predicting identically; its files refused when broken; the models' arrays predicting as
scikit-learn does; windows of another shape or other feature options refused."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from moola_lib.classifier.errors import ClassifierError, ClassifierFileError
from moola_lib.classifier.model import ArmClassifier
from moola_lib.features.options import resolve_feature_options
from moola_lib.labels.sets import DEFAULT_CLASSES, LabelledSet, overlap_groups
from moola_lib.pretraining.checkpoints import load_encoder, save_encoder
from moola_lib.pretraining.model import JadeEncoder
from moola_lib.transfer.calibration import fit_temperature, reliability, scaled_probabilities
from moola_lib.transfer.config import TransferConfig
from moola_lib.transfer.fits import Inputs, fit_arm
from moola_lib.transfer.linear import LinearModel
from moola_lib.transfer.protocol import all_windows_split
from moola_lib.transfer.rocket import fit_ridge
from moola_lib.transfer.simple import BoostedTrees

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RECIPE = {
    "epochs": 2,
    "seeds_per_fold": 2,
    "device": "cpu",
    "group_by_session": False,
    "readouts": ["mean:last", "max:last"],
}
ARMS = [
    "baseline",
    "lpft",
    "frozen",
    "random_frozen",
    "simple_logistic",
    "simple_boosting",
    "rocket_minirocket",
]


def small_set(n: int = 40, seed: int = 0) -> LabelledSet:
    """Random windows whose class shows in a level and a wave of feature 0 (the ROCKET kernels see the wave)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 105, 10)).astype(np.float32)
    X[y == 1, :, 0] += 0.5 + 1.5 * np.sin(np.arange(105) / 2.0).astype(np.float32)
    valid = np.ones((n, 105), dtype=bool)
    valid[:, :5] = False
    starts = np.arange(n) * 150
    index = pd.date_range("2024-01-01", periods=n * 150 + 105, freq="1min", tz="UTC")
    return LabelledSet(
        X=X,
        valid=valid,
        y=y,
        classes=DEFAULT_CLASSES,
        window_id=np.array([f"w{i}" for i in range(n)], dtype=object),
        start=index[starts],
        end=index[starts + 104],
        expansion=np.tile([10, 40], (n, 1)),
        groups=overlap_groups(starts),
        source={"path": "<small>"},
        feature_options=resolve_feature_options(),
    )


@pytest.fixture(scope="module")
def encoder_path(tmp_path_factory):
    torch.manual_seed(0)
    encoder = JadeEncoder(hidden_size=8, num_layers=1)
    encoder.feature_options = resolve_feature_options()
    path = tmp_path_factory.mktemp("encoder") / "encoder.pt"
    save_encoder(encoder, path)
    return path


@pytest.fixture(scope="module")
def saved(encoder_path, tmp_path_factory):
    """A fitted simple_logistic model saved into a folder (for the file tests)."""
    path = tmp_path_factory.mktemp("model") / "clf"
    ArmClassifier("simple_logistic", encoder=encoder_path, config=RECIPE).fit(small_set()).save(path)
    return path


@pytest.mark.parametrize("arm", ARMS)
def test_every_kind_fits_saves_and_loads_identically(arm, encoder_path, tmp_path):
    ls = small_set()
    clf = ArmClassifier(arm, encoder=encoder_path, config=RECIPE).fit(ls)
    proba = clf.predict_proba(ls.X, ls.valid, ls.expansion)
    assert proba.shape == (len(ls), 2) and np.allclose(proba.sum(axis=1), 1)
    assert (clf.predict(ls) == np.asarray(DEFAULT_CLASSES, dtype=object)[proba.argmax(1)]).all()
    clf.save(tmp_path / "clf")
    back = ArmClassifier.load(tmp_path / "clf")
    np.testing.assert_array_equal(back.predict_proba(ls.X, ls.valid, ls.expansion), proba)
    assert back.classes_ == list(DEFAULT_CLASSES) and back.window_length == 105
    assert back.feature_options == resolve_feature_options() and back.meta["arm"] == arm
    meta = json.loads((tmp_path / "clf" / "model.json").read_text())
    assert meta["format"] == "moola.classifier.v1" and len(meta["weights"]["sha256"]) == 64
    assert meta["recipe"]["config"]["epochs"] == 2 and meta["encoder"]["sha256"]
    assert {"torch", "sklearn", "aeon", "numpy", "moola"} <= set(meta["versions"])
    calibration = meta["calibration"]
    assert calibration["temperature"] > 0 and len(calibration["bins"]) == 10
    assert sum(calibration["before"]["counts"]) == calibration["n"] == meta["recipe"]["n_val"]
    if arm in ("baseline", "lpft"):
        assert len(back.model_.models) == RECIPE["seeds_per_fold"]  # every seed's model, averaged


def test_the_fitted_model_is_the_protocols_fit_on_all_windows(encoder_path):
    """The probe's choices (read-out, C) and predictions equal the protocol's fit on the same split, and a
    trained arm's epochs: the classifier goes through the very code the cross-validation scored."""
    ls = small_set()
    cfg = TransferConfig(**RECIPE)
    encoder = load_encoder(encoder_path, hidden_size=None, num_layers=None)
    seed, split = all_windows_split(ls, cfg)
    assert len(split[2]) == 0 and len(split[0]) + len(split[1]) == len(ls)
    for arm in ("frozen", "baseline"):
        direct = fit_arm(arm, Inputs.build(ls, encoder, cfg, arms=[arm]), ls.y, split, cfg, seed)
        clf = ArmClassifier(arm, encoder=encoder_path, config=RECIPE).fit(ls)
        assert clf.meta["chosen"] == direct.chosen and clf.meta["recipe"]["n_fit"] == len(split[0])
        np.testing.assert_array_equal(
            clf.model_.predict_proba(ls.X, ls.valid, ls.expansion), direct.predict_proba(ls.X, ls.valid, ls.expansion)
        )


def test_the_protocol_predicts_through_the_same_model(encoder_path):
    """A model's predictions of new windows (its own features) equal the protocol's (the run's fixed
    features of the same windows)."""
    from moola_lib.transfer.fits import split_probabilities

    ls = small_set()
    cfg = TransferConfig(**RECIPE)
    encoder = JadeEncoder(hidden_size=8, num_layers=1)
    seed, split = all_windows_split(ls, cfg)
    for arm in ("frozen", "simple_boosting", "rocket_minirocket", "baseline"):
        inputs = Inputs.build(ls, encoder, cfg, arms=[arm])
        model = fit_arm(arm, inputs, ls.y, split, cfg, seed)
        protocol = np.mean(split_probabilities(model, inputs, np.arange(len(ls))), axis=0)
        np.testing.assert_allclose(model.predict_proba(ls.X, ls.valid, ls.expansion), protocol, atol=1e-6)


@pytest.mark.parametrize("arm", ["baseline", "frozen"])
def test_predictions_do_not_depend_on_the_cpu_inference_batch(arm, encoder_path, monkeypatch):
    """Small forward passes on one CPU thread (``model.INFERENCE_BATCH``: 64, faster there than 1,024) give
    the predictions of one pass over all windows (to float32 rounding: on the development machine, exactly)."""
    from moola_lib.pretraining import model as models

    ls = small_set()
    X, valid = np.concatenate([ls.X] * 5), np.concatenate([ls.valid] * 5)  # 200 windows: several batches of 64
    clf = ArmClassifier(arm, encoder=encoder_path, config=RECIPE).fit(ls)
    small = clf.predict_proba(X, valid)
    monkeypatch.setitem(models.INFERENCE_BATCH, "one_cpu_thread", 4096)
    np.testing.assert_allclose(small, clf.predict_proba(X, valid), rtol=0, atol=1e-6)
    assert models.inference_batch_size("cpu") == 4096


def test_the_inference_batch_is_small_on_one_cpu_thread_only():
    from moola_lib.pretraining.model import inference_batch_size

    assert inference_batch_size("cpu") == 64 and inference_batch_size("cuda:0") == 1024
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert inference_batch_size("cpu") == 1024
    finally:
        torch.set_num_threads(threads)


def test_auto_takes_the_transfer_runs_best_arm(encoder_path, tmp_path):
    ls = small_set()
    folds = {"simple_logistic": 0.8, "simple_boosting": 0.6, "baseline": 0.5}
    results = {
        "format": "moola.transfer_results.v2",
        "config": {**TransferConfig(**RECIPE).to_dict()},
        "arms": {
            a: {
                "summary": {"balanced_accuracy": {"mean": m, "ci_low": m - 0.125, "ci_high": m + 0.125}},
                "folds": [
                    {"repeat": 0, "fold": k, "n_train": 28, "n_test": 7, "balanced_accuracy": m + 0.01 * k}
                    for k in range(5)
                ],
            }
            for a, m in folds.items()
        },
        "encoder": {"path": str(encoder_path)},
        # it evaluated these windows
        "protocol": {"window_ids": list(ls.window_id), "y": ls.y.tolist(), "primary_metric": "balanced_accuracy"},
    }
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "transfer_results.json").write_text(json.dumps(results))
    clf = ArmClassifier(encoder=encoder_path, transfer_run=tmp_path / "run").fit(ls)
    assert clf.meta["arm"] == "simple_logistic" and clf.meta["choice"]["p_best"]["simple_logistic"] == 1.0
    assert clf.meta["transfer_run"]["balanced_accuracy"] == {"mean": 0.8, "ci_low": 0.675, "ci_high": 0.925}
    results["decision"] = {"recommended": "simple_boosting", "separable": False, "arms": {}}  # the run's own
    (tmp_path / "run" / "transfer_results.json").write_text(json.dumps(results))
    assert ArmClassifier(transfer_run=tmp_path / "run").fit(ls).meta["arm"] == "simple_boosting"
    with pytest.warns(UserWarning, match="epochs: 2 -> 3"):  # a changed recipe is said
        ArmClassifier("simple_logistic", config={"epochs": 3}, transfer_run=tmp_path / "run").fit(ls)
    with pytest.warns(UserWarning, match="evaluated other labelled windows than these 42"):  # so are other windows
        ArmClassifier("simple_logistic", transfer_run=tmp_path / "run").fit(small_set(42))


def test_bad_choices_are_refused(encoder_path):
    ls = small_set()
    with pytest.raises(ClassifierError, match="unknown arm 'frozn'.*Did you mean 'frozen'"):
        ArmClassifier("frozn", encoder=encoder_path).fit(ls)
    with pytest.raises(ClassifierError, match="'auto' takes the best arm of a transfer run"):
        ArmClassifier(encoder=encoder_path).fit(ls)
    with pytest.raises(ClassifierError, match="arm 'frozen' reads an encoder"):
        ArmClassifier("frozen", config=RECIPE).fit(ls)
    one = small_set()
    one.y[:] = 0
    with pytest.raises(ClassifierError, match="no labelled windows of class"):
        ArmClassifier("simple_logistic", config=RECIPE).fit(one)
    with pytest.raises(ClassifierError, match="not fitted"):
        ArmClassifier("simple_logistic").predict_proba(ls.X, ls.valid)


def test_windows_with_other_feature_options_or_shape_are_refused(saved):
    clf = ArmClassifier.load(saved)
    ls = small_set()
    ls.feature_options = resolve_feature_options({"reversal_atr": 1.2})
    with pytest.raises(ClassifierError, match="other feature options.*reversal_atr: 1.2 vs 2.0"):
        clf.predict_proba(ls)
    with pytest.raises(ClassifierError, match="other feature options"):
        clf.check_feature_options({"dist_transform": "linear"})
    clf.check_feature_options({})  # the defaults: the model's
    with pytest.raises(ClassifierError, match=r"the model reads X \[N, 105, 10\]"):
        clf.predict_proba(ls.X[:, :100], ls.valid[:, :100])
    with pytest.raises(ClassifierError, match="other feature options"):  # labelled with other options: no fit
        ArmClassifier("frozen", encoder=_original_encoder(saved.parent), config=RECIPE).fit(small_set())
    assert clf.predict_proba(ls.X[:0], ls.valid[:0]).shape == (0, 2)


def _original_encoder(folder):
    path = folder / "original.pt"
    save_encoder(JadeEncoder(hidden_size=8, num_layers=1), path)  # no options recorded: the original's
    return path


def _refusal(path) -> str:
    with pytest.raises(ClassifierFileError) as caught:
        ArmClassifier.load(path)
    assert "\n" not in str(caught.value)  # one line
    return str(caught.value)


def test_broken_model_files_are_refused_with_one_line(saved, tmp_path):
    import shutil

    _original_encoder(saved.parent)

    def copy(name):
        shutil.copytree(saved, tmp_path / name)
        return tmp_path / name

    weights = (copy("tampered") / "model.pt").read_bytes()
    (tmp_path / "tampered" / "model.pt").write_bytes(weights[:-40] + bytes(40))
    assert "SHA-256 differs" in _refusal(tmp_path / "tampered")
    (copy("truncated") / "model.pt").write_bytes(weights[: len(weights) // 2])
    assert "SHA-256 differs" in _refusal(tmp_path / "truncated")
    meta = json.loads((saved / "model.json").read_text())
    (copy("cut") / "model.pt").write_bytes(weights[: len(weights) // 2])  # cut, and its hash updated to match
    _rewrite(tmp_path / "cut", meta, sha256=True)
    assert "truncated or corrupt" in _refusal(tmp_path / "cut")
    pickled = copy("pickled") / "model.pt"
    torch.save({"format": "moola.classifier_weights.v1", "state": np.arange(3)}, pickled)  # numpy: pickled code
    _rewrite(tmp_path / "pickled", meta, sha256=True)
    assert "refused" in _refusal(tmp_path / "pickled")  # nothing of it was run
    shutil.copy(saved.parent / "original.pt", copy("encoder") / "model.pt")  # an encoder file, hash updated
    _rewrite(tmp_path / "encoder", meta, sha256=True)
    assert "not the weights of this classifier" in _refusal(tmp_path / "encoder")
    _rewrite(copy("newer"), {**meta, "format": "moola.classifier.v2"})
    assert "newer moola" in _refusal(tmp_path / "newer")
    _rewrite(copy("foreign"), {**meta, "format": "moola.transfer_results.v2"})
    assert "not a moola classifier" in _refusal(tmp_path / "foreign")
    (copy("not_json") / "model.json").write_text(json.dumps(meta)[:100])
    assert "not JSON" in _refusal(tmp_path / "not_json")
    assert "no model.json" in _refusal(tmp_path)


def _rewrite(folder, meta, sha256=False):
    from moola_lib.util.io import file_sha256

    if sha256:
        meta = {**meta, "weights": {**meta["weights"], "sha256": file_sha256(folder / "model.pt")}}
    (folder / "model.json").write_text(json.dumps(meta))


def test_a_model_is_saved_into_a_new_run_directory_only(saved):
    clf = ArmClassifier.load(saved)
    with pytest.raises(FileExistsError, match="already holds model.json, model.pt"):
        clf.save(saved)


# ------------------------------------------------------------------------------- arrays as scikit-learn


def test_boosted_trees_predict_as_scikit_learn():
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(200, 12))
    for n_classes in (2, 3):
        y = (Z[:, 0] + Z[:, 1] > 0).astype(int) + (n_classes == 3) * (Z[:, 2] > 1)
        gb = GradientBoostingClassifier(n_estimators=30, max_depth=2, subsample=0.8, random_state=0)
        gb.fit(Z[:150], y[:150], sample_weight=rng.uniform(0.5, 2, size=150))
        trees = BoostedTrees.from_fitted(gb)
        np.testing.assert_array_equal(trees.raw(Z[150:]).squeeze(), gb.decision_function(Z[150:]))
        if n_classes == 2:
            np.testing.assert_array_equal(trees.predict_proba(Z[150:]), gb.predict_proba(Z[150:]))
        else:
            np.testing.assert_allclose(trees.predict_proba(Z[150:]), gb.predict_proba(Z[150:]), rtol=1e-12)
        again = BoostedTrees.from_state(trees.state())
        np.testing.assert_array_equal(again.predict_proba(Z), trees.predict_proba(Z))


def test_linear_models_predict_as_scikit_learn():
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(120, 6))
    for n_classes in (2, 3):
        y = np.arange(120) % n_classes
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).fit(Z[:90], y[:90])
        linear = LinearModel.from_fitted(pipeline)
        np.testing.assert_array_equal(linear.predict_proba(Z[90:]), pipeline.predict_proba(Z[90:]))
    ridge = fit_ridge(Z, np.arange(120) % 2, np.arange(80), np.arange(80, 100))
    np.testing.assert_array_equal(ridge.linear.decision(Z[100:]), ridge.pipeline.decision_function(Z[100:]))


def test_calibration_fits_a_temperature_and_measures_the_error():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=1.0, size=4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-logits))).astype(int)  # these logits are calibrated ...
    sharp = 3 * np.stack([-logits, logits], axis=1) / 2  # ... and three times as sure
    overconfident = np.exp(sharp) / np.exp(sharp).sum(axis=1, keepdims=True)
    before = reliability(overconfident, y)
    assert before["ece"] > 0.1 and sum(before["counts"]) == 4000 and len(before["bins"]) == 10
    temperature = fit_temperature(np.log(overconfident), y)
    assert 0.28 < temperature < 0.39  # about 1/3 undoes it
    assert reliability(scaled_probabilities(np.log(overconfident), temperature), y)["ece"] < 0.03
