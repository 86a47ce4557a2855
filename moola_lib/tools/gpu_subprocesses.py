"""The GPU check's steps that run in child processes (``tools.gpu_check`` drives them).

Contract: ``child_env`` is this process's environment with the repository first on PYTHONPATH (what every
child needs on a bare GPU box); ``cuda_tests`` runs ``pytest -m cuda tests/pretraining/test_cuda.py`` in a child and
summarises its JUnit XML (step 2); ``transfer`` runs ``python -m moola_lib.gpu_check --transfer-only`` in
a child with a deadline and returns its figures (step 5), and ``run_transfer_protocol`` is what that child
runs. A step returns its figures, with ``_status: "failed"`` when the child failed; it logs to the
check's logger (``moola.gpu_check``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TRANSFER_PARAMS = REPO / "params" / "transfer_full.yaml"
# the CPU dry run checks the step's plumbing (child process, deadline, results file), not the protocol (its own
# tests do): the primary comparison's two arms and one non-neural arm, one read-out and seed, no worker
# processes, no rocket arm (numba compiles it first). On the busy 2-core VM the step took 28-48 s with every arm,
# 7-21 s so (BENCHMARKS.md)
DRY_TRANSFER = dict(
    arms=["baseline", "frozen", "simple"],
    readouts=["mean:last"],
    seeds_per_fold=1,
    n_jobs=1,
    folds=2,
    repeats=1,
    epochs=1,
    fractions=[1.0],
    n_bootstrap=50,
    device="cpu",
)

log = logging.getLogger("moola.gpu_check")  # the check's logger: its handlers write gpu_check.log


def child_env() -> dict:
    """This process's environment with the repository first on PYTHONPATH: moola_lib is not installed on a
    bare GPU box, and the subprocesses (pytest, the transfer step, torchrun) must import this checkout."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


# ---------------------------------------------------------------------------------------------------
# 2. the CUDA tests


def cuda_tests(out: Path, timeout: float) -> dict:
    xml = out / "cuda_tests.xml"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "cuda",
        str(REPO / "tests" / "pretraining" / "test_cuda.py"),
        "-q",
        "-rA",
        "-p",
        "no:cacheprovider",
        f"--junitxml={xml}",
        "-o",
        "junit_logging=system-out",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=timeout)
    log.info("pytest -m cuda (exit %d):\n%s%s", proc.returncode, proc.stdout[-6000:], proc.stderr[-3000:])
    figures = {"exit_code": proc.returncode, **_junit_summary(xml)}
    if proc.returncode != 0:
        figures["_status"] = "failed"
    return figures


def _junit_summary(path: Path) -> dict:
    if not path.exists():
        return {"tests": {}}
    tests = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        printed = (case.findtext("system-out") or "").strip().strip("- ").removeprefix("Captured Out").strip("- \n")
        tests[case.get("name")] = {
            "outcome": outcome,
            "seconds": float(case.get("time", 0)),
            **({"printed": printed[-500:]} if printed else {}),
        }
    counts = {k: sum(t["outcome"] == k for t in tests.values()) for k in ("passed", "failure", "error", "skipped")}
    return {"counts": counts, "tests": tests}


# ---------------------------------------------------------------------------------------------------
# 5. transfer (subprocess with a deadline)


def transfer(out: Path, encoder: str, dry: bool, timeout: float) -> dict:
    if timeout < 30:
        return {"skipped": f"only {timeout:.0f} s of the budget left"}
    cmd = [sys.executable, "-m", "moola_lib.gpu_check", str(out), "--transfer-only", encoder]
    if dry:
        cmd.append("--dry-run")
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"_status": "failed", "error": f"did not finish within the {timeout:.0f} s left of the budget"}
    log.info("transfer (exit %d):\n%s%s", proc.returncode, proc.stdout[-4000:], proc.stderr[-3000:])
    if proc.returncode != 0:
        return {"_status": "failed", "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_transfer_protocol(out: Path, encoder: str, dry: bool) -> dict:
    """The protocol of params/transfer_full.yaml on the embedded labelled set (``EMBEDDED_SET``; the step-4
    encoder was pretrained on the embedded market, whose labelled period lies after its splits)."""
    from ..labels.provenance import EncoderSource
    from ..labels.testbed import EMBEDDED_SET, synthetic_labelled_set
    from ..transfer.config import TransferConfig
    from ..transfer.protocol import run_transfer

    params = yaml.safe_load(TRANSFER_PARAMS.read_text(encoding="utf-8"))
    names = {f.name for f in dataclasses.fields(TransferConfig)}
    settings = {k: v for k, v in params.items() if k in names}
    settings.update(DRY_TRANSFER if dry else {"device": "cuda"}, progress=False)
    source = EncoderSource.load(encoder)  # read once: its feature options and the encoder itself
    labelled = synthetic_labelled_set(**EMBEDDED_SET.as_dict(), feature_options=source.feature_options)
    t0 = time.perf_counter()
    results = run_transfer(labelled, source, TransferConfig.from_dict(settings), run_dir=out)
    return {
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "settings": settings,
        "verdict": results.get("verdict"),
        "file": "transfer_results.json",
    }
