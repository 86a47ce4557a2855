"""``ArmClassifier``: one arm of the transfer protocol fitted on all labelled windows, scikit-learn style.

``ArmClassifier(arm="auto", encoder=None, config=None, transfer_run=None, background=None).fit(labelled)`` fits the arm
(``recipe.choose_arm``: named, or the transfer run's best) with exactly the recipe the protocol evaluated:
the run's ``TransferConfig`` (``recipe.recipe_config``), the inner split of all windows grouped as the folds
are (``transfer.protocol.all_windows_split``: the fit windows learn, the inner validation windows choose the
epoch, read-out, C or temperature), ``seeds_per_fold`` members averaged, through the very fit of the
protocol (``transfer.fits.fit_arm``). One temperature on the log of its averaged probabilities is then
fitted on the inner validation windows (``transfer.calibration``): labels and rankings stay the arm's, the
probabilities mean what they say; ``meta["calibration"]`` holds the expected calibration error before and
after (on those same windows, so "after" is in-sample for that one parameter) and the reliability diagram.

``predict_proba(X, valid, expansion=None)`` takes windows X float32 [N, window_length, n_features] and valid
bool [N, window_length] computed with ``feature_options`` (or a ``LabelledSet``, whose recorded options are
checked); ``classes_`` names the columns. ``save(dir)`` writes the model into a new run directory
(``files``), ``ArmClassifier.load(dir)`` reads it back and predicts identically. ``meta`` is the model.json.
"""

from __future__ import annotations

import datetime as dt
import platform
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from ..features.options import resolve_feature_options
from ..labels.provenance import EncoderSource
from ..labels.sets import LabelledSet
from ..pretraining.devices import resolve_device
from ..transfer.arms import arm as arm_row
from ..transfer.calibration import fit_temperature, log_probabilities, reliability, scaled_probabilities
from ..transfer.fits import KINDS, Inputs, fit_arm, split_probabilities
from ..transfer.protocol import all_windows_split
from ..transfer.readouts import DEFAULT_READOUT
from ..util.io import file_sha256
from ..util.threads import cpu_threads_block
from .errors import ClassifierError
from .files import read_model, state_errors, write_model
from .recipe import AUTO, TransferRun, check_encoder, choose_arm, recipe_config

CHUNK = 4096  # windows per prediction step: a long scan's memory stays bounded


