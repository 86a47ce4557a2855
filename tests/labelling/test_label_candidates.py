"""label.ipynb's candidates from a classifier's scan (``candidates_path``; moola_lib.labelling.session
.scan_candidates): the scanned windows that hold a leg, the model's least certain first."""

import json

import numpy as np
import pandas as pd
import pytest

from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.features.relativity import relativity_features
from moola_lib.labelling.session import (
    CandidateOptions,
    CandidatesFileError,
    LabellingSession,
    expansion_legs,
    read_scan_file,
    scan_candidates,
)
from moola_lib.labelling.store import LabelStore
from moola_lib.notebook.params import LabelParams
from moola_lib.notebook.steps import labelling_session_from_params
from moola_lib.util.io import atomic_write_table
from moola_lib.util.paths import ROOT

L = 105
START, END = "2025-05-05", "2025-05-09"


@pytest.fixture(scope="module")
def market():
    bars = synthetic_ohlcv(START, END, seed=0)
    X, valid = relativity_features(bars)
    return bars, X, valid


def scan_frame(bars, stride=1):
    """A scan's scores over these bars: a window at every ``stride``-th bar, a made-up probability."""
    starts = np.arange(0, len(bars) - L, stride)
    p = 0.5 + 0.5 * np.sin(starts / 37.0)
    return pd.DataFrame(
        {
            "start": bars.index[starts],
            "end": bars.index[starts + L - 1],
            "predicted": np.where(p >= 0.5, "retracement", "consolidation"),
            "p_consolidation": 1 - p,
            "p_retracement": p,
        }
    )


def test_scanned_windows_with_a_leg_are_the_candidates(market):
    bars, _, valid = market
    options = CandidateOptions()
    scores = scan_frame(bars)
    cand = scan_candidates(bars, valid, scores, options)
    assert len(cand) > 100 and (np.diff(cand["start"]) > 0).all()
    legs = expansion_legs(bars, options.min_leg_atr, options.zigzag)
    first_leg = {}  # window start -> its first leg inside it
    for a, b in zip(legs["leg_start"], legs["leg_end"]):
        for s in range(max(a - L + 1, 0), a + 1):
            first_leg.setdefault(s, (a, b))
    for _, w in cand.iterrows():
        s = int(w["start"])
        a, b = first_leg[s]
        assert (s + w["expansion_start"], s + w["expansion_end"]) == (a, b)
        assert w["expansion_end"] <= L - 1 - options.min_follow_bars and valid[s : s + L].all()
    p = scores.set_index("start").loc[cand["start_time"], "p_retracement"].to_numpy()
    np.testing.assert_allclose(cand["uncertainty"], 1 - np.maximum(p, 1 - p))


def test_the_model_s_least_certain_windows_come_first_and_never_overlap(market, tmp_path):
    bars, X, valid = market
    store = LabelStore(tmp_path / "labels.csv")
    session = LabellingSession(bars, X, valid, store, strategy="diverse", n_suggestions=8, scan=scan_frame(bars))
    batch = session.batch
    assert session.suggestions.strategy == "scan uncertainty" and "'diverse' is not used" in session.suggestions.note
    assert len(batch) == 8 and (np.diff(batch["score"]) <= 0).all()
    assert batch["score"].iloc[0] == pytest.approx(session.candidates["uncertainty"].max())
    starts = np.sort(batch["start"].to_numpy())
    assert (np.diff(starts) >= L).all()
    session.label("retracement")  # labelled windows and their neighbours leave the candidates
    session.next_batch()
    assert not (np.abs(session.batch["start"].to_numpy() - int(batch["start"].iloc[0])) < L).any()


def test_a_detections_file_works_too_and_other_bars_are_refused(market, tmp_path):
    bars, _, valid = market
    scores = scan_frame(bars, stride=7)
    found = scores[["start", "end"]].assign(**{"class": "retracement", "p": scores["p_retracement"], "n_windows": 3})
    path = tmp_path / "march.detections.csv"
    atomic_write_table(path, found)
    cand = scan_candidates(bars, valid, read_scan_file(path))
    assert len(cand) > 10 and set(cand["start"] % 7) == {0}
    p = found.set_index("start").loc[cand["start_time"], "p"].to_numpy()
    np.testing.assert_allclose(cand["uncertainty"], 1 - p)
    elsewhere = scan_frame(synthetic_ohlcv("2025-06-02", "2025-06-03", seed=0))
    atomic_write_table(tmp_path / "june.parquet", elsewhere)
    with pytest.raises(CandidatesFileError, match="june.parquet: none of its .* windows starts at a bar"):
        scan_candidates(bars, valid, read_scan_file(tmp_path / "june.parquet"))
    atomic_write_table(tmp_path / "labels.csv", pd.DataFrame({"start": [bars.index[0]], "label": ["x"]}))
    with pytest.raises(CandidatesFileError, match="not a scan's scores or detections file"):
        read_scan_file(tmp_path / "labels.csv")
    with pytest.raises(CandidatesFileError, match="cannot read it"):
        read_scan_file(tmp_path / "missing.csv")


def test_label_ipynb_takes_candidates_path(market, tmp_path):
    bars, _, _ = market
    path = tmp_path / "scan.parquet"
    atomic_write_table(path, scan_frame(bars, stride=3))
    params = LabelParams(
        candidates_path=str(path),
        labels_path=str(tmp_path / "labels.csv"),
        synthetic_start=START,
        synthetic_end=END,
        n_suggestions=5,
    )
    session = labelling_session_from_params(params)
    assert session.from_scan and len(session.batch) == 5 and "scanned windows" in session.summary()
    notebook = json.loads((ROOT / "notebooks" / "label.ipynb").read_text(encoding="utf-8"))
    (cell,) = [c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert any(line.startswith("candidates_path = None ") for line in cell["source"])
    assert LabelParams().candidates_path is None
