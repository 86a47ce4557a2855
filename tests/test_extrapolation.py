"""The "how many more labels?" extrapolation of the transfer learning curve."""
import math

import numpy as np
import pytest

from moola_lib.transfer.config import METRICS, TransferConfig
from moola_lib.transfer.extrapolation import labels_needed, labels_needed_sentence
from moola_lib.transfer.stats import compare

CFG = TransferConfig(arms=["baseline", "frozen"], primary="frozen vs baseline", primary_metric="balanced_accuracy")
N_TEST = 35


def _runs(effect: float, sd_at_full: float, exponent: float = -0.5, fractions=(0.25, 0.5, 1.0), n_full=140, seed=0):
    """Per fraction, 25 folds whose paired differences have mean ``effect`` and an sd that scales as
    n_train^exponent (exactly: standardised noise)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(25)
    z = (z - z.mean()) / z.std(ddof=1)
    runs = {}
    for f in fractions:
        n = n_full * f
        diffs = effect + sd_at_full * (n / n_full) ** exponent * z
        base = [{"n_train": n, "n_test": N_TEST, **{m: 0.6 for m in METRICS}} for _ in diffs]
        arm = [{**b, **{m: 0.6 + d for m in METRICS}} for b, d in zip(base, diffs)]
        runs[f] = {"baseline": {"folds": base}, "frozen": {"folds": arm}}
    return runs


def test_the_square_root_law_gives_the_closed_form_answer():
    runs = _runs(effect=0.03, sd_at_full=0.10)
    x = labels_needed(runs, CFG, n_labelled=174)
    full = compare(runs[1.0]["frozen"]["folds"], runs[1.0]["baseline"]["folds"])["balanced_accuracy"]
    assert x["effect"] == pytest.approx(0.03) and x["mde"] == pytest.approx(full["mde"])
    ses = [compare(runs[f]["frozen"]["folds"], runs[f]["baseline"]["folds"])["balanced_accuracy"]["se"]
           for f in (0.25, 0.5, 1.0)]
    slope = np.polyfit(np.log([35.0, 70.0, 140.0]), np.log(ses), 1)[0]
    assert x["fitted_exponent"] == pytest.approx(slope) and -1 < slope < -0.25   # the test fold is fixed
    assert x["labels_needed"] == math.ceil(174 * (full["mde"] / 0.03) ** 2)
    assert x["labels_needed_fitted_exponent"] == math.ceil(174 * (full["mde"] / 0.03) ** (-1 / slope))
    assert not x["detectable_now"] and x["labels_needed"] > 174
    assert [p["fraction"] for p in x["points"]] == [0.25, 0.5, 1.0]
    sentence = labels_needed_sentence(x)
    assert f"{x['labels_needed']:,} labelled windows" in sentence and "+3.0 pp" in sentence


def test_an_effect_already_detectable_needs_no_more_labels():
    x = labels_needed(_runs(effect=0.2, sd_at_full=0.05), CFG, n_labelled=174)
    assert x["detectable_now"] and x["labels_needed"] <= 174
    assert "already within what this set can detect" in labels_needed_sentence(x)


def test_untrustworthy_extrapolations_say_why():
    flat = labels_needed(_runs(effect=0.03, sd_at_full=0.10, exponent=0.5), CFG, n_labelled=174)
    assert any("far from n^-0.5" in c for c in flat["caveats"])
    assert flat["fitted_exponent"] > 0 and flat["labels_needed_fitted_exponent"] is None   # se grew
    noise = labels_needed(_runs(effect=0.005, sd_at_full=0.10), CFG, n_labelled=174)
    assert any("smaller than its standard error" in c for c in noise["caveats"])
    assert any("10x today's labels" in c for c in noise["caveats"])
    one = labels_needed(_runs(effect=0.03, sd_at_full=0.10, fractions=(1.0,)), CFG, n_labelled=174)
    assert one["fitted_exponent"] is None and any("only 1 fraction" in c for c in one["caveats"])
    assert "Not trustworthy" in labels_needed_sentence(noise)
    none = labels_needed(_runs(effect=0.0, sd_at_full=0.10), CFG, n_labelled=174)
    assert none["labels_needed"] is None and "No effect was observed" in labels_needed_sentence(none)