class ArmClassifier:
    """The classifier of one arm (see the module docstring). ``encoder``: an encoder file or an
    ``EncoderSource``; ``config``: TransferConfig overrides (a mapping) or a whole TransferConfig;
    ``transfer_run``: a transfer run directory or a ``recipe.TransferRun``."""

    def __init__(self, arm: str = AUTO, encoder=None, config=None, transfer_run=None, background: str | None = None):
        self.arm, self.encoder, self.config, self.transfer_run = arm, encoder, config, transfer_run
        self.background = background  # the class of windows without a pattern: the scan detects the others
        self.model_ = None  # the fitted arm (transfer.fits.FittedArm)
        self.meta: dict = {}

    # ------------------------------------------------------------------------------------------- fitting

    def fit(self, labelled: LabelledSet) -> ArmClassifier:
        """Fit the arm on every window of ``labelled`` with the recipe (see the module docstring)."""
        started = time.perf_counter()
        run = (
            self.transfer_run
            if isinstance(self.transfer_run, TransferRun | None)
            else TransferRun.read(self.transfer_run)
        )
        arm, why = choose_arm(self.arm, run)
        cfg = recipe_config(run, self.config)
        check_encoder(arm, self.encoder is not None, run)
        source = self.encoder
        if not isinstance(source, EncoderSource | None):
            source = EncoderSource.load(source, input_size=labelled.X.shape[-1])
        options = _model_options(labelled, source)
        _check_classes(labelled, self.background)
        seed, split = all_windows_split(labelled, cfg)
        with cpu_threads_block(cfg.cpu_threads if resolve_device(cfg.device).type == "cpu" else None):
            inputs = Inputs.build(labelled, None if source is None else source.encoder, cfg, arms=[arm])
            model = fit_arm(arm, inputs, labelled.y, split, cfg, seed)
            val_proba = np.mean(split_probabilities(model, inputs, split[1]), axis=0)
        evaluated = _transfer_record(run, arm, labelled)
        if evaluated is not None and not evaluated["same_labelled_windows"]:
            warnings.warn(
                f"{run.path} evaluated other labelled windows than these {len(labelled)}: its cross-validated "
                "accuracy is the recipe's on those windows",
                stacklevel=2,
            )
        self.model_ = model
        self.meta = {
            "arm": arm,
            "kind": arm_row(arm).kind,
            "title": arm_row(arm).title,
            "classes": list(labelled.classes),
            "background": self.background,
            "class_definitions": labelled.class_definitions,
            "feature_options": options,
            "window_length": int(labelled.X.shape[1]),
            "n_features": int(labelled.X.shape[2]),
            "readout": model.chosen.get("readout", DEFAULT_READOUT if arm_row(arm).kind == "trained" else None),
            "chosen": model.chosen,
            "recipe": {"config": cfg.to_dict(), "seed": seed, "n_fit": len(split[0]), "n_val": len(split[1])},
            "choice": why,
            "transfer_run": evaluated,
            "encoder": _encoder_record(source),
            "labels": _labels_record(labelled),
            "calibration": _calibration(val_proba, labelled.y[split[1]]),
            "versions": _versions(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 3),
        }
        return self

    # ----------------------------------------------------------------------------------------- predicting

    @property
    def classes_(self) -> list[str]:
        return list(self._fitted()["classes"])

    @property
    def feature_options(self) -> dict:
        """Every feature option the model's windows must be computed with (``relativity_features(**...)``)."""
        return dict(self._fitted()["feature_options"])

    @property
    def window_length(self) -> int:
        return int(self._fitted()["window_length"])

    def check_feature_options(self, options: dict, what: str = "the windows") -> None:
        """ClassifierError unless ``options`` (a partial mapping: the rest are the defaults) equal the model's."""
        given = resolve_feature_options(options)
        if given != self.feature_options:
            raise ClassifierError(
                f"{what} were computed with other feature options than the model's "
                f"({_differences(given, self.feature_options)}): compute them with the model's feature_options"
            )

    def predict_proba(self, X, valid=None, expansion=None) -> np.ndarray:
        """Calibrated class probabilities [N, len(classes_)] of windows (see the module docstring)."""
        X, valid, expansion = self._windows(X, valid, expansion)
        temperature = self.meta["calibration"]["temperature"]
        out = []
        with cpu_threads_block(self.meta["recipe"]["config"].get("cpu_threads")):
            for i in range(0, len(X), CHUNK):
                part = None if expansion is None else expansion[i : i + CHUNK]
                proba = self.model_.predict_proba(X[i : i + CHUNK], valid[i : i + CHUNK], part)
                out.append(scaled_probabilities(log_probabilities(proba), temperature))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)))

    def predict(self, X, valid=None, expansion=None) -> np.ndarray:
        """The most probable class name of each window."""
        return np.asarray(self.classes_, dtype=object)[self.predict_proba(X, valid, expansion).argmax(axis=1)]

    def _fitted(self) -> dict:
        if self.model_ is None:
            raise ClassifierError("the classifier is not fitted: call fit(labelled) or ArmClassifier.load(model_dir)")
        return self.meta

    def _windows(self, X, valid, expansion):
        """(X float32, valid bool, expansion or None) checked against the model's shape and feature options."""
        meta = self._fitted()
        if isinstance(X, LabelledSet):
            if X.feature_options is not None:
                self.check_feature_options(X.feature_options, "the labelled windows")
            X, valid, expansion = X.X, X.valid, X.expansion
        X, valid = np.asarray(X, dtype=np.float32), np.asarray(valid, dtype=bool)
        shape = (meta["window_length"], meta["n_features"])
        if X.ndim != 3 or X.shape[1:] != shape or valid.shape != X.shape[:2]:
            raise ClassifierError(
                f"windows of shape X {X.shape}, valid {valid.shape}: the model reads X [N, {shape[0]}, {shape[1]}] "
                f"and valid [N, {shape[0]}]"
            )
        if expansion is not None and np.shape(expansion) != (len(X), 2):
            raise ClassifierError(f"expansion of shape {np.shape(expansion)}: the model reads [N, 2] bar offsets")
        return X, valid, None if expansion is None else np.asarray(expansion)

    # --------------------------------------------------------------------------------------------- files

    def save(self, path) -> Path:
        """Write the model into ``path``, a new or empty run directory (``files``); returns ``path``."""
        self._fitted()
        self.meta = write_model(path, self.meta, self.model_.state())
        return Path(path)

    @classmethod
    def load(cls, path) -> ArmClassifier:
        """The classifier saved in ``path``; a missing, altered, foreign or newer file is ClassifierFileError."""
        meta, state = read_model(path)
        with state_errors(path):
            model = KINDS[arm_row(meta["arm"]).kind].from_state(meta["arm"], meta["chosen"], state)
        classifier = cls(arm=meta["arm"], background=meta.get("background"))
        classifier.model_, classifier.meta = model, meta
        return classifier


