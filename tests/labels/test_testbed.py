"""The embedded testbed (moola_lib.labels.testbed, moola_lib.bars.episodes): one episode process for the
pretraining bars and the labels, no class told apart by an artefact, a held-out ceiling of the simple
arms in 60-80%, and the embedded-set defaults written once (library, parameter classes, notebook parameter cells)."""

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from moola_lib.bars.synthetic import synthetic_market
from moola_lib.features.relativity import FEATURE_NAMES, relativity_features
from moola_lib.labels.testbed import EMBEDDED_SET, synthetic_labelled_set
from moola_lib.studies.ceiling import held_out_ceiling

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def follow_up_statistics(difficulty: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per episode of half a year of market (seed 1): is it a retracement, and the mean over its follow-up
    bars of the bar range (over the mean range of the 60 bars before the episode: the local volatility),
    range_z and the two wicks' share of the range."""
    bars, events = synthetic_market("2025-01-01", "2025-06-30", seed=1, difficulty=difficulty)
    X, _ = relativity_features(bars)
    index = bars.index
    first = index.get_indexer(pd.DatetimeIndex(events["expansion_start"]))
    a = index.get_indexer(pd.DatetimeIndex(events["expansion_end"])) + 1
    b = index.get_indexer(pd.DatetimeIndex(events["pattern_end"])) + 1
    bar_range = (bars["high"] - bars["low"]).to_numpy()
    per_bar = {
        "range_z": X[:, FEATURE_NAMES.index("range_z")],
        "wick": X[:, FEATURE_NAMES.index("upper_wick_pct")] + X[:, FEATURE_NAMES.index("lower_wick_pct")],
    }
    keep = first >= 200
    out = {
        "range": np.array(
            [bar_range[s:e].mean() / bar_range[p - 60 : p].mean() for p, s, e in zip(first[keep], a[keep], b[keep])]
        )
    }
    out.update({k: np.array([v[s:e].mean() for s, e in zip(a[keep], b[keep])]) for k, v in per_bar.items()})
    return (events["kind"].to_numpy()[keep] == "retracement"), out


def test_no_class_is_told_apart_by_bar_width_or_volatility():
    """Without drift in the follow-up (difficulty 1) the two kinds' follow-up bars are one distribution:
    AUC 0.5 +- 0.06 (~700 episodes, standard error of an AUC ~0.022). At the default difficulty the
    retracement's drift runs through each bar's path: its bars have bodies (smaller wick share, which the
    drift implies), but their width hardly moves: the range and range_z AUCs stay within 0.5 +- 0.08
    (the first version, which moved each drifting bar's high and low by the whole drift: 0.68-0.69),
    and the range ratio within 10% (first version: +21%). The two markets differ only in the retracements'
    drift (tests/bars/test_episodes.py: same draws, same bars before the first retracement), so what separates
    the kinds at the default beyond the difficulty-1 level is the drift's own mark."""
    retrace, stats = follow_up_statistics(1.0)
    assert retrace.sum() > 300 and (~retrace).sum() > 300
    for name, values in stats.items():
        assert abs(roc_auc_score(retrace, values) - 0.5) < 0.06, name
    retrace, stats = follow_up_statistics(EMBEDDED_SET.difficulty)
    for name in ("range", "range_z"):
        assert abs(roc_auc_score(retrace, stats[name]) - 0.5) < 0.08, name
    ratio = np.median(stats["range"][retrace]) / np.median(stats["range"][~retrace])
    assert 0.9 < ratio < 1.1
    assert roc_auc_score(retrace, stats["wick"]) < 0.45  # bodies of drifting bars: the drift's own mark


def test_labelled_windows_are_the_markets_own_episodes():
    """The labelled windows hold episodes the generator planted in its market (the bars are not rewritten
    for the labels): the set's truth is a subset of the market's events, its features those of the market."""
    kwargs = {"start": "2025-07-01", "end": "2025-07-31", "history_start": "2025-06-20"}
    ls = synthetic_labelled_set(40, 0.5, 0.0, 3, **kwargs)
    bars, events = synthetic_market(kwargs["history_start"], kwargs["end"], seed=0)
    merged = ls.truth.merge(events, on=["expansion_start", "expansion_end", "pattern_end", "direction"])
    assert len(merged) == 40 and (merged["true_kind"] == merged["kind"]).all()
    X, _ = relativity_features(bars)
    s = bars.index.get_indexer(ls.start)
    np.testing.assert_array_equal(ls.X, np.stack([X[i : i + 105] for i in s]))
    assert ((ls.expansion[:, 0] == ls.truth["offset"]) & (ls.expansion[:, 1] < 105)).all()


def test_held_out_ceiling_at_the_default_difficulty():
    """Simple models trained on 140 windows (4 replicates), tested on 1,500 fresh windows of another market
    (the full measurement, 10 replicates x 3,000 windows, is in VALIDATION.md): in 60-80% balanced accuracy."""
    result = held_out_ceiling(replicates=4, test_n=1500)
    for model in ("logistic", "boosting"):
        assert 0.6 <= result[model]["mean"] <= 0.8, (model, result[model])


@pytest.mark.parametrize("difficulty, low, high", [(0.0, 0.9, 1.0), (1.0, 0.42, 0.58)])
def test_difficulty_spans_easy_to_chance(difficulty, low, high):
    """0: the best simple model above 90%; 1: the two kinds are one process, every model at chance."""
    result = held_out_ceiling(difficulty, replicates=2, test_n=1500)
    means = [result[m]["mean"] for m in ("logistic", "boosting")]
    if difficulty == 0.0:
        assert low <= max(means) <= high, result
    else:
        assert all(low <= m <= high for m in means), result


# ------------------------------------------------------------------------------ defaults written once


def parameter_cell(name: str) -> dict:
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return {
        t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
    }


def test_embedded_set_defaults_are_written_once():
    from moola_lib.notebook.params import LabelParams, TransferParams
    from moola_lib.studies.validation_config import ValidationConfig

    d = EMBEDDED_SET
    transfer = {
        "synthetic_start": d.history_start,
        "synthetic_end": d.end,
        "synthetic_seed": d.market_seed,
        "n_labelled": d.n,
        "class_balance": d.class_balance,
        "label_noise": d.label_noise,
        "difficulty": d.difficulty,
        "labels_start": d.start,
        "labels_end": d.end,
    }
    market = {k: transfer[k] for k in ("synthetic_start", "synthetic_end", "synthetic_seed")}
    for cls, notebook, expected in ((TransferParams, "transfer", transfer), (LabelParams, "label", market)):
        cell, params = parameter_cell(notebook), cls()
        for name, value in expected.items():
            assert cell[name] == value == getattr(params, name), (notebook, name)
    vc = ValidationConfig()
    assert (vc.n_labelled, vc.labels_period, vc.history_start) == (d.n, [d.start, d.end], d.history_start)
    ls = synthetic_labelled_set()  # the library's default set is the same set
    assert {
        k: ls.source[k]
        for k in ("n", "class_balance", "label_noise", "difficulty", "start", "end", "history_start", "market_seed")
    } == d.as_dict()
    assert ls.class_counts() == {"consolidation": 81, "retracement": 93}
    assert ls.valid.all() and np.isfinite(ls.X).all()
    # the labelled period lies after the default pretraining splits
    from moola_lib.bars.splits import DEFAULT_SPLITS

    assert max(pd.Timestamp(b[1]) for b in DEFAULT_SPLITS.values()) <= pd.Timestamp(d.start)
    assert (ls.start >= pd.Timestamp(d.start, tz="UTC")).all()
