"""The frozen probes' read-out choice against the truth: on every set of a truth study folder, each of
params/transfer_full.yaml's eight read-outs fitted as the probe fits it (``linear.fit_logistic`` on the set's
inner split, C chosen on its validation windows), scored on the study's fresh test set; with each read-out's
inner-validation log-loss (what the protocol chooses by today) and its 5-fold cross-validated log-loss on all
of the set's windows (a steadier criterion). Rules for choosing are then compared offline (--report).

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice python docs/experiments/readout_choice.py TRUTH_DIR OUT.json \
        --probes masked64:frozen 2x64:random_frozen --sizes 50 100
    python docs/experiments/readout_choice.py TRUTH_DIR OUT.json --report

Resumable (OUT.json is rewritten after every set). The "current" rule must reproduce the truth study's own
score of the probe on every set: --report prints the largest difference. VALIDATION.md, "The probes' read-out choice".
"""

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from moola_lib.pretraining.checkpoints import load_encoder
from moola_lib.studies.truth import TruthConfig, labelled_set, test_set
from moola_lib.studies.truth_report import difference, interval_text
from moola_lib.transfer.arms import arm as arm_row
from moola_lib.transfer.fits import fit_seed, probe_encoder
from moola_lib.transfer.folds import config_groups, inner_split, make_folds
from moola_lib.transfer.intervals import per_window_scores
from moola_lib.transfer.linear import fit_logistic
from moola_lib.transfer.readouts import readout_features
from moola_lib.util.io import atomic_write_text

RULES = {
    "current (8, inner split)": ("val", None),
    "no last:* (6, inner split)": ("val", lambda r: not r.startswith("last:")),
    "current (8, 5-fold CV)": ("cv", None),
    "no last:* (6, 5-fold CV)": ("cv", lambda r: not r.startswith("last:")),
}


def features(encoder, labelled, readouts):
    X, V = torch.as_tensor(labelled.X), torch.as_tensor(labelled.valid)
    return readout_features(encoder, X, V, labelled.expansion, readouts)


def cv_log_loss(Z, y, fold):
    """Mean held-out log-loss over the folds ``fold`` numbers, C chosen per fold on the held-out fold (the same
    for every read-out, so the criterion compares like with like)."""
    losses = [fit_logistic(Z, y, np.flatnonzero(fold != k), np.flatnonzero(fold == k)).val_log_loss for k in set(fold)]
    return float(np.mean(losses))


def one_set(tc, cfg, size, k, encoder, test_features, test):
    train = labelled_set(dataclasses.replace(tc, sizes=[size]), 0, k)  # sets are keyed by size, not by place
    seed = fit_seed(cfg.seed, size, k)
    groups = config_groups(train, cfg)
    fit, val = inner_split(np.arange(len(train)), train.y, groups, cfg.inner_val_fraction, seed)
    fold = make_folds(train.y, groups, 5, 1, seed)[0]  # the 5-fold criterion's folds, one set for every read-out
    out = {}
    for r, Z in features(encoder, train, cfg.readouts).items():
        m = fit_logistic(Z, train.y, fit, val, cfg.class_weighting)
        test_score = per_window_scores(test.y, m.predict_proba(test_features[r]), "balanced_accuracy").mean()
        out[r] = {"val": m.val_log_loss, "cv": cv_log_loss(Z, train.y, fold), "test": float(test_score)}
    return out


def run(args):
    d = json.loads((args.truth / "truth.json").read_text())
    tc = TruthConfig.from_dict(d["config"])
    cfg = tc.transfer_config()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    test = test_set(tc)
    for probe in args.probes:
        name, arm = probe.split(":")
        # a random encoder is built from its architecture's first encoder, as the study's arm plan does
        name = next((n for n, a in d["encoders"].items() if a == name), name)
        path = args.truth / "encoders" / name / "checkpoint_best.pt"
        encoder = probe_encoder(
            arm_row(arm), load_encoder(path, input_size=None, hidden_size=None, num_layers=None), cfg.seed
        )
        test_features = features(encoder, test, cfg.readouts)
        for size in args.sizes:
            for k in sorted(d["sets"][str(size)], key=int):
                if k in results.get(probe, {}).get(str(size), {}):
                    continue
                row = one_set(tc, cfg, size, int(k), encoder, test_features, test)
                row["truth"] = d["sets"][str(size)][k]["scores"][probe]
                results.setdefault(probe, {}).setdefault(str(size), {})[k] = row
                atomic_write_text(args.out, json.dumps(results, indent=1))
                print(probe, size, k, f"truth {100 * row['truth']:.1f}", flush=True)


def choose(row, criterion, keep):
    candidates = [r for r in row if r != "truth" and (keep is None or keep(r))]
    return min(candidates, key=lambda r: round(row[r][criterion], 10))


def report(args):
    results = json.loads(args.out.read_text())
    for probe, sizes in results.items():
        for size, sets in sizes.items():
            rows = [sets[k] for k in sorted(sets, key=int)]
            scores = {
                rule: np.array([r[choose(r, c, keep)]["test"] for r in rows]) for rule, (c, keep) in RULES.items()
            }
            readouts = [r for r in rows[0] if r != "truth"]
            scores.update({f"always {r}": np.array([row[r]["test"] for row in rows]) for r in readouts})
            mismatch = max(abs(s - r["truth"]) for s, r in zip(scores["current (8, inner split)"], rows))
            picked = [choose(r, "val", None) for r in rows]
            print(
                f"== {probe} at {size}: {len(rows)} sets; current rule vs the truth study: max |diff| {mismatch:.2g};"
                f" current picks last:* on {sum(p.startswith('last:') for p in picked)}"
            )
            base = scores["current (8, inner split)"]
            for rule, s in scores.items():
                versus = interval_text(difference(s, base))
                print(f"  {rule:28s} {100 * s.mean():5.1f}  min {100 * s.min():5.1f}  vs current {versus}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("truth", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--probes", nargs="+", default=["masked64:frozen"])
    p.add_argument("--sizes", nargs="+", type=int, default=[50, 100, 174])
    p.add_argument("--report", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    report(a) if a.report else run(a)
