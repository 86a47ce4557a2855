"""README.md's Python examples run as written: "Library use" loads an encoder of the CPU demo's architecture
(pretrain.ipynb's parameters: 64 wide, where load_encoder's defaults require the Jade encoder's 128), and "Use
the classifier" loads a saved model and classifies the last window of new bars."""

import json
import re
from pathlib import Path

import pytest

import moola_lib
from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.classifier.model import ArmClassifier
from moola_lib.labels.testbed import synthetic_labelled_set
from moola_lib.pretraining.checkpoints import save_encoder
from moola_lib.pretraining.model import JadeEncoder

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def python_block(heading: str) -> str:
    """The first ```python block of the README after ``heading``."""
    return README.split(heading, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def demo_architecture() -> dict:
    """hidden_size and num_layers of pretrain.ipynb's parameters cell (the CPU demo, ``bin/dev pretrain``)."""
    cells = json.loads((ROOT / "notebooks" / "pretrain.ipynb").read_text(encoding="utf-8"))["cells"]
    source = next("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    return {
        k: int(re.search(rf"^{k}\s*=\s*(\d+)", source, re.MULTILINE).group(1)) for k in ("hidden_size", "num_layers")
    }


def test_the_library_example_loads_the_demos_encoder(tmp_path):
    arch = demo_architecture()
    assert arch["hidden_size"] != 128  # the case the example must cover
    save_encoder(JadeEncoder(**arch), tmp_path / "checkpoint_best.pt")
    line = next(line for line in python_block("## Library use").splitlines() if "load_encoder" in line)
    scope = {"ml": moola_lib}
    exec(line.replace("runs/my-run/checkpoint_best.pt", str(tmp_path / "checkpoint_best.pt")), scope)
    assert scope["encoder"].arch["hidden_size"] == arch["hidden_size"]


def test_the_classifier_example_classifies_new_bars(tmp_path):
    labelled = synthetic_labelled_set(40, start="2025-07-01", end="2025-07-31", history_start="2025-06-01")
    ArmClassifier("simple_logistic").fit(labelled).save(tmp_path / "clf")
    synthetic_ohlcv("2025-08-04", "2025-08-06", seed=1).to_parquet(tmp_path / "new.parquet")
    code = python_block("## Use the classifier").replace("runs/clf", str(tmp_path / "clf"))
    scope: dict = {}
    exec(code.replace("data/raw/nq_new.parquet", str(tmp_path / "new.parquet")), scope)
    assert scope["proba"].shape == (1, 2) and scope["clf"].classes_ == ["consolidation", "retracement"]
