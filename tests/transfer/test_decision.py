"""The decision (which arm, how sure, the expected loss) and the verdict that opens with it."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from moola_lib.labels.testbed import synthetic_labelled_set
from moola_lib.pretraining.checkpoints import save_encoder
from moola_lib.pretraining.model import JadeEncoder
from moola_lib.transfer import figures
from moola_lib.transfer.answer import labels_line, margin_line, which_line
from moola_lib.transfer.arms import REFERENCE
from moola_lib.transfer.decision import decision
from moola_lib.transfer.intervals import bayesian_correlated_t
from moola_lib.transfer.protocol import run_transfer
from moola_lib.transfer.verdict import markdown_table, verdict, verdict_table

pytestmark = pytest.mark.usefixtures("one_torch_thread")

JARGON = ("Nadeau", "Holm", "t-test", "p =", "CI")


def _results(scores: dict, metric="balanced_accuracy", n_train=140, n_test=35) -> dict:
    """A results dict with fold records only: arm -> per-split scores (5 folds x repeats)."""

    def folds(values):
        return [
            {"repeat": i // 5, "fold": i % 5, "n_train": n_train, "n_test": n_test, metric: float(v)}
            for i, v in enumerate(values)
        ]

    return {"protocol": {"primary_metric": metric}, "arms": {a: {"folds": folds(v)} for a, v in scores.items()}}


def _noise(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(25)


BASE = 0.6 + 0.04 * _noise(0)


def test_a_dominant_arm_is_best_with_certainty_and_recommended():
    frozen = BASE + 0.08 + 0.01 * _noise(1)
    res = _results({"baseline": BASE, "frozen": frozen, "simple_logistic": BASE + 0.02 * _noise(2)})
    d = decision(res)
    p = {a: v["p_best"] for a, v in d["arms"].items()}
    assert sum(p.values()) == pytest.approx(1.0)
    assert p["frozen"] > 0.99 and d["recommended"] == "frozen" and d["separable"]
    assert d["arms"]["frozen"]["expected_loss"] == pytest.approx(0, abs=1e-4)
    assert d["arms"]["baseline"]["expected_loss"] == pytest.approx(0.08, abs=0.01)  # about its shortfall
    assert d["arms"]["frozen"]["mean"] == pytest.approx(np.mean(frozen))
    assert d["lead"]["baseline"]["ci_low"] > 0.05
    assert decision(res) == d  # fixed seed: the same answer every time


def test_identical_arms_share_the_probability_and_the_cheaper_one_is_recommended():
    same = BASE + 0.03
    res = _results({"finetune": same, "baseline": BASE, "frozen": same.copy()})
    d = decision(res)
    assert d["arms"]["finetune"]["p_best"] == pytest.approx(0.5) == d["arms"]["frozen"]["p_best"]
    assert d["recommended"] == "frozen" and d["runner_up"] == "finetune"  # a probe costs less than training
    assert not d["separable"] and d["p_within_rope_of_runner_up"] == 1.0


def test_two_equal_arms_cannot_be_separated():
    res = _results({"baseline": BASE, "frozen": BASE + 0.005 * _noise(3)})
    d = decision(res)
    assert all(0.2 < v["p_best"] < 0.8 for v in d["arms"].values())
    assert not d["separable"]


def test_a_lead_inside_the_rope_is_not_separable_however_sure():
    # frozen is ahead on every split, but by half a point: best almost surely, practically the same
    res = _results({"baseline": BASE, "frozen": BASE + 0.005 + 0.0005 * _noise(4)})
    d = decision(res)
    assert d["recommended"] == "frozen" and d["arms"]["frozen"]["p_best"] > 0.99
    assert d["p_ahead_of_runner_up"] < 0.01 and not d["separable"]


def test_separable_takes_a_posterior_probability_above_095_not_more_likely_than_not():
    def run(lead):
        return decision(_results({"baseline": BASE, "frozen": BASE + lead + 0.03 * _noise(8)}))

    likely = run(0.02)  # frozen is probably the best and probably ahead by the rope: not enough
    assert likely["recommended"] == "frozen" and 0.8 < likely["arms"]["frozen"]["p_best"] < 0.95
    assert 0.5 < likely["p_ahead_of_runner_up"] < 0.95 and not likely["separable"]
    best_not_ahead = run(0.04)  # the best almost surely, ahead by the rope with 0.94
    assert best_not_ahead["arms"]["frozen"]["p_best"] > 0.95 > best_not_ahead["p_ahead_of_runner_up"]
    assert not best_not_ahead["separable"]
    sure = run(0.05)
    assert min(sure["arms"]["frozen"]["p_best"], sure["p_ahead_of_runner_up"]) > 0.95 and sure["separable"]


def test_lower_log_loss_is_better():
    loss = 0.65 + 0.03 * _noise(5)
    d = decision(_results({"baseline": loss, "frozen": loss - 0.05}, metric="log_loss"))
    assert d["metric"] == "log_loss" and not d["higher_is_better"]
    assert d["recommended"] == "frozen" and d["arms"]["frozen"]["p_best"] > 0.99
    assert d["arms"]["frozen"]["mean"] == pytest.approx(np.mean(loss) - 0.05)  # reported as a loss, in nats
    assert d["arms"]["baseline"]["expected_loss"] == pytest.approx(0.05, abs=1e-6)
    assert d["lead"]["baseline"]["mean"] == pytest.approx(0.05)  # positive: the recommended arm is better


def test_two_arms_reduce_to_the_pairwise_bayesian_correlated_t():
    other = BASE + 0.01 + 0.03 * _noise(6)
    d = decision(_results({"baseline": BASE, "frozen": other}))
    pair = bayesian_correlated_t(other - BASE, 35 / 140)
    p_frozen_better = float(stats.t.sf(0, pair["df"], loc=pair["mean"], scale=pair["scale"]))
    assert d["arms"]["frozen"]["p_best"] == pytest.approx(p_frozen_better, abs=0.01)  # Monte Carlo error ~0.004
    if d["recommended"] == "frozen":
        assert [d["lead"]["baseline"][k] for k in ("ci_low", "ci_high")] == pytest.approx(
            [pair["ci_low"], pair["ci_high"]]
        )
    else:  # the lead is the baseline's: the pair's interval turned round
        assert [d["lead"]["frozen"][k] for k in ("ci_low", "ci_high")] == pytest.approx(
            [-pair["ci_high"], -pair["ci_low"]]
        )


def test_the_answer_lines_name_the_arms_and_their_margins():
    res = _results({"baseline": BASE + 0.05, "frozen": BASE, "simple_boosting": BASE + 0.01})
    d = decision(res)
    assert d["recommended"] == REFERENCE
    assert "`baseline`" in which_line(d) and "% likely the best of the 3 models run" in which_line(d)
    line = margin_line(d)
    assert "It is the randomly initialised baseline itself" in line and "`simple_boosting`" in line
    assert "+4.0 points (95% likely between" in line
    needed = {
        "n_labelled": 174,
        "unit": "pp",
        "comparison": "frozen vs baseline",
        "mde": 0.118,
        "power_curve": [{"effect": 0.05, "labels": 700}, {"effect": 0.03, "labels": None}],
    }
    assert labels_line(needed) == (
        "3. More labels: with 174 labelled windows a true difference between `frozen` and `baseline` smaller "
        "than about 11.8 points can go unnoticed; labelled windows needed to see one reliably: 5 points: 700, "
        "3 points: more than 17,400."
    )


def test_tables_are_shown_whole():
    frame = pd.DataFrame({"x": range(200), "text": ["a | b\nc"] * 200})
    with figures.untruncated():
        assert "..." not in repr(frame) and "199" in repr(frame)
    md = markdown_table(frame.set_index("x"))
    assert len(md.splitlines()) == 202 and "a \\| b c" in md


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("decision")
    torch.manual_seed(0)
    save_encoder(JadeEncoder(hidden_size=8, num_layers=1), d / "encoder.pt")
    labelled = synthetic_labelled_set(40, start="2025-07-01", end="2025-07-31", history_start="2025-06-24")
    cfg = dict(
        arms=["baseline", "frozen", "simple"],
        folds=3,
        repeats=2,
        epochs=1,
        fractions=[0.5, 1.0],
        n_bootstrap=0,
        device="cpu",
        progress=False,
        n_jobs=1,
    )
    return run_transfer(labelled, d / "encoder.pt", cfg, d), d


def test_a_run_decides_and_an_old_results_file_gets_the_same_decision(tiny_run):
    res, run_dir = tiny_run
    on_disk = json.loads((run_dir / "transfer_results.json").read_text())
    d = on_disk.pop("decision")
    assert d == json.loads(json.dumps(res["decision"]))
    assert set(d["arms"]) == {"baseline", "frozen", "simple_logistic", "simple_boosting"}
    assert math.isclose(sum(a["p_best"] for a in d["arms"].values()), 1.0)
    assert d["recommended"] in d["arms"] and isinstance(d["separable"], bool)
    assert decision(on_disk) == d  # a file written before the decision existed: computed from its folds
    assert verdict(on_disk) == res["verdict"]


def test_the_verdict_opens_with_the_answer_and_keeps_the_statistics_in_its_table(tiny_run):
    res, _ = tiny_run
    lines = res["verdict"].splitlines()
    head, recommended = "\n".join(lines[:3]), res["decision"]["recommended"]
    assert lines[0].startswith("1. Use ") and f"`{recommended}`" in lines[0]
    assert lines[1].startswith("2. ") and lines[2].startswith("3. More labels")
    assert not [word for word in JARGON if word in head]
    table = verdict_table(res)
    assert {"Primary comparison (named before the run), frozen vs baseline", "Pretraining overlap"} <= set(table.index)
    text = "\n".join(lines[3:])
    for word in ("Nadeau", "Holm", "t-test", "P(best)", "pretraining"):
        assert word in text
    assert lines[4].startswith("| topic | detail |") and len(lines) == 6 + len(table)
    frame = figures.decision_table(res["decision"])
    assert frame["arm"].iloc[0] == recommended and list(frame["P(best)"].astype(float)) != []


def test_a_lead_over_the_baseline_within_the_truth_studys_bias_carries_its_caution():
    small = _results({"baseline": BASE, "frozen": BASE + 0.04 + 0.02 * _noise(7), "simple_boosting": BASE - 0.03})
    d = decision(small)
    assert d["recommended"] == "frozen" and d["lead"][REFERENCE]["ci_low"] < 0.03 < d["lead"][REFERENCE]["mean"]
    assert "the truth study" in margin_line(d) and "does not show that the recommended model" in margin_line(d)
    large = decision(_results({"baseline": BASE, "frozen": BASE + 0.06 + 0.005 * _noise(7)}))
    assert large["lead"][REFERENCE]["ci_low"] > 0.03 and "truth study" not in margin_line(large)  # beyond the bias
    loss = decision(_results({"baseline": BASE, "frozen": BASE - 0.02}, metric="log_loss"))
    assert loss["recommended"] == "frozen" and "truth study" not in margin_line(loss)  # measured on accuracy only
