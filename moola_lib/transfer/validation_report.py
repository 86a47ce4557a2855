"""The Markdown summary of a validation run (``validate.py``): what VALIDATION.md reports."""
from __future__ import annotations


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _rate(r: dict) -> str:
    return f"{r['k']}/{r['n']} = {_pct(r['rate'])} (95% CI {_pct(r['ci'][0])} - {_pct(r['ci'][1])})"


def _null(null: dict) -> list[str]:
    mdes = [row["balanced_accuracy"]["mde"] for row in null["replicates"]]
    return ["## Null: two random encoders that differ only in their seed", "",
            f"- false positives of the primary test (balanced accuracy): {_rate(null['false_positive_balanced_accuracy'])}",
            f"- false positives on the log-loss: {_rate(null['false_positive_log_loss'])}",
            f"- minimal detectable effect printed (balanced accuracy): median {100 * sorted(mdes)[len(mdes) // 2]:.1f} pp",
            f"- {null['seconds_total']:.0f} s", ""]


def _positive(pos: dict) -> list[str]:
    return ["## Positive control: an encoder trained on labelled windows of 2023-2024, frozen, vs the baseline", "",
            f"- encoder: trained on {pos['encoder']['windows']} labelled windows (best epoch "
            f"{pos['encoder']['best_epoch']}, val loss {pos['encoder']['best_val_loss']:.3f})",
            f"- mean effect: {100 * pos['mean_effect']:+.1f} pp balanced accuracy; mean printed minimal detectable "
            f"effect {100 * pos['mean_printed_mde']:.1f} pp",
            f"- detection rate (p < 0.05, positive): {_rate(pos['detection'])}",
            f"- power the verdicts' numbers imply at the mean effect: {_pct(pos['implied_power'])}",
            f"- replicates whose effect exceeded their printed detectable effect: {_rate(pos['effect_above_printed_mde'])}",
            f"- {pos['seconds_total']:.0f} s", ""]


def _real(real: dict) -> list[str]:
    pre = real["pretraining"]
    refs = pre["reference_losses"]["val"]
    train = pre["data"]["splits"]["train"]
    lines = ["## The real question: masked-reconstruction pretraining vs the baseline (embedded data)", "",
             f"- pretraining: {train['windows']} training windows ({train['start']} .. {train['end']}), "
             f"{pre['epochs_completed']} epochs, {pre['total_seconds']:.0f} s; best val loss "
             f"{pre['best_val_loss']:.4f} against training mean {refs['train_mean']['loss']:.4f} and "
             f"interpolation {refs['interpolation']['loss']:.4f}", "",
             "| arm | balanced accuracy [95% CI] |", "|---|---|"]
    for arm, s in real["balanced_accuracy"].items():
        lines.append(f"| {arm} | {_pct(s['mean'])} [{_pct(s['ci_low'])}, {_pct(s['ci_high'])}] |")
    lines += ["", "| comparison | difference pp [95% CI] | p | p (Holm) | detectable effect pp |", "|---|---|---|---|---|"]
    for key, c in real["comparisons"].items():
        d = c["balanced_accuracy"]
        holm = f"{d['p_holm']:.3g}" if "p_holm" in d else "primary"
        lines.append(f"| {key} | {100 * d['mean']:+.1f} [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}] | "
                     f"{d['p_value']:.3g} | {holm} | {100 * d['mde']:.1f} |")
    lines += ["", "Learning curve (training windows, balanced accuracy):", ""]
    for arm, points in real["learning_curve"].items():
        lines.append(f"- {arm}: " + ", ".join(f"{n:.0f} -> {_pct(v)}" for n, v in points))
    lines += ["", "Verdict: " + real["verdict"], "", f"- {real['seconds_total']:.0f} s", ""]
    return lines


def markdown(results: dict) -> str:
    """The summary: command, machine, the three experiments' figures."""
    head = [f"Command: `{results.get('command', 'python -m moola_lib.transfer.validate')}`",
            f"Machine: {results['machine']['platform']}, {results['machine']['processor']}, torch "
            f"{results['machine']['torch']}, {results['machine']['threads']} thread; total {results['seconds']:.0f} s",
            f"Sizes: {results['config']}", ""]
    return "\n".join(head + _null(results["null"]) + _positive(results["positive"]) + _real(results["real"]))
