"""The CPU demo under competing load: each thread setting on an idle machine and beside busy processes.

    python -m moola_lib.tools.contention [--epochs 15] [--busy 0 1 2] [--threads 1 2 policy] [--runs 1]
                                         [--json PATH] [-f FILE.yaml] [-y YAML] [-p NAME VALUE]

Runs the pretraining demo (the parameters cell of notebooks/pretrain.ipynb, on the CPU, overridden by
``--epochs`` and the parameter flags) as ``python -m moola_lib.pretrain`` in a fresh process per
measurement, for every number of busy single-threaded processes in ``--busy`` (bounded busy loops that
this command starts before and kills after the measurement) and every thread setting in ``--threads``:
a fixed count (``OMP_NUM_THREADS``=N) or ``policy`` (no variable set: moola_lib.util.threads decides),
``--runs`` times each (the settings taking turns, so that a drift of the machine touches them alike).
Prints a table of the training time (all epochs, train and validation; with several runs the median and
the range) with the process's wall time, the count the policy ended on, and per condition the policy's
(median) time over the best setting's. Before each
condition it measures the load other processes put on the machine for a second ("background"): numbers
taken with background load are not clean and are labelled so.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ..pretraining.config import PretrainConfig
from ..util import cli
from ..util.config import ConfigError
from ..util.io import check_writable, read_json, write_json
from ..util.paths import ROOT
from ..util.threads import USER_ENV, LoadSample, allowed_cpus

POLICY = "policy"
BUSY_LOOP = "import sys, time\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end:\n    pass\n"
NOISY_BACKGROUND = 0.3  # CPUs' worth of foreign load above which a measurement is not clean


def demo_parameters(epochs: int | None, overrides: dict) -> dict:
    """The CPU demo: the literal values of notebooks/pretrain.ipynb's parameters cell that are PretrainConfig
    fields, on the CPU, without progress bars, then ``epochs`` and ``overrides``."""
    import papermill

    cell = papermill.inspect_notebook(str(ROOT / "notebooks" / "pretrain.ipynb"))
    fields = set(PretrainConfig.__dataclass_fields__) - {"run_dir", "resume"}
    params = {name: ast.literal_eval(p["default"]) for name, p in cell.items() if name in fields}
    params.update(device="cpu", progress=False, **({"epochs": epochs} if epochs is not None else {}), **overrides)
    PretrainConfig.from_dict(params)  # a bad override fails here, before any process starts
    return params


def measure(params: dict, threads: str, timeout: float) -> dict:
    """One demo run in a fresh process with ``threads`` ("1", "2", ... or "policy"); its times in seconds."""
    env = {k: v for k, v in os.environ.items() if k not in USER_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    if threads != POLICY:
        env["OMP_NUM_THREADS"] = threads
    with tempfile.TemporaryDirectory(prefix="moola-contention-") as tmp:
        command = [sys.executable, "-m", "moola_lib.pretrain", f"{tmp}/run", "-y", yaml.safe_dump(params)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return {"threads": threads, "timed_out": True, "wall_s": timeout}
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"the demo failed with {threads} threads: {proc.stderr.strip()[-2000:]}")
        results = read_json(Path(tmp) / "run" / "training_results.json")
    return {
        "threads": threads,
        "timed_out": False,
        "wall_s": round(wall, 2),
        "train_s": round(sum(row["seconds"] for row in results["history"]), 2),
        "final_threads": results["environment"]["cpu_threads"],
    }


def background_load(seconds: float = 1.0) -> float:
    """CPUs' worth of load other processes put on our CPUs over ``seconds`` (-1 where it cannot be read)."""
    cpus = allowed_cpus()
    before = LoadSample.now(cpus)
    time.sleep(seconds)
    after = LoadSample.now(cpus)
    return -1.0 if before is None or after is None else round(after.others_since(before), 2)


