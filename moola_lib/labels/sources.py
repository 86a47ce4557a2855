"""The labelled windows of a run and the encoder file whose feature options they are computed with, from the
run's parameters: a notebook's (transfer.ipynb's ``TransferParams``) or the classifier command line's
``LabelledSpec``. Without a labels file the embedded labelled set (``testbed.EMBEDDED_SET``), drawn from the
embedded market the default encoder pretrains on.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..bars.sources import run_bars
from ..features.relativity import FEATURE_NAMES
from ..util.config import ConfigError
from ..util.paths import resolve_path
from .provenance import EncoderSource
from .sets import LabelledSet, LabelTable, load_labels
from .testbed import EMBEDDED_SET, synthetic_labelled_set


@dataclass(frozen=True)
class LabelledSpec:
    """The parameters ``labelled_from_params`` and ``encoder_source_from_params`` read, with transfer.ipynb's
    defaults (the embedded set's: ``EMBEDDED_SET``); ``TransferParams`` has the same fields."""

    labels_path: str | None = None  # None: the embedded labelled set
    data_path: str | None = None  # the OHLCV file timestamped labels point into
    encoder_path: str | None = None
    on_invalid: str = "raise"
    timestamp_column: str | None = None  # bars.sources.READ_OPTIONS: how the bars (and the labels) are read
    data_timezone: str | None = None
    resample_to_1min: bool = False
    label_column: str = "label"
    classes: tuple[str, ...] | None = None  # the labels' classes in class order; None: those the file holds, sorted
    seed: int = 0
    n_labelled: int = EMBEDDED_SET.n
    class_balance: float = EMBEDDED_SET.class_balance
    label_noise: float = EMBEDDED_SET.label_noise
    difficulty: float = EMBEDDED_SET.difficulty
    labels_start: str = EMBEDDED_SET.start
    labels_end: str = EMBEDDED_SET.end
    synthetic_start: str = EMBEDDED_SET.history_start
    synthetic_end: str = EMBEDDED_SET.end
    synthetic_seed: int = EMBEDDED_SET.market_seed


def encoder_source_from_params(params) -> EncoderSource | None:
    """The encoder ``params.encoder_path`` names, read once (``EncoderSource``: the encoder, its feature
    options and its run's training_results.json); None when no encoder is given (one is pretrained later,
    ``encoder_from_params``). A broken file fails here, before anything else runs."""
    if not params.encoder_path:
        return None
    return EncoderSource.load(resolve_path(params.encoder_path), input_size=len(FEATURE_NAMES))


def labelled_from_params(params, encoder: EncoderSource | None = None) -> LabelledSet:
    """The labelled set the notebook parameters name: a labels file (with the bars it points into) or the
    embedded synthetic set (drawn from the same synthetic market the default encoder pretrains on).
    Features use the feature options the encoder was pretrained with (``encoder``, else the file
    ``params.encoder_path`` names, read here). The set's ``source["bars"]`` records where its bars came from
    (file + SHA-256, the generator's arguments, or the labels file itself). The labels file is read once.

    Labels given as timestamps point into an OHLCV file: without ``data_path`` they are refused (ConfigError)
    rather than cut from the embedded synthetic market, whose bars they were never labelled on."""
    if encoder is None:
        encoder = encoder_source_from_params(params)
    options = encoder.feature_options if encoder is not None else None
    if params.labels_path is None:
        labelled = synthetic_labelled_set(
            params.n_labelled,
            params.class_balance,
            params.label_noise,
            params.seed,
            difficulty=params.difficulty,
            start=params.labels_start,
            end=params.labels_end,
            history_start=params.synthetic_start,
            market_seed=params.synthetic_seed,
            feature_options=options,
        )
        labelled.source["bars"] = {
            "kind": "synthetic",
            "generator": "moola_lib.bars.synthetic.synthetic_market",
            "start": params.synthetic_start,
            "end": params.labels_end,
            "seed": params.synthetic_seed,
        }
        return labelled
    labels_path = resolve_path(params.labels_path)
    table = LabelTable.read(labels_path)  # read once: inspected here, loaded below, its hash kept
    if "features" in table.frame.columns:  # self-contained windows need no bars
        bars, source = None, {"kind": "labels_file", "path": str(labels_path)}
    else:
        bars, source = _bars_of(params, labels_path)
    labelled = load_labels(
        table,
        bars,
        label_column=params.label_column,
        classes=params.classes,
        feature_options=options,
        data_timezone=params.data_timezone,
    )
    labelled.source["bars"] = source
    return labelled


def _bars_of(params, labels_path) -> tuple:
    """The bars timestamped labels point into (``run_bars``: frame, source); none given is a ConfigError."""
    if not params.data_path:
        raise ConfigError(
            f"labels_path {labels_path}: the windows are given by timestamps into an OHLCV file, "
            "but data_path is None (the embedded synthetic market), whose bars they were not "
            "labelled on. Pass the OHLCV file they point into as data_path"
        )
    return run_bars(params)
