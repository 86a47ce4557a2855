"""Tables and the figure of the truth study (``truth``): what VALIDATION.md quotes.

``summary(results)``: per size, each arm's true balanced accuracy (mean over the fresh sets, its standard
error and the sets it rests on) and the paired differences the question needs, over the same sets: for each
encoder, ``frozen`` against its architecture's ``baseline`` and ``random_frozen`` (how much of a gain is the
pretrained weights rather than the read-out), every pretrained arm against the baseline and against the best
non-neural arm of that size (the one with the highest true mean). A difference's interval is the t interval
over sets; ``sets_for_2pp`` is how many sets an interval of +-2 pp needs at that spread. The test set adds
its own sampling noise, common to every set: ``se_test`` (from the per-window scores, OUT_DIR/sets).
``curves_markdown``: each difference across the sizes. ``report(results, out)`` writes truth.md and truth.png.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats

from ..transfer.arms import arm as arm_row
from ..util.config import ConfigError
from ..util.io import atomic_write_text, read_json


def _arm(key: str) -> str:
    return key.rpartition(":")[2]


def _prefix(key: str) -> str:
    return key.rpartition(":")[0]


def size_scores(sets: dict) -> dict[str, np.ndarray]:
    """key -> balanced accuracy per set (sets that ran the key, in set order)."""
    keys = sorted({k for s in sets.values() for k in s["scores"]})
    return {k: np.array([s["scores"][k] for s in sets.values() if k in s["scores"]]) for k in keys}


def difference(a: np.ndarray, b: np.ndarray, se_test: float = 0.0) -> dict:
    """Paired difference a - b over sets: mean, 95% t interval (sets and the test set's noise), sd, sets."""
    d = a - b
    n = len(d)
    sd = float(np.std(d, ddof=1)) if n > 1 else math.nan
    se = math.sqrt(sd**2 / n + se_test**2) if n > 1 else math.nan
    t = float(stats.t.ppf(0.975, n - 1)) if n > 1 else math.nan
    return {
        "difference": float(d.mean()),
        "ci": [float(d.mean() - t * se), float(d.mean() + t * se)],
        "sd": sd,
        "sets": n,
        "se_test": se_test,
        "sets_for_2pp": math.ceil((1.96 * sd / 0.02) ** 2) if n > 1 else None,
    }


def pairs(keys, architectures: dict) -> dict[str, tuple[str, str]]:
    """The differences the question needs, by name (see the module docstring); ``architectures``: encoder ->
    its architecture's key prefix ("2x64"). With several architectures (``truth_join``) each pretrained arm
    meets every architecture's baseline. The best non-neural key is "best_non_neural", resolved per size."""
    keys = set(keys)
    out = {}
    for k in sorted(keys):
        if ":" not in k or arm_row(_arm(k)).role != "pretrained":
            continue
        arch = architectures.get(_prefix(k))
        controls = [f"{arch}:baseline"] + ([f"{arch}:random_frozen"] if _arm(k) == "frozen" else [])
        controls += [f"{a}:baseline" for a in sorted(set(architectures.values()) - {arch})]  # joined folders
        for control in controls:
            if control in keys:
                out[f"{k} - {control}"] = (k, control)
        out[f"{k} - best non-neural"] = (k, "best_non_neural")
    return out


def summary(results: dict, test_windows: dict | None = None) -> dict:
    """Per size: "arms" (key -> mean, se, sets), "best_non_neural", "best" (key, P(best) over a bootstrap of
    sets), "pairs" (name -> ``difference``). ``test_windows``: size -> key -> per-window scores averaged over
    sets (for ``se_test``)."""
    out = {}
    for size, sets in results["sets"].items():
        if len(sets) < 2:
            continue
        scores = size_scores(sets)
        n = min(len(v) for v in scores.values())
        scores = {k: v[:n] for k, v in scores.items()}
        non_neural = [k for k in scores if ":" not in k and arm_row(k).role == "non_neural"]
        best_nn = max(non_neural, key=lambda k: scores[k].mean()) if non_neural else None
        arms = {
            k: {"mean": float(v.mean()), "se": float(v.std(ddof=1) / math.sqrt(n)), "sets": n}
            for k, v in scores.items()
        }
        rows = {}
        for name, (a, b) in pairs(scores, results.get("encoders", {})).items():
            b = best_nn if b == "best_non_neural" else b
            if b is None:
                continue
            rows[name.replace("best non-neural", f"best non-neural ({b})")] = difference(
                scores[a], scores[b], _se_test(test_windows, size, a, b)
            )
        out[size] = {"arms": arms, "best_non_neural": best_nn, "best": _best(scores), "pairs": rows}
    return out


def _se_test(test_windows, size, a, b) -> float:
    if not test_windows or a not in test_windows.get(size, {}) or b not in test_windows[size]:
        return 0.0
    d = test_windows[size][a] - test_windows[size][b]
    return float(np.std(d, ddof=1) / math.sqrt(len(d)))


def _best(scores: dict, draws: int = 4000, seed: int = 0) -> dict:
    """The key with the highest true mean and how often it stays highest when the sets are resampled."""
    keys = list(scores)
    M = np.stack([scores[k] for k in keys])  # [keys, sets]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, M.shape[1], size=(draws, M.shape[1]))
    winners = np.bincount(M[:, idx].mean(axis=2).argmax(axis=0), minlength=len(keys)) / draws
    best = int(M.mean(axis=1).argmax())
    return {"key": keys[best], "p_best": float(winners[best])}


def load_results(path: Path) -> dict:
    """A truth study's truth.json (a report, ``--join``, a resumed run); one-line ``ConfigError`` when it is
    missing, not JSON (truncated, hand-edited) or not a study's."""
    if not path.exists():
        raise ConfigError(f"{path}: not found (a truth study folder holds its truth.json)")
    try:
        results = read_json(path)
    except ValueError as e:
        raise ConfigError(f"{path}: not JSON ({e})") from None
    if not isinstance(results, dict) or not {"config", "sets"} <= set(results):
        raise ConfigError(f"{path}: not a truth study's results (no 'config' and 'sets')")
    return results


def load_test_windows(out: Path, results: dict) -> dict:
    """size -> key -> per-window test scores averaged over the sets whose file is in out/sets."""
    found = {}
    for size, sets in results["sets"].items():
        files = [out / "sets" / f"{size}_{k}.npz" for k in sets]
        arrays = [dict(np.load(f)) for f in files if f.exists()]
        if arrays:
            keys = set.intersection(*(set(a) for a in arrays))
            found[size] = {k.replace("__", ":"): np.mean([a[k] for a in arrays], axis=0) for k in keys}
    return found


def _pp(x: float) -> str:
    return f"{100 * x:.1f}"


def interval_text(d: dict | None) -> str:
    """A ``difference`` (or any {"difference", "ci"}) as "+1.2 [-0.3, +2.7]" in pp; "" for None."""
    if d is None:
        return ""
    low, high = d["ci"]
    return f"{100 * d['difference']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def markdown(s: dict) -> str:
    """The study's tables: true accuracy per arm and size, then the paired differences per size."""
    sizes = sorted(s, key=int)
    keys = sorted({k for size in sizes for k in s[size]["arms"]})
    lines = ["| arm | " + " | ".join(f"n = {z}" for z in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for k in keys:
        cells = [f"{_pp(a['mean'])} +- {_pp(1.96 * a['se'])}" if (a := s[z]["arms"].get(k)) else "" for z in sizes]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| size | sets | best arm (P best over sets) | difference | mean | 95% CI | sd | sets for +-2 pp |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for z in sizes:
        best = s[z]["best"]
        for name, d in s[z]["pairs"].items():
            lines.append(
                f"| {z} | {d['sets']} | {best['key']} ({best['p_best']:.2f}) | {name} | {100 * d['difference']:+.1f} | "
                f"[{100 * d['ci'][0]:+.1f}, {100 * d['ci'][1]:+.1f}] | {_pp(d['sd'])} | {d['sets_for_2pp']} |"
            )
    return "\n".join(lines) + "\n"


def curves_markdown(s: dict) -> str:
    """The paired differences as curves: one row per difference, one column per size (mean and 95% interval
    over sets), the best non-neural arm named per size. What labels_needed cannot know: how an effect changes
    with the labels (its model holds the effect fixed and shrinks the noise)."""
    sizes = sorted(s, key=int)
    rows: dict[str, dict] = {}
    for z in sizes:
        for name, d in s[z]["pairs"].items():
            generic = name.replace(f" ({s[z]['best_non_neural']})", "") if s[z]["best_non_neural"] else name
            rows.setdefault(generic, {})[z] = d
    lines = ["| difference | " + " | ".join(f"n = {z}" for z in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for name, by_size in rows.items():
        cells = [
            f"{100 * d['difference']:+.1f} [{100 * d['ci'][0]:+.1f}, {100 * d['ci'][1]:+.1f}]"
            if (d := by_size.get(z))
            else ""
            for z in sizes
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    best = ", ".join(f"{z}: {s[z]['best_non_neural']}" for z in sizes)
    return "\n".join(lines) + f"\n\nBest non-neural arm per size: {best}.\n"


def _style(k: str, architectures: dict) -> dict:
    """An arm's look: colour by arm, a marker per architecture (``architectures``: encoder -> "2x64"), hollow
    and dashed for forecast encoders."""
    archs = sorted(set(architectures.values()))
    arch = architectures.get(_prefix(k), _prefix(k))
    forecast = ":" in k and "forecast" in k
    return dict(
        color=arm_row(_arm(k)).colour,
        marker="sD^v"[archs.index(arch) % 4] if arch in archs else "o",
        markerfacecolor="none" if forecast else None,
        linestyle="--" if forecast else "-",
        capsize=3,
    )


def figure(s: dict, path: Path, architectures: dict | None = None) -> None:
    """True balanced accuracy (95% intervals over sets) against labelled-set size, one line per arm (``_style``);
    with one size, the arms ranked (a joined report of one size: what a size axis would only scatter)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    architectures = architectures or {}
    sizes = sorted(s, key=int)
    keys = sorted({k for z in sizes for k in s[z]["arms"]})
    fig, ax = plt.subplots(figsize=(9, 5.5))
    if len(sizes) == 1:
        arms = s[sizes[0]]["arms"]
        keys.sort(key=lambda k: arms[k]["mean"])
        for i, k in enumerate(keys):
            ax.errorbar(100 * arms[k]["mean"], i, xerr=196 * arms[k]["se"], **_style(k, architectures))
        ax.set_yticks(range(len(keys)), keys, fontsize=8)
        ax.set_xlabel(f"true balanced accuracy on the fresh test set (%), {sizes[0]} labelled windows")
    else:
        for k in keys:
            pts = [(int(z), s[z]["arms"][k]) for z in sizes if k in s[z]["arms"]]
            y, err = [100 * p[1]["mean"] for p in pts], [196 * p[1]["se"] for p in pts]
            ax.errorbar([p[0] for p in pts], y, yerr=err, label=k, **_style(k, architectures))
        ax.set_xscale("log")
        ax.set_xticks([int(z) for z in sizes], sizes)
        ax.minorticks_off()
        ax.set_xlabel("labelled windows")
        ax.set_ylabel("true balanced accuracy on the fresh test set (%)")
        ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: dict, out: Path, extra: str = "", test_windows: dict | None = None) -> dict:
    """truth.md (with ``extra`` Markdown after the tables) and truth.png in ``out``; returns the summary.
    ``test_windows``: ``load_test_windows``'s (default: read from out/sets)."""
    s = summary(results, load_test_windows(out, results) if test_windows is None else test_windows)
    if s:
        text = markdown(s) + "\n" + curves_markdown(s)
        atomic_write_text(out / "truth.md", text + ("\n" + extra if extra else ""))
        figure(s, out / "truth.png", results.get("encoders"))
    return s
