"""Strict, plain-value configs: a dataclass per job and one checker for overrides.

``apply_overrides(cfg, {...})`` returns a new dataclass instance. It fails at once, with a message
that names the key, on an unknown key (listing the valid names and the closest match) or a value of
the wrong type. It works for any dataclass whose annotations use the types below, so notebooks reuse
it for their parameters:

    int, float, bool, str, None, X | None, Literal[...], list[X], tuple[X, ...], dict[K, V], Any,
    IsoDate (a date string; datetime.date / pandas.Timestamp values are turned into ISO strings).

Rules: an int is accepted for a float (and converted); a bool is never accepted as an int or float;
None only where the annotation allows it; a tuple is accepted for a list (and converted).

``read_parameters(files, yamls, pairs)`` is the one reader of command-line parameters (``-f`` YAML files,
``-y`` YAML strings, ``-p NAME VALUE``, as papermill reads them); ``check_names`` the one name check.
Both raise ConfigError. Two YAML habits of users are accepted rather than refused: unquoted dates
(``2025-01-01``, which YAML reads as a date) become ISO strings, and floats without a dot (``1e-3``, copied
from papers; YAML 1.1 reads them as text) are floats, in files and, for float fields, as strings too
(plain papermill reads YAML files itself).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import functools
import numbers
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np

from .constants import WINDOW_LENGTH, WINDOW_STRIDE
from .splits import DEFAULT_SPLITS, split_problems, to_utc
from .util.names import valid_names_hint


class ConfigError(ValueError):
    """An unknown option, a value of the wrong type or an invalid value."""


IsoDate = Annotated[str, "iso-date"]


def check_names(names, valid, what: str, *, noun: str = "option") -> None:
    """Raise ConfigError for the first of ``names`` not in ``valid`` (with the closest valid name)."""
    valid = list(valid)
    for name in names:
        if name not in valid:
            raise ConfigError(f"{what}: unknown {noun} {name!r}.{valid_names_hint(name, valid)}")


def papermill_value(text: str):
    """A ``-p`` value the way papermill's CLI reads it: True/False/None, int, float, else the string."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def read_parameters(files=(), yamls=(), pairs=()) -> dict:
    """The parameters of a command line, as papermill reads them: YAML files (``-f``), then YAML strings
    (``-y``), then ``-p NAME VALUE`` pairs; later ones win. Names are not checked here (each consumer
    knows its valid names); a file that is missing or not a YAML mapping raises ConfigError."""
    import yaml

    params = {}
    sources = [(f"parameters file {path}", _read_text(path)) for path in files]
    sources += [(f"-y {text!r}", text) for text in yamls]
    for what, text in sources:
        try:
            loaded = yaml.load(text, Loader=_yaml_loader()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{what}: not valid YAML ({' '.join(str(e).split())})") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"{what}: must be a YAML mapping of name: value")
        params.update(_dates_as_text(loaded))
    params.update({name: papermill_value(value) for name, value in pairs})
    return params


# YAML 1.1 (PyYAML) wants a dot in a float ("1.0e-3"); 1e-3 and 1E+5 are floats everywhere else
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


@functools.cache
def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that also reads 1e-3 as a float."""

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))
    return Loader


def _dates_as_text(value):
    """Unquoted YAML dates (datetime.date / datetime) -> ISO strings, at any depth: papermill must store
    the parameters as JSON, and every date field of the configs takes ISO strings."""
    if isinstance(value, dict):
        return {k: _dates_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates_as_text(v) for v in value]
    return value.isoformat() if isinstance(value, dt.date) else value


def _read_text(path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"parameters file {path}: cannot be read ({e.strerror or e})") from e
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"parameters file {path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
            "save it as UTF-8"
        ) from None


def apply_overrides(cfg: Any, overrides: Mapping, *, what: str = "config") -> Any:
    """Return a copy of dataclass instance ``cfg`` with ``overrides`` applied, checked strictly."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"apply_overrides needs a dataclass instance, got {type(cfg).__name__}")
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{what}: overrides must be a mapping of name -> value, got {type(overrides).__name__}")
    hints = typing.get_type_hints(type(cfg), include_extras=True)
    names = [f.name for f in dataclasses.fields(cfg) if f.init]
    checked = {}
    check_names(overrides, names, what)
    for key, value in overrides.items():
        checked[key] = _check(value, hints[key], f"{what}.{key}")
    try:
        return dataclasses.replace(copy.deepcopy(cfg), **checked)  # no shared mutable values
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what}: {e}") from e


