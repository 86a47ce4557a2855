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
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np

from .names import valid_names_hint


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
