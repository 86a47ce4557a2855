"""The classifier check (moola_lib.studies.classifier_check): the user's path on the embedded testbed (encoder,
transfer run, classifier) scored against the generator's truth of a later period; the scan reads the very
windows the labelled later set holds; detections matched against episodes by shared minutes."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from moola_lib.studies import classifier_check as cc
from moola_lib.util.config import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("check")
    assert cc.main([str(out), "--quick"]) == 0
    return out, json.loads((out / "classifier_check.json").read_text())


def test_every_arm_has_its_estimate_its_truth_and_its_detections(quick_run):
    out, results = quick_run
    recommended = results["transfer"]["recommended"]
    assert list(results["arms"]) == list(dict.fromkeys([recommended, "simple_logistic", "frozen"]))
    assert results["later"]["windows"] == 24 and results["later"]["class_counts"] == {
        "consolidation": 12,
        "retracement": 12,
    }
    transfer = json.loads((out / "transfer" / "transfer_results.json").read_text())
    for arm, row in results["arms"].items():
        estimate = transfer["arms"][arm]["summary"]["balanced_accuracy"]
        assert row["cv"] == {k: pytest.approx(estimate[k]) for k in ("mean", "ci_low", "ci_high")}
        true = row["true"]
        assert true["ci_low"] < true["balanced_accuracy"] < true["ci_high"] or true["se"] == 0
        assert row["inside"] == (row["cv"]["ci_low"] <= true["balanced_accuracy"] <= row["cv"]["ci_high"])
        assert list(row["detections"]) == ["0.6", "0.8", "0.9"]
        for per_class in row["detections"].values():
            assert set(per_class) == {"consolidation", "retracement"}
            for m in per_class.values():
                assert m["true_positives"] <= m["detections"] and m["found"] <= m["episodes"]
    markdown = (out / "classifier_check.md").read_text()
    assert f"`{recommended}` (auto)" in markdown and "base rate" in markdown


def test_the_scan_scores_the_labelled_later_windows_as_the_model_does(quick_run):
    # stride 1: every labelled later window starts a scanned window, with the same features and scores; a scan
    # off by a bar, or features computed from another history, would differ
    for row in quick_run[1]["arms"].values():
        assert row["scan_vs_windows"]["in_scan"] == row["scan_vs_windows"]["windows"] == 24
        assert row["scan_vs_windows"]["max_abs_difference"] < 1e-6


def test_overlap_counts_a_shared_minute_and_matches_brute_force():
    t = pd.Timestamp("2025-10-01 00:00")
    minute = pd.Timedelta(minutes=1)
    others = ([t + 10 * minute, t + 40 * minute], [t + 19 * minute, t + 50 * minute])
    start, end = [t, t + 20 * minute, t + 51 * minute], [t + 10 * minute, t + 39 * minute, t + 60 * minute]
    hit = cc.overlapping(start, end, *others)
    assert hit.tolist() == [True, False, False]  # touching at 00:10 counts; 00:20-00:39 lies between the two
    rng = np.random.default_rng(0)
    edges = np.sort(rng.choice(2000, 40, replace=False))
    o_start, o_end = t + edges[0::2] * minute, t + edges[1::2] * minute  # disjoint, in time order
    start = t + rng.integers(0, 2000, 300) * minute
    end = start + rng.integers(0, 120, 300) * minute
    brute = [bool(np.any((o_start <= e) & (o_end >= s))) for s, e in zip(start, end)]
    assert cc.overlapping(start, end, o_start, o_end).tolist() == brute


def test_balanced_accuracy_and_its_interval():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], [60, 40])
    proba = rng.dirichlet([1, 1], size=100)
    out = cc.balanced_accuracy(y, proba)
    assert out["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, proba.argmax(axis=1)))
    r = np.array(out["recall"])
    assert out["se"] == pytest.approx(np.sqrt(r[0] * (1 - r[0]) / 60 + r[1] * (1 - r[1]) / 40) / 2)


def test_a_transfer_run_of_other_settings_is_refused(quick_run):
    other = cc.CheckConfig.from_dict({**cc.QUICK, "transfer": {**cc.QUICK["transfer"], "epochs": 3}})
    with pytest.raises(ConfigError, match="other settings"):
        cc.run_check(other, quick_run[0], log=lambda _: None)


def test_an_unknown_arm_is_one_line_and_exit_2(tmp_path, capsys):
    assert cc.main([str(tmp_path / "out"), "--quick", "--arms", "frozn"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "frozn" in err[0] and "'frozen'" in err[0]
    assert not (tmp_path / "out").exists()