def _type_name(tp: Any) -> str:
    """An annotation as messages show it: IsoDate, X | Y, 'a' | 'b' for a Literal, dict[str, list[IsoDate]]."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return "None"
    if origin is Annotated:
        return "IsoDate" if "iso-date" in args[1:] else _type_name(args[0])
    if origin in (typing.Union, types.UnionType, Literal):
        return " | ".join(repr(a) if origin is Literal else _type_name(a) for a in args)
    if origin in (list, tuple, dict):
        return f"{origin.__name__}[{', '.join('...' if a is Ellipsis else _type_name(a) for a in args)}]"
    if isinstance(tp, type) and not args:
        return tp.__name__
    return str(tp).replace("typing.", "")


def _check(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` (converted where allowed) if it matches annotation ``tp``, else raise."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        base, *marks = args
        if "iso-date" in marks:
            if isinstance(value, (str, dt.date, np.datetime64)):
                return _iso(value, where)
            raise _type_error(value, str, where)
        return _check(value, base, where)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return _check(value, option, where)
            except ConfigError as e:
                if _same_kind(value, option):
                    errors.append(e)
        raise errors[0] if len(errors) == 1 else _type_error(value, tp, where)
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise ConfigError(f"{where}: must be one of {', '.join(repr(a) for a in args)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise _type_error(value, tp, where)
    if tp is bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "on", "off"):
            # papermill's -p reads only True / False as booleans: "-p progress false" is the string 'false'
            raise ConfigError(f"{_type_error(value, tp, where)}; write True or False (-p NAME False)")
        raise _type_error(value, tp, where)
    if tp is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
            return int(value)
        raise _type_error(value, tp, where)
    if tp is float:
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
            return float(value)
        if isinstance(value, str) and _EXPONENT_FLOAT.match(value.strip()):
            return float(value.replace("_", ""))  # "1e-3" as YAML 1.1 (plain papermill -f) leaves it
        raise _type_error(value, tp, where)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _type_error(value, tp, where)
    if origin in (list, tuple, dict):
        return _check_container(value, tp, where)
    raise TypeError(f"{where}: unsupported annotation {tp!r} in the config class")


def _same_kind(value: Any, tp: Any) -> bool:
    """Whether ``value`` is of the kind option ``tp`` of a union describes (a mapping for dict[...], a list for
    list[...], a string for a Literal of strings): when it is the only such option, its error (a bad date
    inside the list, a literal misspelt) says more than "expected <the whole union>"."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return _same_kind(value, args[0])
    if origin is Literal:
        return any(type(value) is type(a) for a in args)
    if origin is dict:
        return isinstance(value, Mapping)
    return origin in (list, tuple) and isinstance(value, (list, tuple))


def _check_container(value: Any, tp: Any, where: str) -> Any:
    """``_check`` for list[X], tuple[X, ...], fixed tuples and dict[K, V]: every item checked."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _type_error(value, tp, where)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} items ({_type_name(tp)}), got {len(value)}")
            return tuple(_check(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_check(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if not isinstance(value, Mapping):
        raise _type_error(value, tp, where)
    ktype, vtype = args or (Any, Any)
    return {_check(k, ktype, f"{where} key"): _check(v, vtype, f"{where}[{k!r}]") for k, v in value.items()}


def _iso(value: Any, where: str) -> str:
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: not an ISO date: {value!r}") from e
    if ts is pd.NaT:
        raise ConfigError(f"{where}: not an ISO date: {value!r}")
    return ts.date().isoformat() if ts == ts.normalize() and ts.tzinfo is None else ts.isoformat()


def _type_error(value: Any, tp: Any, where: str) -> ConfigError:
    return ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} ({value!r})")


def _default_splits() -> dict[str, list[str]]:
    return {name: list(bounds) for name, bounds in DEFAULT_SPLITS.items()}


class StrictConfig:
    """Base of the config dataclasses: strict construction from a mapping, plain-dict export, and
    named validity checks for ``__post_init__``."""

    @classmethod
    def from_dict(cls, d: Mapping):
        return apply_overrides(cls(), d, what=cls.__name__)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def require(self, checks) -> None:
        """Raise ConfigError with the message of the first (ok, message) pair that is not ok."""
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{type(self).__name__}: {message}")


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
class PretrainConfig(StrictConfig):
    """Every option of a pretraining job (DESIGN.md section 4)."""

    # data
    data_path: str | None = None  # OHLCV parquet/CSV; None = embedded synthetic data
    on_invalid: Literal["raise", "drop"] = "raise"  # bad rows in data_path: stop, or drop them (and warn)
    synthetic_start: IsoDate = "2020-09-01"
    synthetic_end: IsoDate = "2025-09-30"  # inclusive
    synthetic_seed: int = 0
    # half-open [start, end) dates per split, or "auto" / fractions of the data's span (moola_lib.splits)
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
    # pretext objective (moola_lib.objectives: one class per allowed value), masking and loss
    objective: Literal["masked", "forecast"] = "masked"  # masked reconstruction, or forecast the last bars
    mask_ratio: float = 0.15  # "masked": share of the steps hidden
    mask_mode: Literal["random", "span"] = "random"
    mean_span: float = 3.0
    forecast_bars: int = 16  # "forecast": the last bars of a window hidden, round(0.15 * 105)
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
            (0.0 < self.mask_ratio < 1.0, "mask_ratio must be in (0, 1)"),
            (self.mean_span >= 1.0, "mean_span must be >= 1"),
            (1 <= self.forecast_bars < self.window_length, "forecast_bars must be >= 1 and below window_length"),
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
        checks += [(False, problem) for problem in split_problems(self.splits)]
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
        from .feature_options import FeatureOptionError, resolve_feature_options  # features imports config

        try:
            self.feature_options = resolve_feature_options(self.feature_options)
        except FeatureOptionError as e:
            raise ConfigError(f"{type(self).__name__}.feature_options: {e}") from None
