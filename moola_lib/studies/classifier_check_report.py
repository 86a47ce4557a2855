"""The classifier check's Markdown (``classifier_check.markdown``): the accuracy table (cross-validated estimate
and the verdict's interval against the true balanced accuracy on the later windows) and the detections table
(precision, its base rate and recall per class and threshold)."""

from __future__ import annotations


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def accuracy_table(results: dict) -> list[str]:
    """One row per arm: CV estimate [interval], true balanced accuracy [interval], inside?, class recalls."""
    later = results["later"]
    classes = list(later["class_counts"])
    lines = [
        f"| arm | CV estimate [95% interval] | true, {later['windows']} later windows [95%] | inside? | "
        + " | ".join(f"true recall {c}" for c in classes)
        + " |",
        "|---|---:|---:|:---:|" + "---:|" * len(classes),
    ]
    recommended = results["transfer"]["recommended"]
    for arm, row in results["arms"].items():
        cv, true = row["cv"], row["true"]
        name = f"`{arm}`" + (" (auto)" if arm == recommended else "")
        lines.append(
            f"| {name} | {_pct(cv['mean'])} [{_pct(cv['ci_low'])}, {_pct(cv['ci_high'])}] | "
            f"{_pct(true['balanced_accuracy'])} [{_pct(true['ci_low'])}, {_pct(true['ci_high'])}] | "
            f"{'yes' if row['inside'] else '**no**'} | " + " | ".join(_pct(r) for r in true["recall"]) + " |"
        )
    return lines


def detections_table(results: dict) -> list[str]:
    """One row per arm, threshold and class: detections, precision (base rate), recall (episodes found)."""
    lines = [
        "| arm | threshold | class | detections | precision | base rate | recall (episodes found) |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for arm, row in results["arms"].items():
        for threshold, per_class in row["detections"].items():
            for c, m in per_class.items():
                lines.append(
                    f"| `{arm}` | {threshold} | {c} | {m['detections']} | {_pct(m['precision'])} | "
                    f"{_pct(m['base_rate'])} | {_pct(m['recall'])} ({m['found']} / {m['episodes']}) |"
                )
    return lines


def markdown(results: dict) -> str:
    """The check's report as Markdown."""
    cfg, later, machine = results["config"], results["later"], results["machine"]
    enc = results["encoder"]
    scans = ", ".join(
        f"`{arm}` {row['scan']['windows']:,} windows in {row['scan']['seconds']:.0f} s "
        f"(scan vs labelled windows: {row['scan_vs_windows']['in_scan']} shared starts, largest difference "
        f"{row['scan_vs_windows']['max_abs_difference']})"
        for arm, row in results["arms"].items()
    )
    load = machine["load_average_start"][0], machine["load_average_end"][0]
    lines = [
        "# The classifier on new bars of the embedded market",
        "",
        f"{results['created']}, {results['seconds']:.0f} s on {machine['cpus']} CPUs (load average "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end). Encoder {enc['arch']['num_layers']} x "
        f"{enc['arch']['hidden_size']} ({enc['objective']}, {enc['epochs']} epochs, best val loss "
        f"{enc['best_val_loss']}); transfer run {results['transfer']['path']}, recommended arm "
        f"`{results['transfer']['recommended']}`.",
        "",
        f"Later period {later['period'][0]} .. {later['period'][1]}: {later['bars']:,} bars, episodes "
        f"{later['episodes']}, {later['windows']} labelled windows {later['class_counts']}.",
        "",
        *accuracy_table(results),
        "",
        f"Detections: every window of the later period, stride {cfg['stride']}; {scans}.",
        "A detection is a true positive when its window shares a minute with an episode of its class; the base "
        "rate is the share of scanned windows that do (the precision of detecting every window).",
        "",
        *detections_table(results),
        "",
    ]
    return "\n".join(lines)
