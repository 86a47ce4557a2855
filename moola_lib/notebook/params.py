"""The parameters of each notebook (one dataclass per notebook) and the job configs they describe.

A notebook's ``parameters`` cell holds exactly the fields of its dataclass (tests/notebook/test_notebooks.py
checks it); ``start_run`` builds the dataclass strictly from the notebook's globals. Every notebook
shares RunParams (DESIGN.md section 7); pretrain.ipynb and transfer.ipynb add every field of their job
config (``params_like``), so a new PretrainConfig / TransferConfig field becomes a notebook parameter.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from ..bars.timestamps import time_zone_problem
from ..classifier.recipe import AUTO, choose_arm
from ..classifier.scan import check_stride, check_threshold, date_bounds
from ..labelling.session import DEFAULT_ZIGZAG, readable_classes
from ..labels.sets import DEFAULT_CLASS_DEFINITIONS, DEFAULT_CLASSES
from ..labels.testbed import EMBEDDED_SET
from ..pretraining.checkpoints import check_resume
from ..pretraining.config import PretrainConfig
from ..transfer.config import TransferConfig
from ..util.config import ConfigError, IsoDate, apply_overrides


@dataclass
class RunParams:
    """Parameters shared by every notebook (DESIGN.md section 7)."""

    data_path: str | None = None  # OHLCV parquet/CSV; None = embedded synthetic data
    # how data_path is read (as PretrainConfig's fields of these names): its time column (None: found by name),
    # the zone of times written without one (None: refused; also for a labels file's times), finer bars resampled
    timestamp_column: str | None = None
    data_timezone: str | None = None
    resample_to_1min: bool = False
    run_dir: str | None = None  # None = runs/<notebook>-<UTC time>
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    overwrite: bool = False  # replace the files of an existing run directory

    def __post_init__(self) -> None:
        if problem := time_zone_problem(self.data_timezone):  # before any data is loaded
            raise ConfigError(f"{type(self).__name__}: {problem}")


@dataclass
class EdaParams(RunParams):
    synthetic_start: str = "2024-10-01"  # embedded data range (ignored with data_path)
    synthetic_end: str = "2025-06-30"  # inclusive
    synthetic_seed: int = 0
    n_windows: int = 4  # windows drawn in the static window gallery
    # relativity_features options over the defaults (e.g. moola_lib.ORIGINAL_FEATURE_OPTIONS to compare)
    feature_options: dict[str, int | float | str] = field(default_factory=dict)


def params_like(name: str, config_cls: type, *, skip: tuple[str, ...] = ()) -> type:
    """A params dataclass: RunParams plus every field of ``config_cls`` (same type and default)."""
    hints = typing.get_type_hints(config_cls, include_extras=True)
    own = []
    for f in dataclasses.fields(config_cls):
        if f.name in skip:
            continue
        default = {"default_factory": f.default_factory} if f.default is dataclasses.MISSING else {"default": f.default}
        own.append((f.name, hints[f.name], dataclasses.field(**default)))
    cls = dataclasses.make_dataclass(name, own, bases=(RunParams,))
    cls.__module__ = __name__
    cls.__doc__ = f"Notebook parameters: RunParams + {config_cls.__name__} (except {', '.join(skip)})."
    return cls


# input_size is fixed by the 10 features; the notebook always shows progress.
_PretrainConfigParams = params_like("_PretrainConfigParams", PretrainConfig, skip=("input_size", "progress"))


@dataclass
class PretrainParams(_PretrainConfigParams):
    """pretrain.ipynb parameters: RunParams + PretrainConfig + ``labels_path``, a labels file whose windows
    must stay out of pretraining (the notebook warns when they fall inside the train or val split)."""

    labels_path: str | None = None

    def check_run_dir(self, run_dir) -> None:
        """``start_run``'s check before it writes anything: a resume must be able to continue this run
        directory with these settings (same config and data, a last and a best checkpoint)."""
        if self.resume:
            check_resume(pretrain_config(self), run_dir)


def config_from_params(config_cls: type, params, **fixed):
    """The ``config_cls`` instance that notebook parameters describe: every config field the params
    object has, then ``fixed`` values, checked strictly (ConfigError)."""
    names = [f.name for f in dataclasses.fields(config_cls)]
    values = {n: getattr(params, n) for n in names if hasattr(params, n)}
    return apply_overrides(config_cls(), {**values, **fixed}, what=config_cls.__name__)


def pretrain_config(params) -> PretrainConfig:
    """The PretrainConfig a PretrainParams (or any params object with such fields) describes."""
    return config_from_params(PretrainConfig, params)


# --------------------------------------------------------------------------------------------------
# transfer.ipynb

_ProtocolParams = params_like("_ProtocolParams", TransferConfig, skip=("seed", "device", "progress"))


@dataclass
class TransferParams(_ProtocolParams):
    """transfer.ipynb parameters: RunParams + TransferConfig + the data, labels and default encoder."""

    encoder_path: str | None = None  # encoder file or pretraining checkpoint; None = pretrain a small one
    labels_path: str | None = None  # labels file (CSV/parquet/JSON); None = embedded synthetic set
    on_invalid: Literal["raise", "drop"] = "raise"  # bad rows in data_path: stop, or drop them (and warn)
    label_column: str = "label"
    classes: list[str] | None = None  # the labels' classes in class order; None = those the labels file holds
    # the embedded market and labelled set (ignored with data_path / labels_path): testbed.EMBEDDED_SET
    synthetic_start: IsoDate = EMBEDDED_SET.history_start
    synthetic_end: IsoDate = EMBEDDED_SET.end  # inclusive
    synthetic_seed: int = EMBEDDED_SET.market_seed
    n_labelled: int = EMBEDDED_SET.n  # windows, fraction consolidation,
    class_balance: float = EMBEDDED_SET.class_balance  # share of flipped labels, period (after the
    label_noise: float = EMBEDDED_SET.label_noise  # test split)
    difficulty: float = EMBEDDED_SET.difficulty  # embedded task: 0 easy .. 1 chance
    labels_start: IsoDate = EMBEDDED_SET.start
    labels_end: IsoDate = EMBEDDED_SET.end
    pretrain_epochs: int = 3  # the default encoder (encoder_path None), CPU-sized
    pretrain_hidden_size: int = 32
    pretrain_num_layers: int = 1
    pretrain_batch_size: int = 256
    pretrain_lr: float = 3e-3
    # continue an unfinished run in run_dir: the fits it finished (run_dir/transfer_fits) are read, not fitted
    # again (same results); the default encoder's pretraining continues from its last epoch
    resume: bool = False


def transfer_config(params) -> TransferConfig:
    """The TransferConfig that notebook parameters describe (progress bars on)."""
    return config_from_params(TransferConfig, params, progress=True)


# --------------------------------------------------------------------------------------------------
# sweep.ipynb


def _default_grid() -> dict[str, list[Any]]:
    return {"batch_size": [512, 768, 1024]}


@dataclass
class SweepParams(RunParams):
    grid: dict[str, list[Any]] = field(default_factory=_default_grid)  # pretrain parameter -> values
    base: dict[str, Any] = field(default_factory=dict)  # pretrain parameters shared by every setting
    encoder_path: str | None = None  # copy of the best encoder; None = best_encoder.pt in the run dir
    parallel: bool = True  # one setting per GPU when several GPUs are visible


# --------------------------------------------------------------------------------------------------
# compare.ipynb


@dataclass
class CompareParams(RunParams):
    """compare.ipynb parameters: RunParams (data_path, seed and device unused: it reads finished runs only)
    + the pretraining run directories to compare."""

    run_dirs: list[str] = field(default_factory=list)  # [] = every pretraining run under the runs root


# --------------------------------------------------------------------------------------------------
# label.ipynb


def _default_classes() -> list[str]:
    return list(DEFAULT_CLASSES)


def _default_zigzag() -> dict[str, Any]:
    return dict(DEFAULT_ZIGZAG)


def _default_class_definitions() -> dict[str, str]:
    return dict(DEFAULT_CLASS_DEFINITIONS)


@dataclass
class LabelParams(RunParams):
    """label.ipynb parameters: RunParams + the labels file, the suggestions and the candidate windows."""

    labels_path: str = "labels/labels.csv"  # labels file to read and append to (from the repository root)
    classes: list[str] = field(default_factory=_default_classes)  # one button (and key 1..9) per class
    class_definitions: dict[str, str] = field(default_factory=_default_class_definitions)  # one line per class
    encoder_path: str | None = None  # encoder or checkpoint; None = summary features (no uncertainty)
    strategy: Literal["random", "uncertainty", "diverse"] = "random"  # VALIDATION.md, issue 21: none beat random
    n_suggestions: int = 12  # windows per batch
    min_labels: int = 10  # labels before uncertainty replaces diverse
    max_candidates: int = 5000  # candidates ranked (a seeded random subset beyond this)
    candidates_path: str | None = None  # a scan's scores or detections file: its windows, least certain first
    min_leg_atr: float = 5.0  # candidate windows: expansion leg of at least this many ATR,
    lead_bars: int = 20  # starting this many bars into the window,
    min_follow_bars: int = 30  # with at least this many bars after it,
    max_gap_minutes: float | None = 60.0  # and no longer gap between bars inside the window
    zigzag: dict[str, Any] = field(default_factory=_default_zigzag)  # swing_points options for the legs
    context_bars: int = 30  # bars drawn before and after the window
    labeller: str | None = None  # labelled_by in the file; None = the login name
    synthetic_start: IsoDate = EMBEDDED_SET.history_start  # embedded market (ignored with data_path): the
    synthetic_end: IsoDate = EMBEDDED_SET.end  # embedded labelled set's (testbed.EMBEDDED_SET)
    synthetic_seed: int = EMBEDDED_SET.market_seed

    def __post_init__(self) -> None:
        super().__post_init__()
        # the widget shows one definition line per class: every class needs one, and only classes have one
        names = list(readable_classes(self.classes))
        defined = {k.strip().lower(): v for k, v in self.class_definitions.items()}
        missing, unknown = [c for c in names if c not in defined], sorted(set(defined) - set(names))
        if missing or unknown:
            raise ConfigError(
                f"label.ipynb parameters: class_definitions must have one line for each of classes "
                f"{names}; missing {missing}, not a class {unknown}"
            )
        bad = [k for k, v in defined.items() if not v.strip() or "\n" in v]
        if bad:
            raise ConfigError(f"label.ipynb parameters: class_definitions of {bad} must be one non-empty line each")


# --------------------------------------------------------------------------------------------------
# classify.ipynb


_SCAN_FIRST = dt.date.fromisoformat(EMBEDDED_SET.end) + dt.timedelta(days=1)
# the default scan: the two weeks after the embedded labelled set, bars the classifier never saw
SCAN_START, SCAN_END = _SCAN_FIRST.isoformat(), (_SCAN_FIRST + dt.timedelta(days=13)).isoformat()


@dataclass
class ClassifyParams(RunParams):
    """classify.ipynb parameters: RunParams + the labels and the arm of the classifier (``classifier.cli``'s
    ``fit``), and the bars it scans (``classifier.scan``). ``data_path`` is the file the labels point into."""

    labels_path: str | None = None  # labels file (CSV/parquet/JSON); None = the embedded labelled set
    encoder_path: str | None = None  # encoder file or checkpoint; arms that read an encoder need one
    arm: str = "simple_boosting"  # an arm of transfer.arms.TABLE, or "auto": the best of transfer_run
    transfer_run: str | None = None  # transfer run directory: its recipe (None: the defaults), its best arm
    background: str | None = None  # the labelled class of windows without a pattern: not reported as detections
    scan_data_path: str | None = None  # bars to scan; None = data_path, else the embedded market to scan_end
    scan_start: IsoDate | None = SCAN_START  # first and last date scanned (inclusive, UTC; None: the
    scan_end: IsoDate | None = SCAN_END  # file's first / last; the embedded market needs both)
    threshold: float = 0.8  # a detection: a window whose probability of a class is at least this
    stride: int = 1  # bars between scanned windows
    top_detections: int = 8  # detections drawn on their candles

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.arm != AUTO or self.transfer_run is None:  # an unknown arm, or auto without a run
            choose_arm(self.arm, None)
        check_threshold(self.threshold)
        check_stride(self.stride)
        if self.top_detections < 1:
            raise ConfigError(f"classify.ipynb parameters: top_detections must be >= 1, got {self.top_detections}")
        date_bounds(self.scan_start, self.scan_end)
        if not (self.scan_data_path or self.data_path) and None in (self.scan_start, self.scan_end):
            raise ConfigError(
                "classify.ipynb parameters: the embedded market (no scan_data_path or data_path) is generated up "
                "to scan_end and scanned from scan_start: give both dates"
            )
