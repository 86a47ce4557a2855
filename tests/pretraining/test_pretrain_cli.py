"""The pretraining command line: strict parameters, run directory written."""

import json
import subprocess
import sys

import pytest

from moola_lib.pretraining.job import main
from moola_lib.util.config import ConfigError

TINY = {
    "synthetic_start": "2024-12-01",
    "synthetic_end": "2025-02-10",
    "splits": {"train": ["2024-12-01", "2025-01-20"], "val": ["2025-01-20", "2025-02-11"]},
    "hidden_size": 8,
    "num_layers": 1,
    "epochs": 1,
    "batch_size": 64,
    "progress": False,
}


def test_cli_rejects_unknown_parameter_before_running(tmp_path):
    with pytest.raises(ConfigError, match="batch_size"):
        main([str(tmp_path / "run"), "-p", "batchsize", "64"])
    assert not (tmp_path / "run").exists()


def test_cli_runs_a_job_from_a_params_file(tmp_path):
    params = tmp_path / "tiny.yaml"
    params.write_text(json.dumps(TINY))  # JSON is YAML
    proc = subprocess.run(
        [
            *[sys.executable, "-m", "moola_lib.pretrain", str(tmp_path / "run"), "-f", str(params)],
            *["-p", "seed", "7", "-p", "epochs", "2", "-p", "progress", "True"],
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "training_results.json").read_text())
    assert results["config"]["seed"] == 7 and results["config"]["hidden_size"] == 8
    assert (tmp_path / "run" / "checkpoint_best.pt").exists()
    # one line per epoch on the terminal, no bar (a log file keeps lines, not a bar's carriage returns)
    epochs = [line for line in proc.stderr.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2 and "train " in epochs[0] and " left" in epochs[0] and epochs[1].endswith("done")
    assert "\r" not in proc.stderr
