"""Candidate windows, suggestion strategies and the labelling session (moola_lib.labelling.session, .suggestions)."""

import itertools

import numpy as np
import pandas as pd
import pytest

from moola_lib.bars.synthetic import synthetic_market
from moola_lib.features.relativity import relativity_features, swing_points
from moola_lib.labelling.session import (
    CandidateOptions,
    LabellingSession,
    average_true_range,
    candidate_windows,
    overlaps_any,
)
from moola_lib.labelling.store import LabelStore
from moola_lib.labelling.suggestions import k_center_greedy, suggest, summary_features, uncertainty_order

L = 105


@pytest.fixture(scope="module")
def market():
    bars, events = synthetic_market(start="2025-05-01", end="2025-05-31", seed=0)
    X, valid = relativity_features(bars)
    return bars, events, X, valid


def test_candidates_hold_a_large_zigzag_leg_at_the_stated_offsets(market):
    bars, _, _, valid = market
    options = CandidateOptions(min_leg_atr=5.0)
    cand = candidate_windows(bars, valid, options)
    assert len(cand) > 50
    swings = swing_points(bars, **options.zigzag)
    extremes = swings["extreme_pos"].to_numpy()
    legs = {(a, b): k for k, (a, b) in enumerate(itertools.pairwise(extremes))}  # consecutive extremes
    atr = average_true_range(bars)
    for _, w in cand.iterrows():
        s, a, b = w["start"], w["start"] + w["expansion_start"], w["start"] + w["expansion_end"]
        assert w["expansion_start"] == options.lead_bars and w["expansion_end"] <= L - 1 - options.min_follow_bars
        k = legs[(a, b)]
        move = swings["price"].iloc[k + 1] - swings["price"].iloc[k]
        assert abs(move) / atr[a] >= 5.0 and (move > 0) == (w["direction"] == "up")
        assert valid[s : s + L].all() and w["start_time"] == bars.index[s] and w["end_time"] == bars.index[s + L - 1]
        assert (np.diff(bars.index[s : s + L].asi8) <= 60 * 60 * 10**9).all()


def test_candidates_find_the_planted_expansions(market):
    """The synthetic market plants expansion legs: most must be the leg of some candidate window."""
    bars, events, _, valid = market
    cand = candidate_windows(bars, valid, CandidateOptions(min_leg_atr=5.0))
    es = bars.index.get_indexer(pd.DatetimeIndex(events["expansion_start"]))
    ee = bars.index.get_indexer(pd.DatetimeIndex(events["expansion_end"]))
    a = (cand["start"] + cand["expansion_start"]).to_numpy()
    b = (cand["start"] + cand["expansion_end"]).to_numpy()
    found = [((a <= e1) & (b >= e0)).any() for e0, e1 in zip(es, ee) if e0 > 500]
    assert np.mean(found) > 0.8, np.mean(found)


def test_overlaps_any_matches_brute_force():
    rng = np.random.default_rng(1)
    starts, taken = rng.integers(0, 3000, 400), rng.integers(0, 3000, 12)
    brute = np.array([(np.abs(taken - s) < L).any() for s in starts])
    assert (overlaps_any(starts, taken) == brute).all() and brute.any() and not brute.all()
    assert not overlaps_any(starts, []).any()


