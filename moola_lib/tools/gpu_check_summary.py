"""The GPU check's terminal view: one line per step with its headline figure, and where the results are.

``step_line(name, step)`` turns a step's entry of gpu_check.json (status, seconds, figures) into one line:
its status, its seconds and the one figure that says whether the box is fine (the GPU and versions, the test
counts, the throughput, the seed job's time and loss against the better reference, the transfer step's
time). A failed step shows its error instead of its figure. ``closing_lines`` say whether the check passed
and where gpu_check.json (every figure) and gpu_check.log (everything else) are. A figure the summary cannot
read never fails the check: the line then has no figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path


def _environment(step: Mapping) -> str:
    versions = f"torch {step['torch']}, CUDA {step['cuda']}, cuDNN {step['cudnn']}"
    gpu = step["gpu"]
    if gpu is None:
        return f"no CUDA GPU ({step['cpu_count']} CPUs): CPU dry run; {versions}"
    bf16 = "bf16" if gpu["bf16_supported"] else "no bf16"
    return f"{gpu['count']} x {gpu['name']} ({gpu['memory_gib']} GiB), driver {gpu['driver']}, {versions}, {bf16}"


def _cuda_tests(step: Mapping) -> str:
    counts = step["counts"]
    return f"{counts['passed']} passed, {counts['skipped']} skipped, {counts['failure'] + counts['error']} failed"


def _benchmark(step: Mapping) -> str:
    batch, rate = list(step["train_windows_per_s"].items())[-1]
    return f"{rate:,.0f} windows/s at batch {batch}, overhead x{step['overhead_ratio']:.2f} ({step['device']})"


def _seed_job(step: Mapping) -> str:
    goal = f" (goal {step['goal_seconds']:.0f} s)" if step["goal_seconds"] else ""
    gain = step["val_gain_over_per_feature_better_reference"]
    return (
        f"{step['epochs']} epoch(s) in {step['wall_seconds']:.1f} s{goal}, best val loss {step['best_val_loss']:.4f}, "
        f"{abs(gain):.1%} {'below' if gain > 0 else 'above'} the per-feature better reference"
    )


def _transfer(step: Mapping) -> str:
    return step.get("skipped") or f"protocol in {step['wall_seconds']:.0f} s; its verdict in transfer_results.json"


HEADLINES: dict[str, Callable[[Mapping], str]] = {
    "environment": _environment,
    "cuda_tests": _cuda_tests,
    "benchmark": _benchmark,
    "seed_job": _seed_job,
    "transfer": _transfer,
}


def step_line(name: str, step: Mapping) -> str:
    """``benchmark    ok       3.7 s  2,187 windows/s at batch 64, overhead x1.25 (cpu)``."""
    error = step.get("error")
    if error:  # an exception's text, or the last stderr line(s) of a child
        figure = " ".join((" ".join(error) if isinstance(error, list) else str(error)).split())[:200]
    else:
        try:
            figure = HEADLINES[name](step) if name in HEADLINES else ""
        except (KeyError, TypeError, ValueError, IndexError):  # a figure missing: the line without it
            figure = ""
    return f"{name:<12} {step['status']:<6} {step['seconds']:6.1f} s  {figure}".rstrip()


def closing_lines(summary: Mapping, out: Path) -> list[str]:
    """Whether steps 1-4 passed, and where the figures and the log are."""
    failed = [name for name, step in summary["steps"].items() if step["status"] != "ok"]
    verdict = "passed" if summary["passed"] else "FAILED"
    problems = f" ({', '.join(failed)} failed: see the log)" if failed else ""
    return [
        f"GPU check {verdict}{problems}",
        f"every figure: {out / 'gpu_check.json'}",
        f"full log:     {out / 'gpu_check.log'}",
    ]
