"""True differences between the validation's arms, measured on the generator (``validate.py``).

What a cross-validated difference estimates: the expected score difference of two methods each trained
on a training fold's worth of windows (n_train = n_labelled x (folds - 1) / folds, with the protocol's
inner early-stopping / regularisation split) and tested on new windows. Here each draw is a fresh
labelled set of n_train windows from its own market (independent market seed); every arm is trained on
it as the protocol would, and scored (balanced accuracy) on one large pool of held-out windows drawn
from further independent markets. The true difference of a pair is the mean over draws of the paired
score difference; its standard error (draws and the pool's finite size) is reported with it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..labels.sets import LabelledSet
from ..transfer.fits import arm_probabilities
from ..transfer.folds import config_groups, fold_groups, inner_split
from ..transfer.intervals import cluster_variance_of_mean, per_window_scores
from .validation_arms import PROTOCOL_ARM, arm_features, inputs_for

POOL_MARKET_SEED = 3_000_000
TRUTH_MARKET_SEED = 2_000_000


def subset(a: LabelledSet, keep: np.ndarray) -> LabelledSet:
    """The windows of ``a`` where ``keep`` (a boolean mask), in their order."""
    return dataclasses.replace(
        a,
        X=a.X[keep],
        valid=a.valid[keep],
        y=a.y[keep],
        window_id=a.window_id[keep],
        start=a.start[keep],
        end=a.end[keep],
        expansion=a.expansion[keep],
        groups=a.groups[keep],
        truth=None,
    )


def concatenate(a: LabelledSet, b: LabelledSet) -> LabelledSet:
    """One set holding the windows of ``a`` then ``b`` (groups of ``b`` shifted apart from ``a``'s)."""
    return dataclasses.replace(
        a,
        X=np.concatenate([a.X, b.X]),
        valid=np.concatenate([a.valid, b.valid]),
        y=np.concatenate([a.y, b.y]),
        window_id=np.concatenate([a.window_id, b.window_id]),
        start=a.start.append(b.start),
        end=a.end.append(b.end),
        expansion=np.concatenate([a.expansion, b.expansion]),
        groups=np.concatenate([a.groups, b.groups + a.groups.max() + 1]),
        truth=None,
    )


def held_out_pool(make_set, n_markets: int, per_market: int) -> LabelledSet:
    """The test pool: ``per_market`` windows from each of ``n_markets`` independent markets."""
    pool = make_set(per_market, POOL_MARKET_SEED, POOL_MARKET_SEED)
    for j in range(1, n_markets):
        pool = concatenate(pool, make_set(per_market, POOL_MARKET_SEED + j, POOL_MARKET_SEED + j))
    return pool


def truth_draw(
    m: int, arms, make_set, n_train: int, pool: LabelledSet, pool_feats: dict, encs: dict, template, cfg
) -> dict:
    """Per-window balanced-accuracy scores on the pool (their mean is the balanced accuracy) of every arm
    trained on draw ``m`` (its own market)."""
    train = make_set(n_train, TRUTH_MARKET_SEED + m, TRUTH_MARKET_SEED + m)
    both = concatenate(train, pool)
    feats = {k: np.concatenate([v, pool_feats[k]]) for k, v in arm_features(train, encs).items()}
    groups = config_groups(train, cfg)
    fit, val = inner_split(np.arange(n_train), train.y, groups, cfg.inner_val_fraction, cfg.seed + m)
    test = np.arange(n_train, len(both))
    out = {}
    for arm in arms:
        probas, _ = arm_probabilities(
            PROTOCOL_ARM[arm], inputs_for(arm, both, feats, template), both.y, (fit, val, test), cfg, cfg.seed + m
        )
        out[arm] = per_window_scores(pool.y, np.mean(probas, axis=0), "balanced_accuracy")
    return out


def true_differences(draws: list[dict], pairs: dict, pool: LabelledSet) -> dict:
    """Per pair: the mean paired difference over the draws that ran both arms (each draw: arm -> per-window
    scores on the pool), its standard error from the draws and from the pool's finite size (cluster-robust
    over the pool's groups, of the draw-averaged per-window difference), and the number of draws."""
    clusters = fold_groups(pool.groups, pool.start, pool.end)  # sessions (merged across markets: conservative)
    out = {}
    for name, (a, b) in pairs.items():
        e = np.array([x[a] - x[b] for x in draws if a in x and b in x])
        if len(e) < 2:
            continue
        d = e.mean(axis=1)
        var_draws = np.var(d, ddof=1) / len(d)
        var_pool = cluster_variance_of_mean(e.mean(axis=0), clusters)
        out[name] = {
            "difference": float(d.mean()),
            "se": math.sqrt(var_draws + var_pool),
            "draws": len(d),
            "se_draws": math.sqrt(var_draws),
            "se_pool": math.sqrt(var_pool),
        }
    return out
