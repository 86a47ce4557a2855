"""Figures and small tables of a pretraining run and of a sweep: splits, the loss against the reference
predictors (overall and per feature), loss curves, reconstructions, the sweep's val curves, several runs'
curves overlaid (compare.ipynb) (matplotlib; every function returns its figure or frame). They draw what
they are given: model inference for a figure is in ``moola_lib.pretraining.model``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..features.relativity import FEATURE_NAMES

# ----------------------------------------------------------------------------------------------------
# pretraining


def splits_table(summary: Mapping) -> pd.DataFrame:
    """The split summary of ``load_pretrain_data(...).summary`` (or training_results.json["data"])."""
    frame = pd.DataFrame(summary["splits"]).T[["start", "end", "bars", "windows", "first_bar", "last_bar"]]
    frame.columns = ["start (incl.)", "end (excl.)", "bars", "windows", "first bar", "last bar"]
    return frame


# reference predictors of results written before training_results.json named them (masked reconstruction)
_MASKED_TITLES = {"train_mean": "predict the train mean", "interpolation": "linear interpolation"}


def _reference_titles(results: Mapping) -> dict[str, str]:
    """Reference predictor -> its name in words, the per-feature better one left out (the objective's,
    from ``reference_titles``; results without it come from masked reconstruction)."""
    titles = results.get("reference_titles", _MASKED_TITLES)
    return {key: title for key, title in titles.items() if key != "better_reference"}


def reference_table(results: Mapping) -> pd.DataFrame:
    """Best model's loss next to the objective's reference predictors, per evaluated split (masked
    reconstruction: the train mean and linear interpolation; forecast: the train mean and persistence)
    and, per feature, the better of them (results written before that reference existed show the better
    one overall instead)."""
    titles, rows = _reference_titles(results), {}
    for split, refs in results["reference_losses"].items():
        model = results["best_val_loss"] if split == "val" else (results.get("test") or {}).get("loss")
        losses = {title: refs[key]["loss"] for key, title in titles.items()}
        better = refs.get("better_reference", {}).get("loss", min(losses.values()))
        rows[split] = {
            "model (best epoch)": model,
            **losses,
            "per feature the better reference": better,
            "model / per-feature better reference": model / better if model is not None else None,
        }
    return pd.DataFrame(rows).T


def reference_verdict(results: Mapping) -> str:
    """One sentence: does the best checkpoint beat the reference predictors on the val split?"""
    refs, titles = results["reference_losses"]["val"], _reference_titles(results)
    model = results["best_val_loss"]
    beaten = [title for key, title in titles.items() if model < refs[key]["loss"]]
    if len(beaten) == len(titles):
        verdict = "beats both reference predictors"
    elif beaten:
        verdict = f"beats only one reference ({beaten[0]}); it has not learned more than the better reference"
    else:
        verdict = "beats neither reference predictor: it has learned nothing useful yet"
    losses = ", ".join(f"{title} {refs[key]['loss']:.4f}" for key, title in titles.items())
    text = (
        f"Best val loss {model:.4f} (epoch {results['best_epoch']} of {results['epochs_completed']}, "
        f"{results['stop_reason']}) {verdict}.\nReference losses on the same masks: {losses}"
    )
    if "better_reference" in refs:
        better = refs["better_reference"]["loss"]
        change = 100 * (model / better - 1)
        text += (
            f", per feature the better of the two {better:.4f} (the model's loss is "
            f"{abs(change):.1f}% {'below' if change < 0 else 'above'} it)"
        )
    return text + "."


def per_feature_table(results: Mapping, split: str = "val") -> pd.DataFrame:
    """Per feature: the best model's loss, the references, and model / better reference (below 1: the
    model predicts the feature better than either reference)."""
    table = pd.DataFrame(results["per_feature_losses"][split]).T
    table = table[["model", *_reference_titles(results), "better_reference"]]
    table["model / better reference"] = table["model"] / table["better_reference"]
    return table


def per_feature_verdict(results: Mapping, split: str = "val", *, margin: float = 0.02) -> str:
    """In words: which features the model reconstructs better than both references (by more than
    ``margin``, relative), which about as well as the better one, and which worse."""
    ratio = per_feature_table(results, split)["model / better reference"].sort_values()
    groups = {
        "better": ratio[ratio < 1 - margin],
        "tie": ratio[(ratio >= 1 - margin) & (ratio <= 1 + margin)],
        "worse": ratio[ratio > 1 + margin],
    }

    def listed(series):  # the model's loss relative to the better reference
        return ", ".join(
            f"{name} ({abs(100 * (r - 1)):.0f}% {'lower' if r < 1 else 'higher'})" for name, r in series.items()
        )

    lines = [
        f"On the {split} split the model reconstructs "
        + (
            f"{len(groups['better'])} of {len(ratio)} features better than both references: "
            f"{listed(groups['better'])} (loss relative to the better reference)."
            if len(groups["better"])
            else "no feature better than both references."
        )
    ]
    if len(groups["tie"]):
        lines.append(f"About as well as the better reference (within {100 * margin:.0f}%): {listed(groups['tie'])}.")
    if len(groups["worse"]):
        lines.append(
            f"Worse than the better reference: {listed(groups['worse'])}: there it has not learned "
            "what the reference already knows."
        )
    return "\n".join(lines)


def reconstruction_features(results: Mapping, split: str = "val", n_good: int = 2) -> list[str]:
    """Features for the reconstruction figure: the ``n_good`` the model reconstructs best relative to
    the better reference, then the one it reconstructs worst (the contrast)."""
    ratio = per_feature_table(results, split)["model / better reference"].sort_values()
    return [*ratio.index[:n_good], ratio.index[-1]]


def reference_curves(results: Mapping, split: str = "val") -> dict[str, float]:
    """Title -> loss of every reference predictor on ``split``, the per-feature better one last: the
    ``references`` of ``loss_curves``."""
    refs = results["reference_losses"][split]
    titles = {**_reference_titles(results), "better_reference": "per feature the better"}
    return {title: refs[key]["loss"] for key, title in titles.items() if key in refs}


def loss_curves(history: Sequence[Mapping], references: Mapping[str, float] | None = None) -> plt.Figure:
    """Train and val loss per epoch against the reference losses, and the learning rate.

    ``history``: one mapping per epoch with ``epoch``, ``train_loss``, ``val_loss`` and ``lr``;
    ``references``: label -> loss (e.g. "predict the train mean", "linear interpolation"; ``reference_curves``)."""
    h = pd.DataFrame(list(history))
    fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [2.2, 1]})
    ax.plot(h["epoch"], h["train_loss"], "o-", ms=3, label="train (Huber on the hidden steps)")
    ax.plot(h["epoch"], h["val_loss"], "o-", ms=3, label="val (fixed masks)")
    styles = iter([":", "--", "-."])
    for label, value in (references or {}).items():
        ax.axhline(value, color="0.35", ls=next(styles, ":"), lw=1.2, label=f"reference: {label} ({value:.3f})")
    best = h["val_loss"].idxmin()
    ax.scatter(
        [h["epoch"][best]],
        [h["val_loss"][best]],
        s=80,
        facecolors="none",
        edgecolors="r",
        zorder=3,
        label=f"best val {h['val_loss'][best]:.4f} (epoch {h['epoch'][best]})",
    )
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Pretraining loss (hidden steps)")
    ax.legend(fontsize=8)
    ax_lr.plot(h["epoch"], h["lr"], "o-", ms=3, color="tab:purple")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_title("learning rate (end of epoch)")
    for a in (ax, ax_lr):
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    fig.tight_layout()
    return fig


def reconstructions(
    x: np.ndarray,
    mask: np.ndarray,
    recon: np.ndarray,
    *,
    names: Sequence[str] = FEATURE_NAMES,
    features: Sequence[str] = ("close_norm", "range_z", "dist_to_prev_SH"),
    max_windows: int = 3,
) -> plt.Figure:
    """Original feature traces, masked positions (shaded) and the model's reconstruction there.

    x, recon: [B, T, F]; mask: bool [B, T]."""
    n = min(max_windows, len(x))
    fig, axes = plt.subplots(n, len(features), figsize=(4.6 * len(features), 2.4 * n), squeeze=False)
    for i in range(n):
        m = np.asarray(mask[i], dtype=bool)
        t = np.arange(x.shape[1])
        for k, name in enumerate(features):
            j = list(names).index(name)
            ax = axes[i, k]
            for pos in t[m]:
                ax.axvspan(pos - 0.5, pos + 0.5, color="orange", alpha=0.25, lw=0)
            ax.plot(t, x[i, :, j], color="k", lw=0.9, label="original")
            ax.scatter(t[m], recon[i, m, j], color="tab:blue", s=14, zorder=3, label="reconstruction (masked)")
            if i == 0:
                ax.set_title(name)
            if k == 0:
                ax.set_ylabel(f"window {i}")
    axes[0, -1].legend(fontsize=7, loc="upper right")
    fig.suptitle("Masked validation windows: shaded = masked steps (hidden from the encoder)", y=1.0)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------
# sweeps


def sweep_val_curves(rows: Sequence[Mapping]) -> plt.Figure:
    """Val loss per epoch of every finished sweep setting, overlaid."""
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for row in rows:
        if row.get("status") == "finished" and row.get("history"):
            h = pd.DataFrame(row["history"])
            ax.plot(h["epoch"], h["val_loss"], "o-", ms=3, label=row["name"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("val loss")
    ax.set_title("Validation loss per setting")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def run_curves(runs: Mapping[str, Mapping]) -> plt.Figure:
    """Several runs overlaid (name -> training_results.json): val loss (solid) and train loss (faint, dashed)
    per epoch, each run's per-feature better reference on the val masks (dotted, its colour), and val loss
    against the training time so far (which run gets there first)."""
    fig, (ax, ax_time) = plt.subplots(1, 2, figsize=(13, 4.6))
    for i, (name, results) in enumerate(runs.items()):
        h, color = pd.DataFrame(results["history"]), f"C{i % 10}"
        ax.plot(h["epoch"], h["val_loss"], "o-", ms=3, color=color, label=name)
        ax.plot(h["epoch"], h["train_loss"], "--", lw=1, alpha=0.5, color=color)
        better = reference_table(results).loc["val", "per feature the better reference"]
        ax.axhline(better, color=color, ls=":", lw=1)
        ax_time.plot(h["seconds"].cumsum(), h["val_loss"], "o-", ms=3, color=color, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (hidden steps)")
    ax.set_title("val (solid), train (dashed), per-feature better reference (dotted)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_time.set_xlabel("seconds of training (epochs incl. validation)")
    ax_time.set_ylabel("val loss")
    ax_time.set_title("val loss against time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
