"""The steps the notebooks call between their parameters and the library: each turns a notebook's
parameters into the pipeline's or the evaluation's inputs (labelled windows, an encoder, embeddings, the
classifier and the bars it scans). The labelled windows and the encoder file come from
``moola_lib.labels.sources`` (the classifier's command line reads them too), named here for the notebooks.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..bars.sources import READ_OPTIONS, read_options, resolve_splits, run_bars
from ..bars.splits import is_fractions
from ..classifier.cli import fit_from_spec
from ..classifier.model import ArmClassifier
from ..features.relativity import relativity_features
from ..labelling.session import CandidateOptions, LabellingSession, read_scan_file, readable_classes
from ..labelling.store import LabelStore
from ..labels.provenance import EncoderSource, seen_in_pretraining
from ..labels.sets import LabelledSet
from ..labels.sources import LabelledSpec, encoder_source_from_params, labelled_from_params
from ..labels.spans import exclude_intervals, label_time_spans
from ..labels.testbed import EMBEDDED_SET
from ..pretraining.config import PretrainConfig
from ..pretraining.devices import resolve_device
from ..pretraining.job import pretrain
from ..pretraining.model import JadeEncoder, embed_windows
from ..transfer.folds import config_groups
from ..util.paths import resolve_path
from .params import RunParams
from .runs import DEFAULT_ENCODER_DIR

__all__ = [
    "classifier_from_params",
    "default_pretrain_config",
    "encoder_embeddings",
    "encoder_from_params",
    "encoder_source_from_params",
    "label_command",
    "labelled_from_params",
    "labelling_session_from_params",
    "labels_in_pretraining",
    "scan_bars_from_params",
]


def default_pretrain_config(params, labelled: LabelledSet) -> PretrainConfig:
    """A small pretraining job for when no encoder is given: same data as the labels (file or embedded
    market), the labelled windows excluded (when they have timestamps)."""
    exclude = exclude_intervals(labelled) if not labelled.start.isna().any() else []
    return PretrainConfig(
        data_path=params.data_path,
        **read_options(params),
        on_invalid=params.on_invalid,
        synthetic_start=params.synthetic_start,
        synthetic_end=params.synthetic_end,
        synthetic_seed=params.synthetic_seed,
        exclude=exclude,
        hidden_size=params.pretrain_hidden_size,
        num_layers=params.pretrain_num_layers,
        epochs=params.pretrain_epochs,
        batch_size=params.pretrain_batch_size,
        lr=params.pretrain_lr,
        warmup_epochs=1,
        seed=params.seed,
        device=params.device,
        resume=getattr(params, "resume", False),  # a transfer run resumed: its encoder's pretraining too
    )


def encoder_from_params(params, labelled: LabelledSet, run_dir, encoder: EncoderSource | None = None) -> EncoderSource:
    """The run's encoder, read once: ``encoder`` when already read (``encoder_source_from_params``), else
    the file ``params.encoder_path`` names, else (when None) the best checkpoint of a small pretraining job
    run now into ``run_dir/encoder``: only once the labelled set is known to suffice for ``params.folds``
    (too few windows or groups is a DataValidationError now, not after the pretraining)."""
    if encoder is not None:
        return encoder
    if params.encoder_path is not None:
        return EncoderSource.load(resolve_path(params.encoder_path))
    labelled.check_folds(params.folds, config_groups(labelled, params))
    encoder_dir = Path(run_dir) / DEFAULT_ENCODER_DIR
    pretrain(default_pretrain_config(params, labelled), encoder_dir)
    return EncoderSource.load(encoder_dir / "checkpoint_best.pt")


def encoder_embeddings(
    encoder: EncoderSource | JadeEncoder, labelled: LabelledSet, seed: int = 0, device="cpu"
) -> dict[str, np.ndarray]:
    """Pooled features of the labelled windows from the pretrained encoder (already loaded) and from a
    randomly initialised one of the same architecture (for the 2-D projection)."""
    import torch

    encoder = encoder.encoder if isinstance(encoder, EncoderSource) else encoder
    torch.manual_seed(seed)
    random_encoder = JadeEncoder(**encoder.arch)
    return {
        "pretrained encoder": embed_windows(encoder, labelled.X, labelled.valid, device),
        "random init (same architecture)": embed_windows(random_encoder, labelled.X, labelled.valid, device),
    }


def labels_in_pretraining(labels_path, config: PretrainConfig, bar_minutes: float = 1.0) -> str | None:
    """A warning (also printed) when labelled windows of ``labels_path`` fall inside the pretraining train or
    val split and no ``exclude`` period covers them: the encoder would see their bars, which flatters the
    transfer evaluation. None when no labels file is given or all is well (a line says so). Windows with only
    ``start`` or ``end`` span WINDOW_LENGTH bars of ``bar_minutes`` (longer across a session halt)."""
    if labels_path is None:
        return None
    start, end, name = label_time_spans(resolve_path(labels_path), bar_minutes, config.data_timezone)
    if start is None:
        message = (
            f"WARNING: {name}: the labelled windows carry no timestamps, so whether pretraining sees "
            "their bars is unknown"
        )
        print(message)
        return message
    splits = config.splits
    if is_fractions(splits):  # "auto" / fractions: their dates depend on the bars
        splits = resolve_splits(run_bars(config)[0].index, splits)
    inside = seen_in_pretraining(start, end, splits, config.exclude)[2]
    if not inside.any():
        print(f"{name}: none of the {len(start)} labelled windows lies inside the train/val splits")
        return None
    message = (
        f"WARNING: {int(inside.sum())} of the {len(start)} labelled windows in {name} lie inside the "
        "pretraining train/val splits and no exclude period covers them: the encoder will see their "
        "bars, which flatters the transfer evaluation. Keep them out with the exclude parameter "
        '(moola_lib.exclude_intervals; README, "Keep the labelled windows out of pretraining").'
    )
    print(message)
    return message


def labelling_session_from_params(params) -> LabellingSession:
    """The labelling session label.ipynb's parameters describe: the bars (file or embedded market), their
    features (with the encoder's options when one is given), the labels file and the encoder's pooled
    features for ranking (None without an encoder). Classes that transfer cannot read are refused first.
    With ``candidates_path`` the candidates are the windows of a classifier's scan of these bars, ranked by
    the model's uncertainty (``labelling.session.scan_candidates``)."""
    readable_classes(params.classes)
    scan = read_scan_file(resolve_path(params.candidates_path)) if params.candidates_path else None
    bars, _ = run_bars(params)
    source = encoder_source_from_params(params)  # the encoder file, read once
    X, valid = relativity_features(bars, **(source.feature_options if source is not None else {}))
    embed = None
    if source is not None:
        encoder, device = source.encoder, resolve_device(params.device)

        def embed(Xw, vw):
            return embed_windows(encoder, Xw, vw, device)

    options = CandidateOptions(
        min_leg_atr=params.min_leg_atr,
        lead_bars=params.lead_bars,
        min_follow_bars=params.min_follow_bars,
        max_gap_minutes=params.max_gap_minutes,
        zigzag=dict(params.zigzag),
    )
    store = LabelStore(resolve_path(params.labels_path), user=params.labeller)
    return LabellingSession(
        bars,
        X,
        valid,
        store,
        params.classes,
        options=options,
        strategy=params.strategy,
        n_suggestions=params.n_suggestions,
        seed=params.seed,
        embed=embed,
        min_labels=params.min_labels,
        max_candidates=params.max_candidates,
        scan=scan,
    )


# --------------------------------------------------------------------------------------------------
# classify.ipynb


def classifier_from_params(params) -> ArmClassifier:
    """The classifier classify.ipynb's parameters describe, fitted as the ``fit`` command fits it
    (``classifier.cli.fit_from_spec``): ``params.arm`` on the labels (``labels_path`` with the ``data_path``
    it points into, or the embedded labelled set drawn with ``params.seed``, as transfer.ipynb draws it), with
    ``transfer_run``'s recipe on ``params.device``; ``background``: the class the scan does not report."""
    spec = LabelledSpec(
        labels_path=params.labels_path,
        data_path=params.data_path,
        encoder_path=params.encoder_path,
        seed=params.seed,
        **read_options(params),
    )
    return fit_from_spec(
        spec, params.arm, params.transfer_run, config={"device": params.device}, background=params.background
    )


def _scan_bars_spec(params) -> SimpleNamespace:
    """What ``run_bars`` reads for the bars classify.ipynb scans: ``scan_data_path``, else ``data_path``, else
    the embedded market from its first day (``EMBEDDED_SET``: its first day and seed) to ``scan_end``."""
    path = params.scan_data_path or params.data_path
    return SimpleNamespace(
        data_path=path and str(resolve_path(path)),
        **read_options(params),
        synthetic_start=EMBEDDED_SET.history_start,
        synthetic_end=params.scan_end,
        synthetic_seed=EMBEDDED_SET.market_seed,
    )


def scan_bars_from_params(params) -> tuple[pd.DataFrame, dict]:
    """The bars classify.ipynb scans and where they came from (``bars.sources.run_bars``): ``scan_data_path``
    (read with the run's ``data_timezone``, ``timestamp_column``, ``resample_to_1min``), else the labels'
    ``data_path``, else the embedded market generated from its first day to ``scan_end``: new bars of the
    labelled set's generator and seed (a fresh draw, not the labelled bars continued); the bars before
    ``scan_start`` are the features' warm-up."""
    return run_bars(_scan_bars_spec(params))


def label_command(params, candidates) -> str:
    """The command that runs label.ipynb on the windows of a scan classify.ipynb wrote (``candidates``: its
    scores or detections file, label.ipynb's ``candidates_path``), over the same bars: the scanned file with
    the run's read options, or the embedded market up to ``scan_end`` (label.ipynb's first day and seed are
    the embedded set's already)."""
    spec = _scan_bars_spec(params)
    if spec.data_path:
        defaults = read_options(RunParams)
        bars = {"data_path": spec.data_path}
        bars.update({n: getattr(spec, n) for n in READ_OPTIONS if getattr(spec, n) != defaults[n]})
    else:
        bars = {"synthetic_end": params.scan_end}
    pairs = {**bars, "candidates_path": str(candidates)}
    flags = (f"-p {name} {shlex.quote(str(value))}" for name, value in pairs.items())
    return " ".join(["python -m moola_lib.run_notebook label", *flags])
