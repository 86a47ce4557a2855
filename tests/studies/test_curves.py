"""Learning curves over labelled-set sizes (moola_lib.studies.curves): a tiny run through the protocol's code."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from moola_lib.pretraining.checkpoints import save_encoder
from moola_lib.pretraining.model import JadeEncoder
from moola_lib.studies import curves as C
from moola_lib.studies import curves_report as R
from moola_lib.transfer.arms import names

TINY = {
    "sizes": [24, 36],
    "transfer": {"folds": 2, "repeats": 1, "epochs": 2, "patience": 2},
    "period": ["2025-07-01", "2025-07-31"],
    "history_start": "2025-06-24",
}


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    d = tmp_path_factory.mktemp("enc")
    paths = {}
    for name, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        save_encoder(JadeEncoder(hidden_size=8, num_layers=1), d / f"{name}.pt")
        paths[name] = str(d / f"{name}.pt")
    return paths


@pytest.fixture(scope="module")
def tiny(encoders, tmp_path_factory):
    out = tmp_path_factory.mktemp("curves")
    args = [
        "--json",
        str(out / "c.json"),
        "--markdown",
        str(out / "c.md"),
        "--figure",
        str(out / "c.png"),
        "-y",
        json.dumps({**TINY, "encoders": encoders}),
    ]
    assert C.main(args) == 0
    return out


def test_sizes_draw_fresh_windows():
    cc = C.CurvesConfig.from_dict({**TINY, "encoders": {"x": "unused"}})
    a, b = C.labelled_set(cc, 0), C.labelled_set(cc, 1)
    assert (len(a.y), len(b.y)) == (24, 36)
    assert a.source["market_seed"] != b.source["market_seed"]
    flat_a, flat_b = a.X.reshape(len(a.y), -1), b.X.reshape(len(b.y), -1)
    assert not any(np.array_equal(x, z) for x in flat_a for z in flat_b)  # no window of one size in the other


def test_tiny_run_structure(tiny):
    results = json.loads((tiny / "c.json").read_text())
    assert list(results["sizes"]) == ["24", "36"]
    for n, res in results["sizes"].items():
        assert res["n"] == int(n)
        assert set(res["arms"]["shared"]) == {
            "simple_logistic",
            "simple_boosting",
            "rocket_minirocket",
            "rocket_multirocket",
        }
        assert set(res["arms"]["by_arch"]) == {"1x8"}  # one baseline for the two encoders of one arch
        assert set(res["arms"]["by_arch"]["1x8"]) == {"baseline", "random_frozen"}
        pretrained = set(names(role="pretrained"))  # frozen, finetune, lpft: the arms on the pretrained encoder
        assert {"frozen", "finetune"} <= pretrained
        assert {a: set(v) for a, v in res["arms"]["by_encoder"].items()} == {"a": pretrained, "b": pretrained}
        for s in [*res["arms"]["shared"].values(), *res["arms"]["by_encoder"]["a"].values()]:
            assert 0 <= s["ci_low"] <= s["mean"] <= s["ci_high"] <= 1
        assert res["best_non_neural"] in res["arms"]["shared"]
        rows = res["comparisons"]
        assert "a: frozen vs baseline" in rows and "b: finetune vs baseline" in rows
        assert "1x8: baseline vs simple_logistic" in rows  # shared pairs once, not once per encoder
        assert sum(k.endswith("baseline vs simple_logistic") for k in rows) == 1
        for r in rows.values():
            assert r["interval"] in ("decomposition", "corrected_t")
            assert r["p_holm_size"] >= r["p_value"] or np.isnan(r["p_value"])
        key = R.key_comparisons(res)
        assert {r["reference"] for r in key} == {"baseline", res["best_non_neural"]}
        assert len(key) == 2 * len(pretrained) * 2  # 2 encoders x pretrained arms x (baseline, best non-neural)
    md = (tiny / "c.md").read_text()
    assert "### 24 labelled windows" in md and "### 36 labelled windows" in md
    assert "| 24 | a | " in md and "| 36 | b | " in md  # the summary table: a row per size and encoder
    assert 0 < (tiny / "c.png").stat().st_size < 200_000


def test_redraw_from_json(tiny):
    assert C.main(["--from-json", str(tiny / "c.json"), "--markdown", str(tiny / "again.md")]) == 0
    assert (tiny / "again.md").read_text() == (tiny / "c.md").read_text()


def test_merge_runs_joins_sizes_of_one_set_up(tiny):
    full = json.loads((tiny / "c.json").read_text())
    parts = [{**full, "sizes": {n: r}, "seconds": 1.0} for n, r in reversed(full["sizes"].items())]
    other = {**full, "encoders": {"z": {**full["encoders"]["a"], "arch": {"num_layers": 2, "hidden_size": 8}}}}
    merged = R.merge_runs([*parts, other])
    assert len(merged) == 2 and list(merged[0]["sizes"]) == ["24", "36"] and merged[0]["seconds"] == 2.0
    assert merged[0]["sizes"] == full["sizes"]


@pytest.mark.parametrize(
    "yaml, message",
    [
        ("{sizes: [50]}", "encoders must name"),
        ("{encoders: {x: /nonexistent/enc.pt}}", "/nonexistent/enc.pt not found"),
        ("{encoders: {x: y}, sizess: [50]}", "sizess"),
        ("{encoders: {x: y}, sizes: [5]}", "sizes must be"),
    ],
)
def test_expected_errors_exit_2(yaml, message, capsys, tmp_path):
    assert C.main(["--json", str(tmp_path / "c.json"), "-y", yaml]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
