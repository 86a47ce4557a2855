"""The simulated labelling study (moola_lib.studies.labelling_study): oracle truth, strict settings, the summary's
arithmetic, the mixed strategy, and a tiny end-to-end run of the command line."""

import json

import numpy as np
import pandas as pd
import pytest

from moola_lib.labelling.store import LabelStore
from moola_lib.labelling.suggestions import MIXED_SHORTLIST, suggest, uncertainty_order
from moola_lib.studies import labelling_study as study
from moola_lib.util.config import ConfigError

TINY = {"repeats": 2, "budget": 30, "heldout_n": 60, "pool_start": "2025-07-01", "pool_end": "2025-09-30"}


def test_candidate_truth_matches_legs_to_episodes():
    bars = pd.DataFrame(index=pd.date_range("2025-01-01", periods=400, freq="min", tz="UTC"))
    t = bars.index
    events = pd.DataFrame(
        {
            "expansion_start": [t[100], t[300]],
            "expansion_end": [t[120], t[310]],
            "kind": ["retracement", "consolidation"],
        }
    )
    # legs: on episode 1 (shifted 5 bars: 15 of 20 bars shared), touching episode 2 by 2 of 10 bars, no episode
    cands = pd.DataFrame({"start": [85, 288, 150], "expansion_start": [20, 20, 20], "expansion_end": [40, 30, 40]})
    truth = study.candidate_truth(bars, events, cands, min_overlap=0.5)
    assert truth == {85: "retracement", 288: None, 150: None}
    assert study.candidate_truth(bars, events, cands, min_overlap=0.2)[288] == "consolidation"


@pytest.mark.parametrize(
    "bad",
    [
        {"strategies": ("random", "smart")},
        {"strategies": ("diverse",)},
        {"seed_labels": 5},
        {"budget": 10},
        {"flip_rate": 0.5},
        {"repeats": 0},
    ],
)
def test_config_is_strict(bad):
    with pytest.raises(ConfigError):
        study.StudyConfig(**bad)


def test_checkpoints_hold_the_targets():
    assert study.StudyConfig(budget=500).checkpoints()[:3] == [10, 20, 30]
    assert {174, 500} <= set(study.StudyConfig(budget=500).checkpoints())
    assert 174 not in study.StudyConfig(budget=100).checkpoints()


def _fake_repeats(cfg, shift, noise_seed):
    """Random's curve rises by 0.01 per checkpoint; 'diverse' is random ``shift`` checkpoints later."""
    cps, rng = cfg.checkpoints(), np.random.default_rng(noise_seed)
    reps = []
    for _ in range(cfg.repeats):
        base = 0.5 + 0.01 * np.arange(len(cps) + shift) + rng.normal(0, 0.001)
        curves = {
            s: [{"labels": c, "clicks": 3 * c, "balanced_accuracy": base[i + k]} for i, c in enumerate(cps)]
            for s, k in (("random", 0), ("diverse", shift))
        }
        reps.append({"curves": curves})
    return reps


def test_labels_needed_finds_the_shift():
    cfg = study.StudyConfig(strategies=("random", "diverse"), repeats=5, budget=200)
    summary = study.summarise(cfg, _fake_repeats(cfg, shift=3, noise_seed=0))
    need = summary["labels_needed"]["174"]
    cps = cfg.checkpoints()
    assert need["random"]["labels"] == 174
    assert need["diverse"]["labels"] == cps[cps.index(174) - 3]  # three checkpoints earlier
    assert summary["vs_random"]["diverse"]["mean"][5] == pytest.approx(0.03, abs=1e-3)
    assert "500" not in summary["labels_needed"]  # beyond the budget: not claimed
    text = study.report(cfg, [{}] * cfg.repeats, summary)
    assert "| diverse |" in text and "Labels needed" in text


def test_mixed_picks_diverse_windows_among_the_uncertain():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(300, 4))
    labelled = rng.normal(size=(20, 4))
    y = (labelled[:, 0] > 0).astype(int)
    got = suggest("mixed", points, 6, labelled_points=labelled, labelled_y=y, blocked_by=lambda i: (i + 1,))
    shortlist = uncertainty_order(points, labelled, y)[0][: MIXED_SHORTLIST * 6]
    assert got.strategy == "mixed" and len(got.order) == 6 and set(got.order) <= set(shortlist)
    assert not set(got.order) & {i + 1 for i in got.order}  # blocked neighbours are never picked
    few = suggest("mixed", points, 6, labelled_points=labelled[:3], labelled_y=y[:3])
    assert few.strategy == "diverse" and "uncertainty needs" in few.note


def test_oracle_labels_from_the_truth(tmp_path):
    cfg = study.StudyConfig(**TINY)
    pool = study.make_pool(cfg, 0)
    assert sum(v is not None for v in pool.truth.values()) > 20
    study.seed_set(pool, tmp_path / "seed.csv", cfg, 0)
    frame = LabelStore(tmp_path / "seed.csv").frame
    assert frame["label"].value_counts().to_dict() == {"consolidation": 5, "retracement": 5}
    starts = pool.bars.index.get_indexer(pd.DatetimeIndex(pd.to_datetime(frame["start"], utc=True)))
    assert [pool.truth[int(s)] for s in starts] == frame["label"].tolist()


def test_tiny_run_from_the_command_line(tmp_path, capsys):
    args = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    assert study.main(["--out", str(tmp_path), "--figure", str(tmp_path / "f.png"), *args]) == 0
    result = json.loads((tmp_path / "study.json").read_text())
    assert len(result["repeats"]) == 2 and (tmp_path / "f.png").stat().st_size < 200_000
    for rep in result["repeats"]:
        first = {s: c[0]["balanced_accuracy"] for s, c in rep["curves"].items()}
        assert len(set(first.values())) == 1  # every strategy starts from the same seed set
        for curve in rep["curves"].values():
            assert [row["labels"] for row in curve] == [10, 20, 30]
            assert all(row["clicks"] >= row["labels"] - 10 and 0 <= row["balanced_accuracy"] <= 1 for row in curve)
    assert "| mixed |" in (tmp_path / "study.md").read_text()


def test_command_line_errors_are_one_line(tmp_path, capsys):
    assert study.main(["--out", str(tmp_path), "--strategies", "random,clever"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "clever" in err and "\n" not in err


class _FakeSession:
    """The three things the oracle uses of a LabellingSession: the window on screen, label and skip."""

    def __init__(self, starts):
        self.starts, self.position, self.done = list(starts), 0, []

    @property
    def current(self):
        return {"start": self.starts[self.position]}

    def label(self, kind):
        self.done.append(kind)
        self.position += 1

    def skip(self):
        self.done.append(None)
        self.position += 1


def test_oracle_flips_at_its_rate_and_skips_windows_of_no_episode():
    truth = {s: ("consolidation" if s % 2 else None) for s in range(4000)}
    pool = study.Pool(bars=None, X=None, valid=None, truth=truth)
    oracle, session = study.Oracle(pool, flip_rate=0.2, seed=0), _FakeSession(range(4000))
    labelled = [oracle.answer(session) for _ in range(4000)]
    assert oracle.clicks == 4000 and sum(labelled) == 2000 == len(oracle.y)
    assert session.done[::2] == [None] * 2000  # no episode: skipped
    assert np.mean(oracle.y) == pytest.approx(0.2, abs=0.03)  # retracement (1) only by a flip
    assert [s % 2 for s in oracle.starts] == [1] * 2000
