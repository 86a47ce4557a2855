"""Where an encoder came from: its run's training_results.json, the feature options it was pretrained
with, and how many labelled windows lie inside its pretraining period (the encoder has seen their bars).
``EncoderSource.load`` reads an encoder file once and keeps all of these with the encoder."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bars.splits import to_utc
from ..pretraining.checkpoints import encoder_from_file_object, recorded_feature_options, stored_feature_options
from ..pretraining.model import JadeEncoder
from ..util.io import load_torch_file, read_json
from ..util.paths import resolve_path
from .sets import LabelledSet


def seen_in_pretraining(start, end, splits: Mapping, exclude) -> tuple[dict, np.ndarray, np.ndarray]:
    """For windows [start, end] (UTC; NaT never matches): per split, whether each overlaps it (splits are
    half-open), whether an ``exclude`` period (inclusive) covers it, and whether pretraining saw its bars
    (inside train or val and not excluded)."""

    def hits(lo, hi, closed_end=False):
        lo, hi = to_utc(lo), to_utc(hi)
        before_end = start <= hi if closed_end else start < hi
        return np.asarray(before_end) & np.asarray(end >= lo)

    per_split = {name: hits(lo, hi) for name, (lo, hi) in splits.items()}
    excluded = np.zeros(len(start), dtype=bool)
    for lo, hi in exclude:
        excluded |= hits(lo, hi, closed_end=True)
    none = np.zeros(len(start), dtype=bool)
    return per_split, excluded, (per_split.get("train", none) | per_split.get("val", none)) & ~excluded


def pretraining_overlap(labelled: LabelledSet, training_results) -> dict:
    """How many labelled windows lie inside the encoder's pretraining splits (from its
    training_results.json: a path, the loaded dict, or None when it was not found). ``seen`` counts
    windows with timestamps overlapping the train or val split (used for gradients / checkpoint
    selection) and no excluded period; for windows without timestamps (``without_timestamps``) it is
    unknown. ``status``: "known" (every window placed in time), "partial", or "unknown" (no window has
    timestamps, or the pretraining period itself is unknown)."""
    start, end = labelled.start, labelled.end
    known = ~np.asarray(start.isna())
    out = {
        "n_windows": len(labelled),
        "without_timestamps": int((~known).sum()),
        "splits": None,
        "inside_split": None,
        "seen": None,
        "excluded": None,
        "encoder_data_path": None,
        "encoder_synthetic_seed": None,
    }
    if training_results is None or not known.any():
        return {**out, "status": "unknown", "period_known": training_results is not None}
    res = read_json(training_results) if not isinstance(training_results, Mapping) else training_results
    cfg = res.get("config", {})
    # the dates pretraining split at: the data summary's ("auto" / fractions in the config are not dates)
    splits = {name: (s["start"], s["end"]) for name, s in res.get("data", {}).get("splits", {}).items()}
    splits = splits or cfg.get("splits") or {}

    per_split, excluded, seen = seen_in_pretraining(start, end, splits, cfg.get("exclude", []))
    return {
        **out,
        "status": "known" if known.all() else "partial",
        "period_known": True,
        "splits": {name: [str(lo), str(hi)] for name, (lo, hi) in splits.items()},
        "inside_split": {name: int(m.sum()) for name, m in per_split.items()},
        "seen": int(seen.sum()),
        "excluded": int(excluded.sum()),
        "encoder_data_path": cfg.get("data_path"),
        "encoder_synthetic_seed": cfg.get("synthetic_seed") if cfg.get("data_path") is None else None,
    }


def find_training_results(encoder_path) -> Path | None:
    """The training_results.json of the run that produced an encoder: beside it, or beside the checkpoint
    an exported encoder names in its metadata ("source", as the sweep writes it). None if not found."""
    return _training_results_path(Path(encoder_path), load_torch_file(encoder_path))


def _training_results_path(encoder_path: Path, obj) -> Path | None:
    candidates = [encoder_path.parent / "training_results.json"]
    source = obj.get("metadata", {}).get("source") if isinstance(obj, dict) else None
    if source:
        candidates.append(resolve_path(source).parent / "training_results.json")
    return next((p for p in candidates if p.exists()), None)


def encoder_feature_options(encoder_path) -> dict:
    """Every relativity_features option (with its value) an encoder was pretrained with, so that the
    labelled windows get the same features: what its file records, else what its run's
    training_results.json records; options recorded by neither (encoders made before they were
    recorded) are the original's (``ORIGINAL_FEATURE_OPTIONS``)."""
    obj = load_torch_file(encoder_path)
    results = None  # read only when the file records no options
    if recorded_feature_options(obj) is None and (path := _training_results_path(Path(encoder_path), obj)):
        results = read_json(path)
    return _feature_options(obj, results)


def _feature_options(obj, training_results: Mapping | None) -> dict:
    recorded = recorded_feature_options(obj)
    if recorded is None and training_results is not None:
        recorded = training_results.get("config", {}).get("feature_options")
    return stored_feature_options(recorded)


@dataclass(frozen=True)
class EncoderSource:
    """An encoder file read once, with what is known about it: the encoder, the feature options it was
    pretrained with (``encoder_feature_options``), its run's training_results.json (path and contents;
    None when not found). A run passes it down instead of the path, so nothing reads the file again."""

    path: Path
    encoder: JadeEncoder
    feature_options: dict
    training_results_path: Path | None
    training_results: dict | None

    @classmethod
    def load(cls, path, *, input_size: int | None = None) -> EncoderSource:
        """Read ``path`` (an encoder file or pretraining checkpoint; ``load_encoder``'s errors) once;
        ``input_size``: the number of features required (None = any)."""
        path = Path(path)
        obj = load_torch_file(path)
        encoder = encoder_from_file_object(obj, str(path), input_size=input_size, hidden_size=None, num_layers=None)
        results_path = _training_results_path(path, obj)
        results = read_json(results_path) if results_path else None
        return cls(path, encoder, _feature_options(obj, results), results_path, results)
