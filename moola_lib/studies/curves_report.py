"""What ``python -m moola_lib.studies.curves`` writes: the Markdown summary of its results (one table row
per size and encoder, the key comparisons with the verdict's interval, p and MDE), the figure of balanced
accuracy against labelled-set size, and the join of several results files of one set-up (``--from-json``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..transfer.arms import REFERENCE
from ..transfer.arms import arm as arm_row
from ..transfer.intervals import VERDICT_INTERVAL


def _pp(x: float) -> str:
    return f"{100 * x:.1f}"


def _arm_lines(res: dict) -> list[str]:
    lines = ["| arm | reads | balanced accuracy % [95% CI] |", "|---|---|---|"]
    groups = [("none", res["arms"]["shared"]), *res["arms"]["by_arch"].items(), *res["arms"]["by_encoder"].items()]
    for reads, arms in groups:
        lines += [
            f"| {a} | {reads} | {_pp(s['mean'])} [{_pp(s['ci_low'])}, {_pp(s['ci_high'])}] |" for a, s in arms.items()
        ]
    return lines


def key_comparisons(res: dict) -> list[dict]:
    """Each pretrained arm against its baseline and against the size's best non-neural arm."""
    refs = (REFERENCE, res["best_non_neural"])
    return [r for r in res["comparisons"].values() if arm_row(r["arm"]).role == "pretrained" and r["reference"] in refs]


def _cell(r: dict | None) -> str:
    """A comparison as a table cell: difference [CI] pp, Holm p (size), MDE; + when not the verdict's interval."""
    if r is None:
        return "-"
    mark = "" if r["interval"] == VERDICT_INTERVAL else "+"
    return (
        f"{100 * r['mean']:+.1f} [{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}]{mark}, "
        f"p {r['p_holm_size']:.2g}, MDE {_pp(r['mde'])}"
    )


