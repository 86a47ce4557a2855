"""The decision draws from the verdict's own interval made joint (transfer/joint_posterior.py): its leads are the
comparison table's intervals, its P(best) of two arms the pair's t, and a 5 x 2 run keeps the correlated t."""

import numpy as np
import pytest
from scipy import stats

from moola_lib.transfer.decision import decision
from moola_lib.transfer.intervals import compare_methods
from moola_lib.transfer.joint_posterior import _difference_variances, torgerson
from moola_lib.transfer.stats import fold_metrics

N, FOLDS = 150, 5


def _run(rng, y, assign, skill: float) -> dict:
    """One arm: out-of-fold probabilities [repeats, N, 2] whose accuracy grows with ``skill``, and its fold records."""
    repeats = assign.shape[0]
    logit = skill * (2 * y - 1)[None, :] + rng.standard_normal((repeats, len(y)))
    p1 = 1 / (1 + np.exp(-logit))
    oof = np.stack([1 - p1, p1], axis=-1)
    folds = []
    for r in range(repeats):
        for k in range(FOLDS):
            test = np.flatnonzero(assign[r] == k)
            record = {k: v for k, v in fold_metrics(y[test], oof[r, test]).items() if k != "recall"}
            n_test = len(test)
            folds.append(
                {"repeat": r, "fold": k, "n_train": N - n_test, "n_test": n_test, "test_idx": test.tolist(), **record}
            )
    return {"folds": folds, "oof": oof}


def _results(skills: dict, repeats: int = 5, seed: int = 0) -> tuple[dict, dict, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.tile([0, 1], N // 2)
    groups = np.arange(N) // 3  # sessions of three windows, kept together in a fold
    assign = np.stack([rng.permutation(N // 3).repeat(3) % FOLDS for _ in range(repeats)])
    runs = {arm: _run(rng, y, assign, s) for arm, s in skills.items()}
    results = {
        "protocol": {"primary_metric": "balanced_accuracy", "y": y.tolist(), "groups": groups.tolist()},
        "arms": {a: {"folds": r["folds"], "oof_probabilities": r["oof"].tolist()} for a, r in runs.items()},
    }
    return results, runs, y, groups


def test_the_leads_are_the_comparison_tables_intervals():
    results, runs, y, groups = _results({"baseline": 0.8, "frozen": 1.2, "simple_logistic": 0.9})
    d = decision(results)
    assert d["model"]["interval"] == "hierarchical" and d["recommended"] == "frozen"
    for other, lead in d["lead"].items():
        printed = compare_methods(runs["frozen"], runs[other], y, groups)["balanced_accuracy"]
        assert printed["interval"] == "hierarchical"
        assert [lead["ci_low"], lead["ci_high"]] == pytest.approx([printed["ci_low"], printed["ci_high"]])
    assert d["model"]["mismatch"] < 0.25  # the pairwise variances are nearly a Euclidean distance matrix


def test_two_arms_reduce_to_the_pairs_t():
    results, runs, y, groups = _results({"baseline": 1.0, "frozen": 1.05}, seed=3)
    d = decision(results)
    pair = compare_methods(runs["frozen"], runs["baseline"], y, groups)["balanced_accuracy"]
    p_frozen = float(stats.t.sf(0, pair["df"], loc=pair["mean"], scale=pair["se"]))
    assert d["arms"]["frozen"]["p_best"] == pytest.approx(p_frozen, abs=0.01)  # Monte Carlo error ~0.004
    assert d["model"]["mismatch"] == pytest.approx(0, abs=1e-9)


def test_identical_arms_share_the_probability():
    results, _, _, _ = _results({"baseline": 1.0, "frozen": 0.6})
    results["arms"]["random_frozen"] = results["arms"]["baseline"]
    d = decision(results)
    p = {a: v["p_best"] for a, v in d["arms"].items()}
    assert d["model"]["interval"] == "hierarchical"
    assert p["baseline"] == pytest.approx(p["random_frozen"]) and sum(p.values()) == pytest.approx(1.0)


def test_too_few_repeats_or_no_probabilities_keep_the_correlated_t():
    few, _, _, _ = _results({"baseline": 1.0, "frozen": 1.2}, repeats=2)
    assert decision(few)["model"]["interval"] == "corrected_t"  # 5 x 2: 8 between-model df, the verdict's t too
    old, _, _, _ = _results({"baseline": 1.0, "frozen": 1.2})
    for arm in old["arms"].values():
        del arm["oof_probabilities"]
    assert decision(old)["model"]["interval"] == "corrected_t"


def test_a_euclidean_variance_matrix_is_reproduced_exactly():
    a = np.random.default_rng(1).standard_normal((6, 4))
    cov = a @ a.T
    v = _difference_variances(cov)
    assert _difference_variances(torgerson(v)) == pytest.approx(v)
    bent = v.copy()
    bent[0, 1] = bent[1, 0] = 4 * v[0, 1] + 10  # no covariance has this: the nearest one is kept PSD
    assert np.linalg.eigvalsh(torgerson(bent)).min() > -1e-9
