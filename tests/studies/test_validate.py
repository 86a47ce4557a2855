"""The validation script (pairs with true differences, labels check, real question) in its seconds-long version."""

import json
import math

import numpy as np
import pytest

from moola_lib.studies.validate import main, replicate_set
from moola_lib.studies.validation_arms import PAIRS
from moola_lib.studies.validation_config import QUICK, ValidationConfig, labelled_set
from moola_lib.studies.validation_pairs import (
    clopper_pearson,
    power_at,
    rate,
    summarise_pair,
)
from moola_lib.transfer.intervals import METHOD_TITLES, VERDICT_INTERVAL
from moola_lib.transfer.stats import minimal_detectable_effect


def test_clopper_pearson_and_power():
    lo, hi = clopper_pearson(1, 20)
    assert lo == pytest.approx(0.001265, rel=1e-3) and hi == pytest.approx(0.248733, rel=1e-3)  # exact tables
    assert clopper_pearson(0, 20)[0] == 0 and clopper_pearson(20, 20)[1] == 1
    assert power_at(minimal_detectable_effect(0.05, 24), 0.05, 24, 0.05) == pytest.approx(0.8, abs=0.01)
    assert power_at(0.0, 0.05, 24, 0.05) == pytest.approx(0.05)
    assert math.isnan(power_at(0.1, 0.0, 24, 0.05))
    r = rate([True, False, True, True])
    assert (r["k"], r["n"], r["rate"]) == (3, 4, 0.75) and r["ci"] == clopper_pearson(3, 4)


def test_pair_summary_counts_coverage_against_the_truth():
    rows = [
        {
            "mean": m,
            "interval": "corrected_t",
            "df": 24,
            "mde": 0.1,
            "mde_range": [0.08, 0.13],
            "methods": {"corrected_t": {"se": 0.02, "df": 24, "p_value": p, "ci_low": m - 0.04, "ci_high": m + 0.04}},
            "test_noise_only_ci": [m - 0.005, m + 0.005],
        }
        for m, p in ((0.01, 0.6), (0.03, 0.2), (0.07, 0.01), (0.02, 0.4))
    ]
    s = summarise_pair(rows, {"difference": 0.02, "se": 0.001, "draws": 50}, 0.05, 0.8)
    t = s["methods"]["corrected_t"]
    assert t["coverage"]["k"] == 3 and t["rejection"]["k"] == 1  # 0.07 +- 0.04 misses 0.02
    assert s["test_noise_only"]["coverage"]["k"] == 1
    assert s["spread"] == pytest.approx(np.std([0.01, 0.03, 0.07, 0.02], ddof=1))
    assert t["spread_over_se"] == pytest.approx(s["spread"] / 0.02)


def test_replicates_draw_independent_markets():
    vc = ValidationConfig.from_dict(QUICK)
    a, b = labelled_set(vc, 20, 1, 1), labelled_set(vc, 20, 1, 2)
    assert not np.allclose(a.X, b.X)
    assert np.allclose(a.X, labelled_set(vc, 20, 1, 1).X)


def test_replicate_offset_draws_fresh_replicates():
    vc = ValidationConfig.from_dict({**QUICK, "n_labelled": 20})
    shifted = ValidationConfig.from_dict({**QUICK, "n_labelled": 20, "replicate_offset": 1})
    i0, first = replicate_set(vc, 1)
    i1, fresh = replicate_set(shifted, 0)
    assert i0 == i1 == 1 and np.array_equal(first.X, fresh.X)  # replicate 0 of offset 1 is replicate 1 of 0
    assert not np.allclose(replicate_set(vc, 0)[1].X, fresh.X)


def test_quick_validation_run_writes_its_results(tmp_path, capsys):
    out_json, out_md = tmp_path / "v.json", tmp_path / "v.md"
    assert main(["--quick", "--labels-check", "--json", str(out_json), "--markdown", str(out_md)]) == 0
    res = json.loads(out_json.read_text())
    pairs = res["pairs"]["pairs"]
    assert set(pairs) == set(PAIRS) and len(PAIRS) >= 3
    null = pairs["primary_null"]
    assert null["replicates"] == 2 and pairs["probe_vs_logistic"]["replicates"] == 3  # sgd_replicates 2 of 3
    for name, p in pairs.items():
        assert p["truth"]["draws"] == (2 if name in ("primary_null", "positive") else 3)
        # 3 folds x 1 repeat: too few between-model degrees of freedom for the hierarchical interval
        assert {"corrected_t", "bayesian_correlated_t", "decomposition"} == set(p["methods"])
        cov = p["methods"]["corrected_t"]["coverage"]
        assert cov["ci"][0] <= cov["rate"] <= cov["ci"][1] and "test_noise_only" in p
    labels = res["labels"]
    assert [s["n"] for s in labels["sizes"]] == [40, 80] and len(labels["targets"]) == 3
    real = res["real"]
    assert set(real["balanced_accuracy"]) >= {"baseline", "frozen", "finetune", "random_frozen", "simple_logistic"}
    assert "Primary comparison" in real["verdict"] and "bootstrap" not in real["verdict"]
    # the quick run's one repeat leaves the verdict's own method undefined (between_models.MIN_DF): corrected t
    assert VERDICT_INTERVAL != "corrected_t" and f"interval: {METHOD_TITLES['corrected_t']}" in real["verdict"]
    assert "labels_needed" in real
    text = out_md.read_text()
    assert "## Pairs of arms" in text and "## Labels needed" in text and "## The real question" in text
    assert "test-set noise only" in text
    assert text in capsys.readouterr().out
    assert main(["--quick", "-p", "replicate", "3"]) == 2  # a mistyped size: one line, status 2
    assert "Did you mean 'replicates'" in capsys.readouterr().err


def test_rescore_recomputes_the_per_window_methods_from_stored_fold_statistics(tmp_path, capsys):
    run, again = tmp_path / "run.json", tmp_path / "again.json"
    quick = ["--quick", "-y", "experiments: [pairs]", "-p", "repeats", "8"]  # 8 x 2 between-model df: MIN_DF
    assert main([*quick, "--json", str(run)]) == 0
    res = json.loads(run.read_text())
    expected = res["pairs"]["pairs"]["probe_vs_logistic"]["methods"]["hierarchical"]
    for replicate in res["pairs"]["replicates"]:
        for row in replicate.values():
            del row["methods"]["hierarchical"]
            row["methods"]["decomposition"]["ci_low"] = 99.0  # recomputed, not kept
    del res["pairs"]["pairs"]["probe_vs_logistic"]["methods"]["hierarchical"]
    run.write_text(json.dumps(res))
    capsys.readouterr()
    assert main(["--rescore", str(run), "--json", str(again)]) == 0
    out = json.loads(again.read_text())
    assert out["pairs"]["pairs"]["probe_vs_logistic"]["methods"]["hierarchical"] == expected  # same inputs, same floats
    assert all(r["methods"]["decomposition"]["ci_low"] < 1 for rep in out["pairs"]["replicates"] for r in rep.values())
    assert out["command"] == res["command"] and out["rescore_command"].endswith(str(again))
    assert "Intervals recomputed by" in capsys.readouterr().out
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "old.json").write_text(json.dumps({"config": {}, "pairs": {"replicates": [{"p": {}}]}}))
    for bad in ("missing.json", "broken.json", "old.json"):
        assert main(["--rescore", str(tmp_path / bad), "--json", str(tmp_path / "x.json")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and bad in err and not (tmp_path / "x.json").exists()
