"""What the classifier fits: which arm, and with which recipe.

``TransferRun.read(path)``: a transfer run (its directory or its transfer_results.json), read once.
``choose_arm``: a named arm as given (one of ``arms.TABLE``: the names the verdict prints); ``auto``: the arm
the run's decision recommends, the one with the best cross-validated balanced accuracy, with the probability
that each arm is the best from the run's paired fold results (``results["decision"]``, else
``transfer.decision.decision``). ``recipe_config``: the run's ``TransferConfig`` as the protocol ran it (else
the defaults), with the caller's overrides; an override that changes what a fit learns is warned about,
since the model is then not the one whose accuracy the run estimated.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..labels.sets import LabelledSet
from ..transfer.arms import BY_NAME
from ..transfer.arms import arm as arm_row
from ..transfer.config import TransferConfig
from ..transfer.decision import decision
from ..util.config import apply_overrides
from ..util.io import read_json
from ..util.names import valid_names_hint
from .errors import ClassifierError

AUTO = "auto"
RESULTS = "transfer_results.json"
# TransferConfig fields that say how the protocol evaluated, not what a fit learns: overriding them is harmless
NOT_RECIPE = (
    "arms",
    "primary",
    "primary_metric",
    "alpha",
    "power",
    "folds",
    "repeats",
    "embargo_bars",
    "fractions",
    "n_bootstrap",
    "cpu_threads",
    "n_jobs",
    "device",
    "progress",
)


@dataclass(frozen=True)
class TransferRun:
    """A transfer run's results (transfer_results.json), read once."""

    path: Path  # the results file
    results: dict

    @classmethod
    def read(cls, path) -> TransferRun:
        """The results of the transfer run directory (or results file) ``path``; ClassifierError if there are none."""
        given = Path(path)
        file = given / RESULTS if given.is_dir() else given
        if not file.is_file():
            raise ClassifierError(f"{given}: no {RESULTS} there; pass the run directory of a finished transfer run")
        try:
            results = read_json(file)
        except (ValueError, UnicodeDecodeError) as e:
            raise ClassifierError(
                f"{file}: not readable JSON ({e}); truncated or not a transfer results file"
            ) from None
        if not (isinstance(results, dict) and str(results.get("format", "")).startswith("moola.transfer_results")):
            raise ClassifierError(f"{file}: not a moola transfer results file (no 'format' moola.transfer_results.*)")
        return cls(file, results)

    def estimate(self, arm: str) -> dict | None:
        """The arm's cross-validated balanced accuracy in this run (mean, ci_low, ci_high); None if it did not run."""
        entry = self.results.get("arms", {}).get(arm)
        if entry is None:
            return None
        accuracy = entry["summary"]["balanced_accuracy"]
        return {k: float(accuracy[k]) for k in ("mean", "ci_low", "ci_high")}

    def same_windows(self, labelled: LabelledSet) -> bool:
        """Whether the run evaluated these labelled windows: the same ids and labels in order, and the same
        labels file (SHA-256) where both record one."""
        protocol = self.results.get("protocol", {})
        ran = (self.results.get("data") or {}).get("source") or {}
        files = {ran.get("sha256"), labelled.source.get("sha256")}
        return (
            protocol.get("window_ids") == [str(w) for w in labelled.window_id]
            and protocol.get("y") == [int(v) for v in np.asarray(labelled.y)]
            and (None in files or len(files) == 1)
        )


def choose_arm(arm: str, run: TransferRun | None) -> tuple[str, dict]:
    """The arm to fit and why: ``{"how": "named" | "auto", ...}`` (auto: the run's decision, P(best) per arm)."""
    if arm != AUTO:
        if arm not in BY_NAME:
            raise ClassifierError(f"unknown arm {arm!r}: choose {AUTO!r} or an arm.{valid_names_hint(arm, BY_NAME)}")
        return arm, {"how": "named"}
    if run is None:
        raise ClassifierError(
            f"arm {AUTO!r} takes the best arm of a transfer run: give the run (--transfer-run DIR, or "
            f"transfer_run=...) or name an arm ({', '.join(BY_NAME)})"
        )
    chosen = run.results.get("decision") or decision(run.results)
    best = chosen["recommended"]
    if best not in BY_NAME:
        raise ClassifierError(f"{run.path}: its best arm {best!r} is not an arm of this moola ({', '.join(BY_NAME)})")
    p_best = {a: float(v["p_best"]) for a, v in chosen["arms"].items()}
    return best, {"how": AUTO, "p_best": p_best, "separable": bool(chosen["separable"])}


def check_encoder(arm: str, has_encoder: bool, run: TransferRun | None) -> None:
    """ClassifierError when ``arm`` reads an encoder (the pretrained one, or a random one of its shape) and
    none is given; the message names the encoder the transfer run evaluated."""
    if arm_row(arm).encoder is None or has_encoder:
        return
    evaluated = (run.results.get("encoder") or {}).get("path") if run is not None else None
    hint = f" (the transfer run evaluated {evaluated})" if evaluated else ""
    raise ClassifierError(
        f"arm {arm!r} reads an encoder ({arm_row(arm).encoder} weights of its architecture): give the encoder "
        f"file (--encoder PATH; encoder_path in classify.ipynb; encoder=... in Python){hint}"
    )


def recipe_config(run: TransferRun | None, config: TransferConfig | Mapping | None = None) -> TransferConfig:
    """The run's TransferConfig (the defaults without a run), then ``config``: a mapping of overrides, or a
    whole TransferConfig. A change of a field that a fit learns from is warned about when a run is given."""
    base = TransferConfig.from_dict(run.results.get("config", {})) if run is not None else TransferConfig()
    if isinstance(config, TransferConfig):
        cfg = config
    else:
        cfg = apply_overrides(base, dict(config or {}), what="TransferConfig")
    old, new = dataclasses.asdict(base), dataclasses.asdict(cfg)
    changed = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in old if k not in NOT_RECIPE and old[k] != new[k]]
    if run is not None and changed:
        warnings.warn(
            f"the config changes the recipe of the transfer run {run.path} ({'; '.join(changed)}): the model is "
            "not the one whose cross-validated accuracy the run estimated",
            stacklevel=3,
        )
    return cfg