def condition(busy: int, settings: list[str], params: dict, timeout: float, runs: int = 1) -> dict:
    """Every thread setting ``runs`` times (taking turns) beside ``busy`` busy processes (started here,
    killed after each measurement)."""
    row = {"busy": busy, "background": background_load(), "runs": []}
    for threads in settings * runs:
        loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(timeout + 60)]) for _ in range(busy)]
        try:
            time.sleep(0.5 if busy else 0.0)
            row["runs"].append(measure(params, threads, timeout))
        finally:
            for loop in loops:
                loop.kill()
                loop.wait()
        print(f"  busy {busy}, threads {threads}: {row['runs'][-1]}", file=sys.stderr, flush=True)
    return row


def _seconds(run: dict) -> float:
    """A run's training time; a run that timed out counts its timeout."""
    return run["wall_s"] if run["timed_out"] else run["train_s"]


def table(rows: list[dict], settings: list[str]) -> str:
    """Markdown: per condition the training time (wall time) of each setting and policy / best (medians)."""
    head = ["busy processes", "background (CPUs)", *(f"{s} thread(s)" if s != POLICY else s for s in settings)]
    lines = ["| " + " | ".join([*head, "policy / best"]) + " |", "|" + "---|" * (len(head) + 1)]
    for row in rows:
        runs = {s: [r for r in row["runs"] if r["threads"] == s] for s in settings}
        times = {s: statistics.median(map(_seconds, rs)) for s, rs in runs.items() if rs}
        ratio = f"{times[POLICY] / min(times.values()):.2f}" if POLICY in times else "-"
        noisy = " (not idle)" if row["background"] > NOISY_BACKGROUND else ""
        cells = [_cell(rs) for rs in runs.values() if rs]
        lines.append(f"| {row['busy']} | {row['background']}{noisy} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def _cell(runs: list[dict]) -> str:
    """One setting's runs: the time (wall time), with several the median [range] and how many."""
    if len(runs) == 1 and runs[0]["timed_out"]:
        return f"> {runs[0]['wall_s']:.0f} s (timed out)"
    times = sorted(map(_seconds, runs))
    text = f"{statistics.median(times):.1f} s ({statistics.median(r['wall_s'] for r in runs):.0f} s)"
    if len(runs) > 1:
        timed_out = sum(r["timed_out"] for r in runs)
        text += f" [{times[0]:.1f}-{times[-1]:.1f}, {len(runs)} runs{f', {timed_out} timed out' if timed_out else ''}]"
    if runs[0]["threads"] != POLICY or all(r["timed_out"] for r in runs):
        return text
    return text + ", ended on " + " or ".join(sorted({str(r["final_threads"]) for r in runs if not r["timed_out"]}))


def _parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m moola_lib.tools.contention",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, help="demo epochs per run (default: the notebook's, 15)")
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2], help="busy processes per condition")
    parser.add_argument("--threads", nargs="+", default=["1", "2", POLICY], help="thread counts and/or 'policy'")
    parser.add_argument("--runs", type=int, default=1, help="measurements of each setting per condition")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before a run counts as timed out")
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    cli.add_parameter_flags(parser, what="pretrain parameter")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    bad = [t for t in args.threads if t != POLICY and not (t.isdigit() and int(t) > 0)]
    if bad:
        raise ConfigError(f"--threads takes positive counts and 'policy', got {bad}")
    if args.runs < 1:
        raise ConfigError(f"--runs takes a count >= 1, got {args.runs}")
    if min(args.busy) < 0:
        raise ConfigError(f"--busy takes counts of processes >= 0, got {args.busy}")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ConfigError(f"--timeout takes a number of seconds > 0, got {args.timeout}")
    if args.json:
        check_writable(args.json)
    params = demo_parameters(args.epochs, cli.parameters(args))
    rows = [condition(busy, args.threads, params, args.timeout, args.runs) for busy in args.busy]
    report = {
        "command": " ".join(["python -m moola_lib.tools.contention", *(argv or sys.argv[1:])]),
        "cpus": len(allowed_cpus()),
        "load_average_after": os.getloadavg(),
        "params": params,
        "rows": rows,
    }
    if args.json:
        write_json(args.json, report)
    print(table(rows, args.threads))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