# ------------------------------------------------------------------------------------------------- helpers


def _model_options(labelled: LabelledSet, source: EncoderSource | None) -> dict:
    """The feature options the model reads: the encoder's (arms without one: the labelled windows', else the
    defaults); labelled windows computed with other options, or with another number of features, are refused."""
    if source is not None and source.encoder.arch["input_size"] != labelled.X.shape[-1]:
        raise ClassifierError(
            f"{source.path}: the encoder reads {source.encoder.arch['input_size']} features, the labelled windows "
            f"hold {labelled.X.shape[-1]}"
        )
    options = source.feature_options if source is not None else labelled.feature_options or resolve_feature_options()
    if labelled.feature_options is not None and labelled.feature_options != options:
        raise ClassifierError(
            f"the labelled windows were computed with other feature options than the encoder's "
            f"({_differences(labelled.feature_options, options)}): compute them with the encoder's"
        )
    return dict(options)


def _check_classes(labelled: LabelledSet, background: str | None) -> None:
    """Every class has windows; the background class, if named, is one of them."""
    counts = labelled.class_counts()
    if background is not None and background not in counts:
        raise ClassifierError(
            f"{labelled.source.get('path', 'the labelled set')}: the background class {background!r} is not one of "
            f"the labelled classes {list(counts)}; name the class of windows without a pattern, as labelled"
        )
    empty = [c for c, n in counts.items() if n == 0]
    if len(labelled) == 0 or empty:
        raise ClassifierError(
            f"{labelled.source.get('path', 'the labelled set')}: no labelled windows of class(es) "
            f"{empty or list(counts)} ({counts}); a classifier learns only classes it has windows of: label some"
        )


def _calibration(val_proba: np.ndarray, y_val: np.ndarray) -> dict:
    """The temperature fitted on the inner validation windows, and the reliability before and after it."""
    logits = log_probabilities(val_proba)
    temperature = fit_temperature(logits, y_val)
    before, after = reliability(val_proba, y_val), reliability(scaled_probabilities(logits, temperature), y_val)
    return {
        "method": "temperature on the log of the arm's probabilities",
        "temperature": temperature,
        "windows": "inner validation",
        "n": len(y_val),
        "ece_before": before.pop("ece"),
        "ece_after": after.pop("ece"),
        "bins": before.pop("bins"),
        "before": before,
        "after": {k: v for k, v in after.items() if k != "bins"},
    }


def _transfer_record(run: TransferRun | None, arm: str, labelled: LabelledSet) -> dict | None:
    if run is None:
        return None
    return {
        "path": str(run.path),
        "balanced_accuracy": run.estimate(arm),  # cross-validated: mean, ci_low, ci_high (None: arm not run)
        "same_labelled_windows": run.same_windows(labelled),
    }


def _encoder_record(source: EncoderSource | None) -> dict | None:
    if source is None:
        return None
    return {
        "path": str(source.path),
        "sha256": file_sha256(source.path),
        "arch": dict(source.encoder.arch),
        "objective": source.encoder.objective,
    }


def _labels_record(labelled: LabelledSet) -> dict:
    return {
        "sha256": labelled.source.get("sha256"),  # the labels file's (None: the embedded set, a DataFrame)
        "n_windows": len(labelled),
        "class_counts": labelled.class_counts(),
        "source": labelled.source,
    }


def _versions() -> dict:
    import moola_lib

    out = {"moola": moola_lib.__version__, "python": platform.python_version()}
    for name, package in (("torch", "torch"), ("sklearn", "scikit-learn"), ("aeon", "aeon"), ("numpy", "numpy")):
        try:
            out[name] = version(package)
        except PackageNotFoundError:
            out[name] = None
    return out


def _differences(a: dict, b: dict) -> str:
    return "; ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
