"""Which paired comparisons a run reports, and how their p-values are read.

One comparison is primary (``TransferConfig.primary``, named before the run; default "frozen vs
baseline"): its p-value is read as is. Every other comparison is secondary: for each metric its p-values
get Holm's correction over the secondary family (``p_holm``), so that looking at many comparisons does
not manufacture a finding (every neural arm against every non-neural arm is in the family, so picking the
best non-neural arm afterwards for the verdict adds no test). Each comparison carries, per metric, the
paired difference with the interval, p-value and minimal detectable effect (``mde``, at ``power`` and
``alpha``, same unit as the difference) of
``intervals.VERDICT_INTERVAL``, the validated methods' numbers (``intervals``; the decomposition, which
did not cover in every pair of the validation, apart under ``unvalidated_intervals``) and, for the label
metrics, the
paired bootstrap over groups of the fixed out-of-fold predictions (``test_noise_only_ci``: the test
windows' noise alone, not a confidence interval of the difference between the methods).
"""

from __future__ import annotations

import numpy as np

from .arms import arm as arm_row
from .arms import reference_arm, result_arms
from .config import LABEL_METRICS, METRICS, TransferConfig
from .intervals import compare_methods
from .stats import holm, paired_bootstrap


def comparison_pairs(cfg: TransferConfig) -> list[tuple[str, str]]:
    """The primary pair first, then: every arm but the non-neural ones against the baseline, each
    pretrained probe against each control probe (frozen vs random_frozen), and the baseline and each
    pretrained arm against each non-neural arm (``arms.TABLE`` roles)."""
    arms = result_arms(cfg.arms)
    role = {a: arm_row(a).role for a in arms}
    neural = [a for a in arms if role[a] in ("reference", "pretrained")]
    pairs = [cfg.primary_pair()]
    pairs += [(a, reference_arm()) for a in arms if role[a] in ("pretrained", "control")]
    pairs += [
        (a, c)
        for a in arms
        if role[a] == "pretrained" and arm_row(a).kind == "probe"
        for c in arms
        if role[c] == "control"
    ]
    pairs += [(a, ref) for ref in arms if role[ref] == "non_neural" for a in neural]
    unique = []
    for pair in pairs:
        if pair not in unique and pair[::-1] not in unique:
            unique.append(pair)
    return unique


def comparisons(y: np.ndarray, groups: np.ndarray, n_classes: int, main: dict, cfg: TransferConfig) -> dict:
    """{"arm vs reference": {arm, reference, primary, metric -> statistics}} for ``comparison_pairs``."""
    out = {}
    for i, (arm, ref) in enumerate(comparison_pairs(cfg)):
        comp = {
            "arm": arm,
            "reference": ref,
            "primary": i == 0,
            **compare_methods(main[arm], main[ref], y, groups, cfg.alpha, cfg.power),
        }
        if cfg.n_bootstrap:
            boot = paired_bootstrap(
                y,
                main[arm]["oof"].argmax(-1),
                main[ref]["oof"].argmax(-1),
                groups,
                n_classes,
                cfg.n_bootstrap,
                cfg.seed,
                cfg.alpha,
            )
            for m in LABEL_METRICS:
                comp[m]["test_noise_only_ci"] = [boot[m]["ci_low"], boot[m]["ci_high"]]
        out[f"{arm} vs {ref}"] = comp
    secondary = [c for c in out.values() if not c["primary"]]
    for m in METRICS:
        for comp, p in zip(secondary, holm([c[m]["p_value"] for c in secondary])):
            comp[m]["p_holm"] = p
    return out
