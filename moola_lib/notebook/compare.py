"""Pretraining runs side by side (compare.ipynb): which runs, how their configs differ, how they did.

- ``find_runs(root)``: every pretraining run under ``root``, i.e. every folder holding training_results.json
  (pretrain.ipynb's runs, ``python -m moola_lib.pretrain``'s, a sweep's settings), sorted by path;
- ``load_runs(run_dirs)``: run name -> its training_results.json, for the given directories (relative paths
  from the repository root) or, when the list is empty, for every run under the runs root; a run's name is
  its path below the runs root (else the folder's own path). A directory without a readable
  training_results.json is a ``RunsError`` naming it; no run at all, a ``ConfigError`` naming the root;
- ``config_differences(runs)``: the config fields (nested ones flattened: ``splits.train``) whose values
  differ between the runs, and the device and precision they ran on when those differ (the times depend on
  them), one column per run; fields that change no result (``progress``) are left out;
- ``results_table(runs)``: one row per run: best val loss and epoch, the val loss of each of the objective's
  reference predictors on the same masks and the best val loss relative to the per-feature better one,
  epochs, seconds per epoch (median) and in all, windows/s (median) and peak memory (``sweep.result_summary``).
The loss curves overlaid are ``pretraining.plots.run_curves``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..pretraining.checkpoints import RESULTS
from ..pretraining.plots import reference_table
from ..util.config import ConfigError
from ..util.errors import ExpectedError
from ..util.io import read_json
from ..util.paths import resolve_path
from .runs import runs_root
from .sweep import result_summary

NOT_COMPARED = ("progress",)  # config fields that change no result
ENVIRONMENT = ("device_name", "precision")  # what the run ran on, compared beside the config


class RunsError(ExpectedError):
    """A directory given to compare that holds no readable training_results.json."""


def find_runs(root: str | os.PathLike) -> list[Path]:
    return sorted(path.parent for path in Path(root).rglob(RESULTS))


def load_runs(run_dirs: Sequence[str | os.PathLike] = ()) -> dict[str, dict]:
    """Name -> training_results.json of each run (see the module's docstring)."""
    root = runs_root()
    dirs = [resolve_path(d) for d in run_dirs] if run_dirs else find_runs(root)
    if not dirs:
        raise ConfigError(f"no pretraining runs under {root} (folders holding {RESULTS}); give run_dirs")
    runs = {}
    for directory in dirs:
        try:
            results = read_json(directory / RESULTS)
        except OSError as e:
            raise RunsError(f"{directory}: no {RESULTS} ({e.strerror}): not a finished pretraining run") from None
        except ValueError as e:
            raise RunsError(f"{directory / RESULTS}: not readable JSON ({e})") from None
        runs[_name(directory, root, runs)] = results
    return runs


def _name(directory: Path, root: Path, taken: Mapping) -> str:
    try:
        name = directory.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        name = str(directory)
    return name if name not in taken else str(directory)  # the same folder twice: its full path tells them apart


def _flat(mapping: Mapping, prefix: str = "") -> dict:
    """Nested mappings flattened into dotted names; lists as compact JSON (a table cell, comparable)."""
    out = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list | dict) else value
    return out


def config_differences(runs: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per config field (or environment entry) that differs between the runs, one column per run;
    a field a run does not record (written before it existed) shows as missing."""
    flat = {
        name: {
            **{k: v for k, v in _flat(r["config"]).items() if k not in NOT_COMPARED},
            **{f"environment.{k}": r.get("environment", {}).get(k) for k in ENVIRONMENT},
        }
        for name, r in runs.items()
    }
    fields = list(dict.fromkeys(k for values in flat.values() for k in values))  # first run's order first
    differ = [k for k in fields if len({json.dumps(v.get(k, "missing"), default=str) for v in flat.values()}) > 1]
    frame = pd.DataFrame({name: [values.get(k, "missing") for k in differ] for name, values in flat.items()})
    frame.index = pd.Index(differ, name="field")
    return frame


def results_table(runs: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per run (see the module's docstring), in the order given."""
    rows = {}
    for name, results in runs.items():
        summary = result_summary(results)
        val = reference_table(results).loc["val"].to_dict()  # the best model and the references, same masks
        ratio = val.pop("model / per-feature better reference")
        val.pop("model (best epoch)")
        rows[name] = {
            "objective": results.get("objective", "masked"),
            "best_val_loss": summary["best_val_loss"],
            "best_epoch": summary["best_epoch"],
            **{f"val: {title}": loss for title, loss in val.items()},
            "best / better reference": ratio,
            "epochs": summary["epochs"],
            "s_per_epoch": float(np.median([h["seconds"] for h in summary["history"]])),
            "train_s": summary["train_s"],
            "total_s": summary["total_s"],
            "windows_per_s": summary["windows_per_s"],
            "peak_memory_mb": summary["peak_memory_mb"],
            "peak_memory_of": summary["peak_memory_of"],
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "run"
    return frame


def best_run_line(table: pd.DataFrame) -> str:
    """One sentence: the run with the lowest best val loss, and how it stands against the better reference."""
    name = table["best_val_loss"].idxmin()
    row = table.loc[name]
    ratio = row["best / better reference"]
    return (
        f"Lowest best val loss: {name} ({row['best_val_loss']:.4f} at epoch {row['best_epoch']}, "
        f"{abs(1 - ratio):.1%} {'below' if ratio < 1 else 'above'} its per-feature better reference; "
        f"{row['total_s']:.0f} s in all)."
    )
