"""The validation script (null, positive control, real question) in its seconds-long version."""
import json
import math

import pytest
from scipy import stats

from moola_lib.transfer.stats import minimal_detectable_effect
from moola_lib.transfer.validate import _power, clopper_pearson, main


def test_clopper_pearson_and_power():
    lo, hi = clopper_pearson(1, 20)
    assert lo == pytest.approx(0.001265, rel=1e-3) and hi == pytest.approx(0.248733, rel=1e-3)  # exact tables
    assert clopper_pearson(0, 20)[0] == 0 and clopper_pearson(20, 20)[1] == 1
    assert _power(minimal_detectable_effect(0.05, 24), 0.05, 24, 0.05) == pytest.approx(0.8, abs=0.01)
    assert _power(0.0, 0.05, 24, 0.05) == pytest.approx(0.05)
    assert math.isnan(_power(0.1, 0.0, 24, 0.05))
    assert stats.t.ppf(0.975, 24) > 2


def test_quick_validation_run_writes_its_results(tmp_path, capsys):
    out_json, out_md = tmp_path / "v.json", tmp_path / "v.md"
    assert main(["--quick", "--json", str(out_json), "--markdown", str(out_md)]) == 0
    res = json.loads(out_json.read_text())
    null = res["null"]
    assert len(null["replicates"]) == 2
    fp = null["false_positive_balanced_accuracy"]
    assert fp["k"] == sum(r["balanced_accuracy"]["p_value"] < 0.05 for r in null["replicates"])
    assert fp["ci"][0] <= fp["rate"] <= fp["ci"][1]
    pos = res["positive"]
    assert len(pos["replicates"]) == 2 and pos["encoder"]["windows"] == 80
    assert 0 <= pos["implied_power"] <= 1 and pos["detection"]["n"] == 2
    real = res["real"]
    assert set(real["balanced_accuracy"]) >= {"baseline", "frozen", "finetune", "random_frozen", "simple_logistic"}
    assert "Primary comparison" in real["verdict"] and len(real["learning_curve"]["baseline"]) == 2
    text = out_md.read_text()
    assert "## Null" in text and "## Positive control" in text and "## The real question" in text
    assert text in capsys.readouterr().out
    assert main(["--quick", "-p", "replicate", "3"]) == 2           # a mistyped size: one line, status 2
    assert "Did you mean 'replicates'" in capsys.readouterr().err
