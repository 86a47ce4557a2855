"""Truth study folders joined on the sets they share: ``python -m moola_lib.studies.truth OUT --join A B``.

A study folder keeps the encoders it was started with, so a second set of encoders (the 2 x 128 pair beside the
2 x 64 one) is a second folder. Both fit the SAME fresh sets and score on the same test set when their set
settings agree (the sets are keyed by size and index alone, ``truth.set_seed``), so their arms pair across the
folders: which arm to deploy, over every encoder, is a question the joined results answer and neither folder
alone can.

``join(folders)``: the folders' results on their common sets of each size, as one results dict for
``truth_report`` (its "encoders" the union), and their per-window test scores. Refused with ``ConfigError``:
folders whose set settings differ (``SAME``), and a key both folders scored with different values on one set
(the same arm on the same set is the same fit: another value means other sets or another recipe). The
verdicts stay with their folder (they ran on one folder's encoder); the joined report holds the truth tables.
"""

from __future__ import annotations

from pathlib import Path

from ..util.config import ConfigError
from .truth_report import load_results, load_test_windows

SAME = ("period", "test_period", "test_size", "transfer", "seed")  # config options that make the sets and fits
TOLERANCE = 1e-9  # one fit's score read from two folders: identical up to JSON's float round trip


def _check_settings(loaded: list[tuple[Path, dict]]) -> None:
    (first, ref), *rest = loaded
    for folder, results in rest:
        changed = [k for k in SAME if results["config"].get(k) != ref["config"].get(k)]
        if results.get("test") != ref.get("test"):
            changed.append("test set")
        if changed:
            raise ConfigError(
                f"{folder / 'truth.json'}: other set settings than {first / 'truth.json'} ({', '.join(changed)}): "
                "their sets are not the same, so their arms do not pair"
            )


def _merge_scores(size: str, k: str, loaded: list[tuple[Path, dict]]) -> dict:
    """Every folder's scores of set k of ``size``, checked where two folders scored one key."""
    merged, source = {}, {}
    for folder, results in loaded:
        for key, x in results["sets"][size][k]["scores"].items():
            if key in merged and abs(merged[key] - x) > TOLERANCE:
                raise ConfigError(
                    f"{folder / 'truth.json'}: set {k} of size {size}: {key} scored {x:.6f} here and "
                    f"{merged[key]:.6f} in {source[key]}: the folders did not fit the same sets"
                )
            merged.setdefault(key, x)
            source.setdefault(key, folder / "truth.json")
    return {"scores": merged}


def join(folders: list[Path]) -> tuple[dict, dict]:
    """(joined results on each size's common sets, size -> key -> per-window test scores over those sets)."""
    loaded = [(Path(f), load_results(Path(f) / "truth.json")) for f in folders]
    _check_settings(loaded)
    joined = {"sets": {}, "encoders": {}, "joined": [str(f) for f, _ in loaded]}
    windows: dict = {}
    for _, results in loaded:
        joined["encoders"].update(results.get("encoders", {}))
    for size in loaded[0][1]["sets"]:
        common = set.intersection(*(set(results["sets"].get(size, {})) for _, results in loaded))
        ordered = sorted(common, key=int)
        joined["sets"][size] = {k: _merge_scores(size, k, loaded) for k in ordered}
        for folder, results in loaded:
            mine = {"sets": {size: {k: results["sets"][size][k] for k in ordered}}}
            for key, w in load_test_windows(folder, mine).get(size, {}).items():
                windows.setdefault(size, {}).setdefault(key, w)
    return joined, windows


def sources_markdown(joined: dict) -> str:
    """Which folders, and the common sets per size the tables rest on."""
    sizes = ", ".join(f"{len(sets)} at {size}" for size, sets in joined["sets"].items() if sets)
    return f"Joined from {', '.join(joined['joined'])} on their common sets ({sizes or 'none'}).\n"
