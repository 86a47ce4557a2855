"""The labelling study's summary and report: per strategy, held-out balanced accuracy against labels spent
(mean and 95% interval over repeats, and the paired difference from ``random``), the labels each strategy
needs to reach random's accuracy at 174 and 500 labels (bootstrap interval over repeats), clicks per label,
the Markdown report and the figure (``moola_lib.studies.labelling_study``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

TARGETS = (174, 500)  # labels at which random's accuracy is the target the others must reach


def _matrix(repeats: list[dict], strategy: str, key: str, checkpoints: list[int]) -> np.ndarray:
    """[repeats, checkpoints] of ``key`` (NaN where the repeat's curve ended before the checkpoint)."""
    out = np.full((len(repeats), len(checkpoints)), np.nan)
    for i, rep in enumerate(repeats):
        got = {row["labels"]: row[key] for row in rep["curves"][strategy]}
        out[i] = [got.get(c, np.nan) for c in checkpoints]
    return out


def _mean_ci(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column means, 95% t-interval half-widths and standard errors over the repeats (NaN-aware)."""
    import warnings

    from scipy.stats import t

    n = np.sum(~np.isnan(m), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a checkpoint with < 2 repeats has no interval
        sd = np.nanstd(m, axis=0, ddof=1)
        se = np.where(n > 1, sd / np.sqrt(n), np.nan)
        return np.nanmean(m, axis=0), t.ppf(0.975, np.maximum(n - 1, 1)) * se, se


def _needed(curve: np.ndarray, target: float, checkpoints: list[int]) -> float:
    hit = np.flatnonzero(curve >= target)
    return float(checkpoints[hit[0]]) if len(hit) else np.inf


def _finite(v):
    """JSON has no infinity or NaN: None stands for 'not within the budget' / 'not reached'."""
    if isinstance(v, np.ndarray):
        return [_finite(x) for x in v]
    return float(v) if np.isfinite(v) else None


def labels_needed(acc: dict, checkpoints: list[int], target_at: int, rng) -> dict:
    """Per strategy: the fewest labels at which its mean curve reaches random's mean at ``target_at``, with
    a 95% bootstrap interval over repeats (inf: not within the budget)."""
    col = checkpoints.index(target_at)
    n = len(acc["random"])
    boots = rng.integers(n, size=(2000, n))
    out = {}
    for strategy, m in acc.items():
        point = _needed(np.nanmean(m, axis=0), np.nanmean(acc["random"][:, col]), checkpoints)
        draws = [_needed(np.nanmean(m[b], axis=0), np.nanmean(acc["random"][b, col]), checkpoints) for b in boots]
        lo, hi = np.percentile(draws, 2.5, method="lower"), np.percentile(draws, 97.5, method="higher")
        out[strategy] = {"labels": _finite(point), "ci95": [_finite(lo), _finite(hi)]}
    return out


def summarise(cfg, repeats: list[dict]) -> dict:
    """Curves (mean, 95% interval), paired differences from random, labels needed for random's targets."""
    checkpoints = cfg.checkpoints()
    acc = {s: _matrix(repeats, s, "balanced_accuracy", checkpoints) for s in cfg.strategies}
    summary = {"checkpoints": checkpoints, "curves": {}, "vs_random": {}, "labels_needed": {}}
    clicks_at = {}
    for s, m in acc.items():
        mean, half, _ = _mean_ci(m)
        clicks = clicks_at[s] = _finite(np.nanmean(_matrix(repeats, s, "clicks", checkpoints), axis=0))
        summary["curves"][s] = {
            "mean": _finite(mean),
            "ci95_half": _finite(half),
            "clicks": clicks,
            "repeats_reaching": np.sum(~np.isnan(m), axis=0),
        }
        if s != "random":
            d_mean, d_half, d_se = _mean_ci(m - acc["random"])
            # smallest paired difference these repeats detect (80% power, 5% two-sided): 2.8 standard errors
            summary["vs_random"][s] = {
                "mean": _finite(d_mean),
                "ci95_half": _finite(d_half),
                "detectable": _finite(2.8 * d_se),
            }
    rng = np.random.default_rng(0)
    for target in (t for t in TARGETS if t in checkpoints and len(repeats) > 1):
        summary["labels_needed"][str(target)] = {
            "random_accuracy": float(np.nanmean(acc["random"][:, checkpoints.index(target)])),
            **labels_needed(acc, checkpoints, target, rng),
        }
        for st in cfg.strategies:  # the clicks (labels + skips) spent by then, on average
            need = summary["labels_needed"][str(target)][st]
            need["clicks"] = None if need["labels"] is None else clicks_at[st][checkpoints.index(int(need["labels"]))]
    return summary


def _fmt_needed(entry: dict, budget: int) -> str:
    point, lo, hi = (f"> {budget}" if v is None else f"{v:.0f}" for v in (entry["labels"], *entry["ci95"]))
    return f"{point} [{lo}, {hi}] labels" + ("" if entry["clicks"] is None else f", {entry['clicks']:.0f} clicks")


def _num(v, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def report(cfg, repeats: list[dict], summary: dict) -> str:
    """The markdown table: accuracy (95% interval) and clicks at a few label counts, difference from random,
    labels needed for random's accuracy at 174 and 500."""
    cps = summary["checkpoints"]
    shown = [c for c in sorted({cfg.seed_labels, 50, 100, 174, 300, cfg.budget}) if c in cps]
    lines = [
        f"{len(repeats)} repeats; settings: {dataclasses.asdict(cfg)}",
        "",
        "| strategy | " + " | ".join(f"{c} labels: acc (clicks), vs random" for c in shown) + " |",
        "|---" * (len(shown) + 1) + "|",
    ]
    for s, cur in summary["curves"].items():
        cells = []
        for i in map(cps.index, shown):
            cell = f"{_num(cur['mean'][i])} ± {_num(cur['ci95_half'][i])} ({_num(cur['clicks'][i], '.0f')})"
            if s in summary["vs_random"]:
                d = summary["vs_random"][s]
                cell += f", {_num(d['mean'][i], '+.3f')} ± {_num(d['ci95_half'][i])} (MDE {_num(d['detectable'][i])})"
            cells.append(cell)
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    for target, entry in summary["labels_needed"].items():
        lines += [
            "",
            (
                f"Labels needed to reach random's accuracy at {target} labels "
                f"({entry['random_accuracy']:.3f}), 95% bootstrap interval over repeats:"
            ),
            "",
        ]
        lines += [f"- {s}: {_fmt_needed(entry[s], cfg.budget)}" for s in cfg.strategies]
    return "\n".join(lines) + "\n"


def figure(summary: dict, path: Path) -> None:
    """Held-out balanced accuracy against labels (left) and the paired difference from random (right), mean
    and 95% band per strategy (a small PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
    x, names = np.asarray(summary["checkpoints"]), list(summary["curves"])
    panels = ((summary["curves"], "held-out balanced accuracy"), (summary["vs_random"], "difference from random"))
    for ax, (panel, ylabel) in zip(axes, panels):
        for s, cur in panel.items():
            mean, half = (np.array(cur[k], dtype=float) for k in ("mean", "ci95_half"))  # None -> NaN
            ax.plot(x, mean, label=s, lw=1.4, color=f"C{names.index(s)}")
            ax.fill_between(x, mean - half, mean + half, alpha=0.15, color=f"C{names.index(s)}")
        ax.set(xlabel="labels spent", ylabel=ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[1].axhline(0, color="k", lw=0.8)
    fig.suptitle("Simulated labelling (issue 21): mean over repeats, 95% interval", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
