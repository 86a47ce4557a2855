"""The options of a pretraining job: ``PretrainConfig`` (DESIGN.md section 4), a strict config
(``moola_lib.util.config``: unknown keys and wrong types fail at once, naming the key)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..bars.constants import WINDOW_LENGTH, WINDOW_STRIDE
from ..bars.splits import DEFAULT_SPLITS, split_problems, to_utc
from ..bars.timestamps import time_zone_problem
from ..util.config import ConfigError, IsoDate, StrictConfig
from .objectives import OBJECTIVE_NAMES, OBJECTIVES


def _default_splits() -> dict[str, list[str]]:
    return {name: list(bounds) for name, bounds in DEFAULT_SPLITS.items()}


# a gap is compared in whole nanoseconds: 1e-300 minutes would be 0 ns (every bar a gap), 1e300 overflows
MAX_GAP_MINUTES = (1e-6, 1e9)
MAX_GAP_MESSAGE = (
    f"max_gap_minutes must be between {MAX_GAP_MINUTES[0]:g} and {MAX_GAP_MINUTES[1]:g} minutes, or None (no limit)"
)


MAX_SEED = 2**63
# far beyond any GPU's memory at the window length (pretrain checks the estimate against the device's
# memory before any work, ``trainer.check_memory``): these bounds only stop numbers that are no setting
MAX_HIDDEN_SIZE, MAX_BATCH_SIZE = 16_384, 1_048_576


def max_gap_ok(minutes: float | None) -> bool:
    return minutes is None or MAX_GAP_MINUTES[0] <= minutes <= MAX_GAP_MINUTES[1]


@dataclass
class PretrainConfig(StrictConfig, *(objective.Options for objective in OBJECTIVES.values())):
    """Every option of a pretraining job (DESIGN.md section 4); the options of the pretext objectives are
    theirs (``objectives``: each objective's ``Options`` and ``checks``)."""

    # data
    data_path: str | None = None  # OHLCV parquet/CSV; None = embedded synthetic data
    # how data_path is read (moola_lib.bars.layouts, .timestamps, .interval): its time column (None: found by name;
    # "Date+Time": two joined), the zone of times written without one (None: refused; "UTC", "America/New_York"),
    # and whether bars finer than 1 minute are aggregated into 1-minute bars (else refused)
    timestamp_column: str | None = None
    data_timezone: str | None = None
    resample_to_1min: bool = False
    on_invalid: Literal["raise", "drop"] = "raise"  # bad rows in data_path: stop, or drop them (and warn)
    synthetic_start: IsoDate = "2020-09-01"
    synthetic_end: IsoDate = "2025-09-30"  # inclusive
    synthetic_seed: int = 0
    # half-open [start, end) dates per split, or "auto" / fractions of the data's span (moola_lib.bars.splits)
    splits: Literal["auto"] | dict[str, list[IsoDate] | float] = field(default_factory=_default_splits)
    window_length: int = WINDOW_LENGTH
    stride: int = WINDOW_STRIDE
    max_gap_minutes: float | None = None  # drop windows spanning a longer gap between bars
    exclude: list[list[IsoDate]] = field(default_factory=list)  # [start, end] periods kept out
    exclude_margin_bars: int = 0  # widen each excluded period by this many bars per side
    # relativity_features options; {} or a partial mapping is resolved over the defaults (DESIGN.md section 3)
    # into every option with its value, which is what checkpoints and encoders store
    feature_options: dict[str, int | float | str] = field(default_factory=dict)
    # model
    input_size: int = 10
    hidden_size: int = 128
    num_layers: int = 2
    dropout: float = 0.2
    # optimisation
    epochs: int = 50
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_epochs: int = 5
    grad_clip: float | None = 1.0  # None = no clipping
    mixed_precision: bool = True  # bf16 (or fp16 + grad scaler) on CUDA; fp32 on CPU
    patience: int | None = None  # early stopping; None = train all epochs
    # pretext objective (moola_lib.pretraining.objectives: one class per allowed value, each with its own
    # options: mask_ratio, mask_mode, mean_span for "masked"; forecast_bars for "forecast") and the loss
    objective: Literal[OBJECTIVE_NAMES] = "masked"  # masked reconstruction, or forecast the last bars
    huber_delta: float = 1.0
    # run
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        checks = [
            (self.window_length >= 2, "window_length must be >= 2"),
            (self.stride >= 1, "stride must be >= 1"),
            (
                self.input_size >= 1 and self.hidden_size >= 1 and self.num_layers >= 1,
                "input_size, hidden_size and num_layers must be >= 1",
            ),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0 and self.weight_decay >= 0, "lr must be > 0 and weight_decay >= 0"),
            (self.warmup_epochs >= 0, "warmup_epochs must be >= 0"),
            (self.grad_clip is None or self.grad_clip > 0, "grad_clip must be > 0 or None"),
            (self.patience is None or self.patience >= 1, "patience must be >= 1 or None"),
            (self.huber_delta > 0, "huber_delta must be > 0"),
            (self.exclude_margin_bars >= 0, "exclude_margin_bars must be >= 0"),
            (
                0 <= self.synthetic_seed < MAX_SEED and 0 <= self.seed < MAX_SEED,
                "synthetic_seed and seed must be in [0, 2**63) (torch's seeds are 64-bit signed)",
            ),
            (self.hidden_size <= MAX_HIDDEN_SIZE, f"hidden_size must be <= {MAX_HIDDEN_SIZE}"),
            (self.batch_size <= MAX_BATCH_SIZE, f"batch_size must be <= {MAX_BATCH_SIZE:,}"),
            (max_gap_ok(self.max_gap_minutes), MAX_GAP_MESSAGE),
        ]
        checks += [check for objective in OBJECTIVES.values() for check in objective.checks(self)]
        checks += [(False, problem) for problem in split_problems(self.splits)]
        checks += [(False, problem) for problem in (time_zone_problem(self.data_timezone),) if problem]
        checks += [(len(b) == 2, f"exclude[{i}] must be [start, end], got {b!r}") for i, b in enumerate(self.exclude)]
        checks += [  # written end first it would exclude nothing: the labelled windows would leak into pretraining
            (to_utc(b[0]) <= to_utc(b[1]), f"exclude[{i}] {b!r} ends before it starts; write it as [start, end]")
            for i, b in enumerate(self.exclude)
            if len(b) == 2
        ]
        checks.append(
            (
                to_utc(self.synthetic_start) <= to_utc(self.synthetic_end),
                f"synthetic_start {self.synthetic_start} is after synthetic_end {self.synthetic_end}",
            )
        )
        self.require(checks)
        from ..features.options import FeatureOptionError, resolve_feature_options  # features imports config

        try:
            self.feature_options = resolve_feature_options(self.feature_options)
        except FeatureOptionError as e:
            raise ConfigError(f"{type(self).__name__}.feature_options: {e}") from None