def summary_table(results: dict) -> list[str]:
    """One row per size and encoder: baseline, best non-neural arm, each pretrained arm (balanced accuracy %),
    and each pretrained arm against the baseline and against the best non-neural arm."""
    first = next(iter(results["sizes"].values()))
    pretrained = list(next(iter(first["arms"]["by_encoder"].values())))
    head = [
        "size",
        "encoder",
        REFERENCE,
        "best non-neural",
        *pretrained,
        *[f"{a} - {ref}" for ref in (REFERENCE, "best non-neural") for a in pretrained],
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n, res in results["sizes"].items():
        best = res["best_non_neural"]
        for enc, arch in (
            (e, f"{a['num_layers']}x{a['hidden_size']}")
            for e, a in ((e, v["arch"]) for e, v in results["encoders"].items())
        ):
            if enc not in res["arms"]["by_encoder"]:  # a joined run: this encoder did not run at this size
                continue
            arms = res["arms"]["by_encoder"][enc]
            cells = [
                n,
                enc,
                _pp(res["arms"]["by_arch"][arch][REFERENCE]["mean"]),
                f"{best} {_pp(res['arms']['shared'][best]['mean'])}" if best else "-",  # arms without one: none
                *[_pp(arms[a]["mean"]) for a in pretrained],
            ]
            cells += [
                _cell(res["comparisons"].get(f"{enc}: {a} vs {ref}")) for ref in (REFERENCE, best) for a in pretrained
            ]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


_LEGEND = (
    f"Differences in pp of balanced accuracy, 95% CI of the verdict's interval ({VERDICT_INTERVAL}; + marks "
    "the corrected t where it does not apply), p Holm-corrected over all of the size's comparisons, MDE the "
    "smallest difference detectable with 80% power."
)


def markdown(results: dict) -> str:
    """The Markdown summary: per size, the arms and the key comparisons (balanced accuracy, pp)."""
    tc = results["transfer_config"]
    lines = [
        f"Learning curves: {tc['folds']}-fold CV x {tc['repeats']} repeat(s) per size, epochs {tc['epochs']}, "
        f"patience {tc['patience']}, seeds per fold {tc['seeds_per_fold']}; "
        f"{results.get('seconds', 0):.0f} s (summed over processes). Encoders: "
        + "; ".join(
            f"{n} ({e['arch']['num_layers']}x{e['arch']['hidden_size']}, {e['objective']})"
            for n, e in results["encoders"].items()
        )
        + ".",
        "",
        _LEGEND,
        "",
        *summary_table(results),
    ]
    for n, res in results["sizes"].items():
        head = (
            f"### {n} labelled windows ({res['n_groups']} session groups, market "
            f"{res['source']['market_seed']}, {res['seconds']:.0f} s)"
        )
        lines += [
            "",
            head,
            "",
            *_arm_lines(res),
            "",
            "| encoder | comparison | difference pp [95% CI] | p | p (Holm, size) | MDE pp |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['encoder']} | {r['arm']} vs {r['reference']} | {100 * r['mean']:+.1f} "
            f"[{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}] | {r['p_value']:.2g} | "
            f"{r['p_holm_size']:.2g} | {_pp(r['mde'])} |"
            for r in key_comparisons(res)
        ]
    return "\n".join(lines) + "\n"


def curve_points(results: dict) -> dict[str, list[tuple[int, float, float, float]]]:
    """Per line of the figure (arm, or encoder/arm for the encoder-specific arms): (n, mean, low, high)."""
    lines: dict[str, list] = {}
    for n, res in results["sizes"].items():
        named = [(a, s) for a, s in res["arms"]["shared"].items()]
        named += [(f"{k}/{a}", s) for k, arms in res["arms"]["by_arch"].items() for a, s in arms.items()]
        named += [(f"{k}/{a}", s) for k, arms in res["arms"]["by_encoder"].items() for a, s in arms.items()]
        for label, s in named:
            lines.setdefault(label, []).append((int(n), s["mean"], s["ci_low"], s["ci_high"]))
    return lines


def _panel(ax, results: dict) -> None:
    """One run: colour = arm (the arms table's), line style = which encoder (or architecture) it reads."""
    styles = {None: ":", 0: "-", 1: "--", 2: "-.", 3: (0, (1, 1))}
    readers = list(
        dict.fromkeys([*results["sizes"][next(iter(results["sizes"]))]["arms"]["by_arch"], *results["encoders"]])
    )
    for label, pts in sorted(curve_points(results).items()):
        who, _, arm = label.rpartition("/")
        n, mean, lo, hi = (np.array(v) for v in zip(*sorted(pts)))
        colour = arm_row(arm).colour
        ax.plot(
            n,
            100 * mean,
            color=colour,
            ls=styles.get(readers.index(who) % 4 if who else None),
            marker="o",
            label=label,
            lw=1.5 if who else 1.0,
            ms=3,
        )
        ax.fill_between(n, 100 * lo, 100 * hi, color=colour, alpha=0.06)
    sizes = sorted({int(n) for n in results["sizes"]})
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    tc = results["transfer_config"]
    ax.set_title(", ".join(results["encoders"]) + f" ({tc['folds']} folds x {tc['repeats']} repeats)", fontsize=9)
    ax.set_xlabel("labelled windows (each size a fresh set, its own CV)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2, loc="lower right")


def figure(runs: list[dict], path) -> None:
    """Balanced accuracy against labelled-set size, one line per arm with its 95% CI band, one panel per run
    (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4.5), dpi=80, sharey=True, squeeze=False)
    for ax, results in zip(axes[0], runs):
        _panel(ax, results)
    axes[0][0].set_ylabel("balanced accuracy % (95% CI band)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def merge_runs(runs: list[dict]) -> list[dict]:
    """Results files of the same encoder architectures and protocol options (sizes or encoders run as separate
    processes) joined into one run, sizes in increasing order; other runs stay apart (a panel each)."""
    merged: dict[str, dict] = {}
    for r in runs:
        archs = sorted({f"{e['arch']['num_layers']}x{e['arch']['hidden_size']}" for e in r["encoders"].values()})
        key = json.dumps([archs, r["transfer_config"]], sort_keys=True)
        if key not in merged:
            merged[key] = {**r, "encoders": {}, "sizes": {}, "seconds": 0.0, "commands": []}
        m = merged[key]
        m["encoders"] = {**m["encoders"], **r["encoders"]}
        m["sizes"] = dict(sorted({**m["sizes"], **r["sizes"]}.items(), key=lambda kv: int(kv[0])))
        m["seconds"] += r.get("seconds", 0.0)
        m["commands"].append(r.get("command"))
    return list(merged.values())
