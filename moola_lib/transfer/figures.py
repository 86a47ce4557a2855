"""Figures and tables of the transfer evaluation (each function returns its figure or frame).

Tables can be longer than pandas' display limits (the comparisons table: 105 rows, cut at 60 with "...");
a notebook displays them inside ``untruncated()``, which shows every row, column and cell whole.

They draw what transfer_results.json and the labelled set hold, each arm in the title and colour of its
row in ``arms.TABLE``; pooled encoder features for the embedding projection come from
``moola_lib.pretraining.model.embed_windows``.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from ..features.relativity import FEATURE_NAMES
from ..labels.sets import LabelledSet
from .arms import arm as arm_row
from .config import LABEL_METRICS, LOWER_IS_BETTER, METRICS
from .intervals import interval_method

BAR_METRICS = LABEL_METRICS + ("roc_auc",)  # the metrics in percent
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")


def _ci(stat: Mapping, scale: float = 100.0, signed: bool = False, digits: int = 1) -> str:
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    return (
        f"{fmt.format(scale * stat['mean'])} [{fmt.format(scale * stat['ci_low'])}, "
        f"{fmt.format(scale * stat['ci_high'])}]"
    )


def labelled_table(labelled: LabelledSet) -> pd.DataFrame:
    """Class counts, overlap groups and time span of the labelled set."""
    s = labelled.summary()
    rows = {f"windows labelled {c}": n for c, n in s["class_counts"].items()}
    rows.update(
        {
            "windows": s["n_windows"],
            "groups of overlapping windows": s["n_groups"],
            "first window starts": s["first_start"],
            "last window starts": s["last_start"],
            "invalid (warm-up) bars": s["invalid_bars"],
            "features": "cold start (window alone)" if s["cold_start"] else "full history",
            "source": s["source"]["path"],
        }
    )
    if labelled.truth is not None:
        rows["labels flipped (noise)"] = int(labelled.truth["flipped"].sum())
    return pd.DataFrame({"value": {k: str(v) for k, v in rows.items()}})


EXAMPLE_FEATURES = ("close_norm", "dist_to_prev_SH", "dist_to_prev_SL", "range_z")


def labelled_examples(labelled: LabelledSet, n: int = 3, features=EXAMPLE_FEATURES) -> plt.Figure:
    """The first ``n`` windows of each class: a few feature traces, the labelled pattern shaded."""
    cols = [FEATURE_NAMES.index(f) for f in features]
    fig, axes = plt.subplots(
        len(labelled.classes), n, figsize=(4 * n, 2.6 * len(labelled.classes)), sharex=True, squeeze=False
    )
    for c, name in enumerate(labelled.classes):
        for j, i in enumerate(np.flatnonzero(labelled.y == c)[:n]):
            ax = axes[c, j]
            for f, col in zip(features, cols):
                ax.plot(labelled.X[i, :, col], lw=1, label=f)
            lo, hi = labelled.expansion[i]
            if lo >= 0 and hi >= 0:
                ax.axvspan(lo, hi, color="0.85", zorder=0)
            ax.set_title(f"{labelled.window_id[i]}: {name}", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.supxlabel("bar in window (shaded: expansion)")
    fig.tight_layout()
    return fig


def metrics_table(results: Mapping) -> pd.DataFrame:
    """Per arm: every metric as 'mean [95% CI]' in percent (the log-loss in nats)."""
    rows = {}
    for arm, a in results["arms"].items():
        rows[arm_row(arm).title] = {
            (name + " (nats)" if name in LOWER_IS_BETTER else name).replace("_", " "): _ci(stat, 1.0, digits=3)
            if name in LOWER_IS_BETTER
            else _ci(stat)
            for name, stat in a["summary"].items()
        }
    return pd.DataFrame(rows).T


def untruncated():
    """A context in which pandas displays a frame whole: every row, column and full cell text."""
    return pd.option_context("display.max_rows", None, "display.max_columns", None, "display.max_colwidth", None)


def decision_table(decided: Mapping) -> pd.DataFrame:
    """Per arm of a decision (``decision.decision``), best first: its mean on the decision's metric, its
    probability of being the best, the expected loss of choosing it, and the recommended arm's lead over
    it with the 95% interval (positive: the recommended arm is better); pp, nats for the log-loss."""
    metric, arms = decided["metric"], decided["arms"]
    scale, digits, unit = (1.0, 3, "nats") if metric in LOWER_IS_BETTER else (100.0, 1, "pp")
    score = f"{metric.replace('_', ' ')} ({'nats' if unit == 'nats' else '%'})"
    rows = {}
    for arm in sorted(arms, key=lambda a: arms[a]["expected_loss"]):
        lead = decided["lead"].get(arm)
        rows[arm_row(arm).title] = {
            "arm": arm,
            score: f"{scale * arms[arm]['mean']:.{digits}f}",
            "P(best)": f"{arms[arm]['p_best']:.2f}",
            f"expected loss ({unit})": f"{scale * arms[arm]['expected_loss']:.{digits}f}",
            f"recommended arm ahead by ({unit}) [95%]": _ci(lead, scale, True, digits) if lead else "recommended",
        }
    return pd.DataFrame(rows).T


def differences_table(results: Mapping) -> pd.DataFrame:
    """Per comparison ("arm vs reference", the primary one first) and metric: the difference [95% CI]
    (pp; nats for the log-loss) and the method that made the interval, the minimal detectable effect, p
    (Holm-corrected for the secondary comparisons) and the test-window bootstrap, which holds the test-set
    noise only and is no CI of the difference."""
    rows = []
    for key, comp in results["comparisons"].items():
        for m in METRICS:
            d = comp[m]
            scale, digits = (1.0, 3) if m in LOWER_IS_BETTER else (100.0, 1)
            boot = d.get("test_noise_only_ci")
            rows.append(
                {
                    "comparison": key + (" (primary)" if comp.get("primary") else ""),
                    "metric": m.replace("_", " "),
                    "difference [95% CI]": _ci(d, scale, True, digits),
                    "detectable effect (80% power)": f"{scale * d['mde']:.{digits}f}",
                    "interval": interval_method(d),
                    "p": f"{d['p_value']:.3g}",
                    "p (Holm)": f"{d['p_holm']:.3g}" if "p_holm" in d else "primary",
                    "test-set noise only": f"[{scale * boot[0]:+.{digits}f}, {scale * boot[1]:+.{digits}f}]"
                    if boot
                    else "-",
                }
            )
    return pd.DataFrame(rows).set_index(["comparison", "metric"])


def metrics_bars(results: Mapping, metrics=BAR_METRICS) -> plt.Figure:
    """Grouped bars per metric and arm with 95% CI error bars; chance level dashed."""
    arms = list(results["arms"])
    fig, ax = plt.subplots(figsize=(5 + 2.2 * len(metrics), 3.8))
    width = 0.8 / len(arms)
    for j, arm in enumerate(arms):
        s = results["arms"][arm]["summary"]
        mean = np.array([s[m]["mean"] for m in metrics])
        err = np.array([[s[m]["mean"] - s[m]["ci_low"], s[m]["ci_high"] - s[m]["mean"]] for m in metrics]).T
        x = np.arange(len(metrics)) + (j - (len(arms) - 1) / 2) * width
        ax.bar(
            x,
            100 * mean,
            width,
            yerr=100 * np.nan_to_num(err),
            capsize=3,
            color=arm_row(arm).colour,
            label=arm_row(arm).title,
        )
    ax.axhline(100 / len(results["data"]["classes"]), color="k", ls="--", lw=0.8, label="chance")
    ax.set_xticks(np.arange(len(metrics)), [m.replace("_", " ") for m in metrics])
    ax.set_ylabel("% (mean over folds, 95% CI)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def learning_curve(results: Mapping, metric: str = "balanced_accuracy") -> plt.Figure:
    """Metric against the number of training windows, one line per arm, 95% CI bands."""
    fig, ax = plt.subplots(figsize=(9.5, 3.8))
    for arm, points in results["learning_curve"].items():
        n = [p["n_train"] for p in points]
        mean = np.array([p[metric]["mean"] for p in points])
        lo = np.array([p[metric]["ci_low"] for p in points])
        hi = np.array([p[metric]["ci_high"] for p in points])
        row = arm_row(arm)
        ax.plot(n, 100 * mean, "o-", color=row.colour, label=row.title)
        ax.fill_between(n, 100 * lo, 100 * hi, color=row.colour, alpha=0.1)
    ax.axhline(100 / len(results["data"]["classes"]), color="k", ls="--", lw=0.8)
    ax.set_xlabel("training windows per fold")
    ax.set_ylabel(f"{metric.replace('_', ' ')} %")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def confusion_matrices(results: Mapping) -> plt.Figure:
    """Out-of-fold confusion matrix of each arm (counts summed over repeats, row-normalised colour)."""
    classes = results["data"]["classes"]
    arms = list(results["arms"])
    fig, axes = plt.subplots(1, len(arms), figsize=(3.6 * len(arms), 3.4), squeeze=False)
    for ax, arm in zip(axes[0], arms):
        cm = np.asarray(results["arms"][arm]["confusion"])
        share = cm / cm.sum(axis=1, keepdims=True).clip(min=1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(classes)), classes, fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_title(arm_row(arm).title, fontsize=9)
    axes[0, 0].set_ylabel("true")
    fig.tight_layout()
    return fig


def embedding_projection(embeddings: Mapping[str, np.ndarray], labelled: LabelledSet) -> plt.Figure:
    """PCA (2-D) of pooled encoder features, one panel per encoder, points coloured by label."""
    fig, axes = plt.subplots(1, len(embeddings), figsize=(4.6 * len(embeddings), 4), squeeze=False)
    for ax, (title, Z) in zip(axes[0], embeddings.items()):
        pca = PCA(n_components=2).fit(Z)
        P = pca.transform(Z)
        for c, name in enumerate(labelled.classes):
            ax.scatter(*P[labelled.y == c].T, s=12, alpha=0.7, color=CLASS_COLORS[c % len(CLASS_COLORS)], label=name)
        ev = 100 * pca.explained_variance_ratio_
        ax.set_xlabel(f"PC1 ({ev[0]:.0f}%)")
        ax.set_ylabel(f"PC2 ({ev[1]:.0f}%)")
        ax.set_title(title, fontsize=9)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def overlap_table(overlap: Mapping | None) -> pd.DataFrame:
    """Labelled windows inside each of the encoder's pretraining splits ("unknown" where it cannot be
    known: no training_results.json, or windows without timestamps)."""
    if overlap is None or not overlap.get("period_known", True):
        return pd.DataFrame({"windows": {"pretraining period": "unknown (no training_results.json)"}})
    rows = {"without timestamps (overlap unknown)": overlap["without_timestamps"]}
    if overlap["status"] != "unknown":
        rows.update(
            {
                f"inside {name} split {lo}..{hi}": overlap["inside_split"][name]
                for name, (lo, hi) in overlap["splits"].items()
            }
        )
        data = overlap["encoder_data_path"] or f"synthetic (seed {overlap['encoder_synthetic_seed']})"
        rows.update(
            {
                "seen in pretraining (train/val, not excluded)": overlap["seen"],
                "in excluded periods": overlap["excluded"],
                "encoder data": data,
            }
        )
    return pd.DataFrame({"windows": {k: str(v) for k, v in rows.items()}})