def test_k_center_greedy_covers_clusters_and_matches_a_naive_version():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 20, (6, 3))
    points = np.concatenate([c + rng.normal(0, 0.5, (30, 3)) for c in centers])
    covered = points[:5]  # cluster 0 already labelled
    picked, score = k_center_greedy(points, 5, covered)
    assert len({int(i) // 30 for i in picked}) == 5 and all(int(i) // 30 != 0 for i in picked)
    assert (np.diff(score) <= 1e-12).all()  # each pick is at most as far as the previous one
    z = (points - np.concatenate([points, covered]).mean(0)) / np.concatenate([points, covered]).std(0)
    zc = (covered - np.concatenate([points, covered]).mean(0)) / np.concatenate([points, covered]).std(0)
    naive = []
    for _ in range(5):
        centre = np.concatenate([zc, z[naive]])
        d = np.linalg.norm(z[:, None] - centre[None], axis=2).min(axis=1)
        naive.append(int(np.argmax(d)))
    assert list(picked) == naive


def test_uncertainty_ranks_the_windows_near_the_boundary_first():
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, (60, 2))
    y = (train[:, 0] > 0).astype(int)
    points = np.stack([np.linspace(-3, 3, 61), np.zeros(61)], axis=1)
    order, margin = uncertainty_order(points, train, y)
    assert abs(points[order[0], 0]) < 0.4 and abs(points[order[-1], 0]) > 2.5
    assert (np.diff(margin) >= 0).all() and 0 <= margin.min() and margin.max() <= 1


def test_uncertainty_falls_back_to_diverse_and_says_why():
    points = np.random.default_rng(0).normal(size=(40, 4))
    no_encoder = suggest("uncertainty", points, 5, features="summary")
    assert no_encoder.strategy == "diverse" and "no encoder" in no_encoder.note
    few = suggest("uncertainty", points, 5, labelled_points=points[:4], labelled_y=[0, 1, 0, 1], min_labels=10)
    assert few.strategy == "diverse" and "only 4 labels" in few.note
    enough = suggest("uncertainty", points, 5, labelled_points=points[:12], labelled_y=[0, 1] * 6, min_labels=10)
    assert enough.strategy == "uncertainty" and enough.note is None
    with pytest.raises(ValueError, match="unknown strategy 'smart'"):
        suggest("smart", points, 5)


def test_summary_features_ignore_invalid_bars():
    X = np.zeros((1, 4, 2), dtype=np.float32)
    X[0, :, 0] = [100.0, 1.0, 3.0, 5.0]
    valid = np.array([[False, True, True, True]])
    out = summary_features(X, valid)
    assert out[0, 0] == pytest.approx(3.0) and out[0, 2] == pytest.approx(np.std([1.0, 3.0, 5.0]))


def _session(market, path, **kw):
    bars, _, X, valid = market
    return LabellingSession(bars, X, valid, LabelStore(path, user="tester"), **kw)


@pytest.mark.parametrize("strategy", ["random", "diverse", "uncertainty"])
def test_a_batch_never_overlaps_itself_or_the_labelled_windows(market, tmp_path, strategy):
    s = _session(market, tmp_path / "labels.csv", strategy=strategy, n_suggestions=10)
    starts = s.batch["start"].to_numpy()
    assert len(starts) == 10 and not any(
        overlaps_any(starts[i : i + 1], np.delete(starts, i)).any() for i in range(len(starts))
    )
    for k in range(3):
        s.label(s.classes[k % 2])
    s.next_batch()
    labelled, _ = s.labelled()
    assert len(labelled) == 3 and not overlaps_any(s.batch["start"].to_numpy(), labelled).any()


def test_reopening_continues_where_the_labeller_stopped(market, tmp_path):
    path = tmp_path / "labels.csv"
    first = _session(market, path, strategy="random", n_suggestions=8, seed=3)
    for label in ("consolidation", "retracement", "consolidation"):
        first.label(label)
    first.skip()
    again = _session(market, path, strategy="random", n_suggestions=8, seed=3)
    assert again.counter()["per_class"] == {"consolidation": 2, "retracement": 1}
    assert list(again.batch["start"][:4]) == list(first.batch["start"][3:7])  # the skip is not remembered
    assert not overlaps_any(again.batch["start"].to_numpy(), first.batch["start"][:3].to_numpy()).any()


def test_label_skip_undo_and_counter(market, tmp_path):
    s = _session(market, tmp_path / "labels.csv", strategy="diverse", n_suggestions=4)
    shown = s.current["start_time"]
    s.label("Retracement ")
    assert s.counter() == {"labelled": 1, "per_class": {"consolidation": 0, "retracement": 1}, "left_in_batch": 3}
    s.skip()
    assert s.counter()["left_in_batch"] == 2
    s.undo()  # the labelled window, not the skipped one
    assert s.counter()["labelled"] == 0 and s.counter()["left_in_batch"] == 2
    with pytest.raises(ValueError, match="unknown label 'breakout'"):
        s.label("breakout")
    s.label("consolidation")
    assert s.undo()["start"] != shown.isoformat()
    assert s.current["start_time"] == s.batch["start_time"][2]  # the undone window is shown again
    s.label("consolidation"), s.label("retracement")
    assert s.current is None
    with pytest.raises(IndexError, match="batch is done"):
        s.label("consolidation")


def test_uncertainty_with_an_encoder_refits_on_the_labels(market, tmp_path):
    def embed(Xw, vw):  # a stand-in encoder: any fixed map from windows to points
        return summary_features(Xw, vw)[:, :6]

    s = _session(market, tmp_path / "labels.csv", strategy="uncertainty", n_suggestions=6, embed=embed, min_labels=6)
    assert s.suggestions.strategy == "diverse" and "only 0 labels" in s.suggestions.note
    for k in range(6):
        s.label(s.classes[k % 2])
    s.next_batch()
    assert s.suggestions.strategy == "uncertainty" and s.suggestions.note is None
    score = s.batch["score"].to_numpy()
    assert (np.diff(score) >= 0).all() and 0 <= score.min() and score.max() <= 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"zigzag": {"reversal": 2.0}}, r"zigzag: unknown feature option 'reversal'. Did you mean 'reversal_atr'"),
        ({"lead_bars": 60, "min_follow_bars": 50}, "leave room for a leg"),
        ({"min_leg_atr": 0}, "min_leg_atr must be > 0"),
    ],
)
def test_bad_candidate_options_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CandidateOptions(**kwargs)
