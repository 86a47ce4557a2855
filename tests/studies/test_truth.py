"""The truth study (moola_lib.studies.truth): fresh sets, every arm on the whole set, one test set, resumable
by set; its summary (paired differences over sets) and the verdicts' check against the truth."""

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from moola_lib.pretraining.config import PretrainConfig
from moola_lib.studies import truth, truth_curve, truth_folds, truth_heldout, truth_markets
from moola_lib.studies.truth_join import join
from moola_lib.studies.truth_report import (
    _style,
    curves_markdown,
    difference,
    interval_text,
    pairs,
    size_scores,
    summary,
)
from moola_lib.studies.truth_verdicts import check, check_markdown, labels_check, truth_key
from moola_lib.transfer import answer, parallel
from moola_lib.transfer.extrapolation import _caveats
from moola_lib.util.config import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
QUICK_TEST = truth.QUICK["test_period"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("truth")
    assert truth.main([str(out), "--quick", "--verdicts", "2"]) == 0
    return out


def test_every_set_scores_every_arm_on_the_one_test_set(quick_run):
    results = json.loads((quick_run / "truth.json").read_text())
    sets = results["sets"]["24"]
    assert sorted(sets) == ["0", "1"]
    keys = set(sets["0"]["scores"])
    assert keys == {"1x8:baseline", "masked8:frozen", "1x8:random_frozen", "simple_logistic", "simple_boosting"}
    assert all(0 <= v <= 1 for s in sets.values() for v in s["scores"].values())
    assert results["test"]["n"] == 40 and results["encoders"] == {"masked8": "1x8"}
    windows = np.load(quick_run / "sets" / "24_0.npz")
    assert windows["masked8__frozen"].mean() == pytest.approx(sets["0"]["scores"]["masked8:frozen"])
    assert set(results["verdicts"]["24"]) == {"0", "1"}
    assert (quick_run / "truth.md").exists() and (quick_run / "truth.png").exists()


def test_a_rerun_skips_the_sets_it_holds(quick_run):
    before = (quick_run / "truth.json").read_text()
    logged = []
    truth.run_study(truth.TruthConfig.from_dict({**truth.QUICK, "verdicts": 2}), quick_run, log=logged.append)
    assert logged == [] and (quick_run / "truth.json").read_text().count('"scores"') == before.count('"scores"')


def test_sets_fitted_on_two_processes_score_as_the_serial_run(quick_run, tmp_path):
    shutil.copytree(quick_run / "encoders", tmp_path / "encoders")  # the same encoders, not pretrained again
    logged = []
    results = truth.run_study(truth.TruthConfig.from_dict(truth.QUICK), tmp_path, log=logged.append, jobs=2)
    serial = json.loads((quick_run / "truth.json").read_text())["sets"]["24"]
    assert list(results["sets"]["24"]) == ["0", "1"] and len(logged) == 2
    assert {k: s["scores"] for k, s in results["sets"]["24"].items()} == {k: s["scores"] for k, s in serial.items()}
    for k in "01":
        ours, theirs = np.load(tmp_path / "sets" / f"24_{k}.npz"), np.load(quick_run / "sets" / f"24_{k}.npz")
        assert all(np.array_equal(ours[key], theirs[key]) for key in theirs.files)


def test_the_sets_are_fresh_and_apart_from_the_test_set():
    tc = truth.TruthConfig.from_dict(truth.QUICK)
    a, b, test = truth.labelled_set(tc, 0, 0), truth.labelled_set(tc, 0, 1), truth.test_set(tc)
    assert not set(a.start) & set(b.start)
    assert a.start.max() < test.start.min()  # the test period lies after the labelled period: other bars


def test_a_paired_difference_over_sets_and_the_sets_it_needs():
    d = difference(np.array([0.80, 0.82, 0.78, 0.80]), np.array([0.75, 0.76, 0.74, 0.75]))
    assert d["difference"] == pytest.approx(0.05) and d["ci"][0] < 0.05 < d["ci"][1] and d["sets"] == 4
    assert d["sets_for_2pp"] == int(np.ceil((1.96 * d["sd"] / 0.02) ** 2))


def test_the_pairs_the_question_needs():
    found = pairs(["2x64:baseline", "2x64:random_frozen", "m:frozen", "m:finetune", "simple_logistic"], {"m": "2x64"})
    assert found == {
        "m:finetune - 2x64:baseline": ("m:finetune", "2x64:baseline"),
        "m:finetune - best non-neural": ("m:finetune", "best_non_neural"),
        "m:frozen - 2x64:baseline": ("m:frozen", "2x64:baseline"),
        "m:frozen - 2x64:random_frozen": ("m:frozen", "2x64:random_frozen"),
        "m:frozen - best non-neural": ("m:frozen", "best_non_neural"),
    }


def _results(gain: float, n_sets: int = 6) -> dict:
    rng = np.random.default_rng(0)
    sets = {}
    for k in range(n_sets):
        base = 0.7 + rng.normal(0, 0.02)
        sets[str(k)] = {"scores": {"2x64:baseline": base, "m:frozen": base + gain, "simple_boosting": base - 0.01}}
    return {"sets": {"174": sets}, "encoders": {"m": "2x64"}, "transfer": {"folds": 5}, "config": {}}


def test_the_summary_finds_a_planted_gain_and_the_best_arm():
    s = summary(_results(0.04))["174"]
    assert s["best"]["key"] == "m:frozen" and s["best"]["p_best"] == 1.0
    row = s["pairs"]["m:frozen - 2x64:baseline"]
    assert row["difference"] == pytest.approx(0.04) and row["ci"][0] == pytest.approx(0.04)
    assert s["best_non_neural"] == "simple_boosting"


def test_the_differences_read_as_curves_over_the_sizes():
    results = _results(0.04)
    results["sets"]["700"] = _results(-0.02)["sets"]["174"]
    table = curves_markdown(summary(results))
    row = next(line for line in table.splitlines() if line.startswith("| m:frozen - 2x64:baseline |"))
    assert row.split(" | ")[1].startswith("+4.0") and row.split(" | ")[2].startswith("-2.0")
    assert "| m:frozen - best non-neural |" in table and "174: simple_boosting, 700: simple_boosting" in table


def test_the_verdict_check_counts_coverage_and_regret():
    results = _results(0.04)
    name = "m:frozen - 2x64:baseline"

    def record(lo, hi, recommended):
        return {
            "comparisons": {
                name: {"mean": (lo + hi) / 2, "printed": [lo, hi], "intervals": {"hierarchical": [math.nan] * 2}}
            },
            "recommended": recommended,
        }

    results["verdicts"] = {"174": {"0": record(0.0, 0.08, "m:frozen"), "1": record(0.05, 0.09, "2x64:baseline")}}
    c = check(results)["174"]
    printed = c["comparisons"][name]["printed"]
    assert printed["coverage"] == 0.5 and printed["coverage_ci"] == pytest.approx([0.0126, 0.9874], abs=1e-4)
    # estimates 0.04 and 0.07 (sd 0.0212), half-widths 0.04 and 0.02: ratio 0.03 / (1.96 x 0.0212)
    assert printed["width_ratio"] == pytest.approx(0.03 / (1.96 * 0.03 / math.sqrt(2)))
    low, high = printed["width_ratio_ci"]
    assert low < printed["width_ratio"] < high and high / low > 30  # one df: the spread is barely measured
    assert c["comparisons"][name]["hierarchical"]["sets"] == 0  # undefined (5 x 2) is not a miss
    assert c["truly_best"] == "m:frozen" and c["best_share"] == 0.5  # boosting is not among the verdict's arms
    assert c["regret_mean"] == pytest.approx(0.02) and c["regret_max"] == pytest.approx(0.04)
    assert c["within_1pp"] == 0.5
    # estimates 0.04 and 0.07: mean 0.055, 95% t half-width 12.706 x 0.0212 / sqrt(2) = 0.1906
    assert c["estimates"][name]["mean"] == pytest.approx(0.055)
    assert c["estimates"][name]["ci"] == pytest.approx([0.055 - 0.1906, 0.055 + 0.1906], abs=1e-4)
    assert math.isnan(c["estimates"][name]["truth_cv"])  # no truth below 174: nothing to interpolate from
    # with a truth at 100 (gain 0.02), the truth where 5-fold CV trains (139.2 windows), log-linear in size,
    # and how often the printed interval covers it ([0.0, 0.08] does, [0.05, 0.09] does not)
    results["sets"]["100"] = _results(0.02)["sets"]["174"]
    c = check(results)["174"]
    at_cv = 0.02 + 0.02 * math.log(139.2 / 100) / math.log(174 / 100)
    assert c["cv_size"] == pytest.approx(139.2) and c["estimates"][name]["truth_cv"] == pytest.approx(at_cv)
    assert c["estimates"][name]["coverage_cv"] == 0.5
    table = check_markdown(check(results))
    assert f"| {name} | +4.0 | +5.5 [-13.6, +24.6] | +3.2 | 50% |" in table
    assert "| m:frozen - 2x64:baseline | +4.0 | +5.5 [-13.6, +24.6] |" in table
    assert "recommend it on 50%" in table and "| printed | 50% | 50.0% | 0.72 (0.72-0.72) |" in table
    assert "| hierarchical |" not in table.split("| comparison |")[0]  # undefined on every set: no summary row
    assert truth_key("frozen", "m", "2x64") == "m:frozen" and truth_key("baseline", "m", "2x64") == "2x64:baseline"
    assert truth_key("rocket_minirocket", "m", "2x64") == "rocket_minirocket"


def test_a_set_keeps_its_market_whatever_the_other_sizes():
    by_size = truth.TruthConfig.from_dict({**truth.QUICK, "sizes": [30, 24]})
    alone = truth.TruthConfig.from_dict(truth.QUICK)
    assert np.array_equal(truth.labelled_set(by_size, 1, 0).start, truth.labelled_set(alone, 0, 0).start)
    seeds = {truth.set_seed(size, k) for size in (*truth.SIZE_SLOTS, 24, 1000) for k in range(20)}
    assert len(seeds) == 7 * 20 and truth.TEST_MARKET not in seeds and truth.set_seed(174, 0) == truth.SET_MARKET


def test_a_rerun_with_other_settings_is_refused_before_any_fit(quick_run, capsys):
    before = (quick_run / "truth.json").read_text()
    assert truth.main([str(quick_run), "--quick", "--arms", "baseline", "simple"]) == 2
    assert "written with other settings (arms)" in capsys.readouterr().err
    assert (quick_run / "truth.json").read_text() == before


def _edited_settings(quick_run, out):
    """A copy of the quick study whose sets were fitted with other read-outs than the settings resolve to now
    (as if params/transfer_full.yaml had been edited since), and the stored settings lacking a newer option."""
    shutil.copytree(quick_run, out)
    results = json.loads((out / "truth.json").read_text())
    results["transfer"]["readouts"] = ["mean:both"]
    del results["transfer"]["patience"]  # an option the file predates is no change
    (out / "truth.json").write_text(json.dumps(results))
    return (out / "truth.json").read_text()


def test_a_rerun_whose_transfer_settings_resolve_otherwise_is_refused(quick_run, tmp_path, capsys):
    # resuming would mix two studies' sets under one mean
    before = _edited_settings(quick_run, tmp_path / "copy")
    assert truth.main([str(tmp_path / "copy"), "--quick"]) == 2
    err = capsys.readouterr().err
    assert "written with other settings (transfer.readouts)" in err and "Traceback" not in err
    assert (tmp_path / "copy" / "truth.json").read_text() == before


@pytest.mark.parametrize("study", [truth_folds, truth_heldout, truth_markets])
def test_the_bias_studies_refuse_a_truth_folder_fitted_with_other_transfer_settings(study, quick_run, tmp_path, capsys):
    # their fits would not follow the recipe the folder's truth was measured with (truth_curve reads the folder
    # through the same truth_folder once its --heldout folder is found)
    _edited_settings(quick_run, tmp_path / "copy")
    assert study.main([str(tmp_path / "copy"), str(tmp_path / "out"), "--size", "24", "--sets", "2"]) == 2
    err = capsys.readouterr().err
    assert "other transfer settings" in err and "transfer.readouts" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "sets").exists()


def test_labels_needed_is_held_against_the_truth_curve():
    results = _results(0.04)
    results["sets"]["700"] = _results(0.01)["sets"]["174"]  # the true gain shrinks with the labels
    name = "m:frozen - 2x64:baseline"

    def record(se, mean):
        needed = {
            "pair": name,
            "mde": 2.8 * se,
            "observed": 400,
            "predicted_se": {"174": se, "696": se / 2, "1392": se / 8**0.5},
        }
        return {
            "labels_needed": needed,
            "comparisons": {name: {"mean": mean, "se": se, "printed": [mean - 2 * se, mean + 2 * se], "intervals": {}}},
            "recommended": "m:frozen",
        }

    results["verdicts"] = {
        "174": {"0": record(0.02, 0.05), "1": record(0.02, 0.03)},
        "700": {"0": record(0.01, 0.02), "1": record(0.01, 0.0)},
    }
    x = labels_check(results, "174")
    assert x["pair"] == name and x["observed_labels"] == 400
    at_174, at_700 = x["rows"]
    assert at_174["truth"] == pytest.approx(0.04) and at_174["mde_predicted"] == pytest.approx(0.056)
    assert at_700["mde_predicted"] == pytest.approx(2.8 * 0.01 * (696 / 700) ** 0.5, rel=1e-3)  # log-log between
    assert at_700["detected"] is False and at_700["truth"] == pytest.approx(0.01)  # 0.04 held fixed would be seen
    assert at_700["se_printed"] == pytest.approx(0.01) and at_700["sd_true"] == pytest.approx(np.std([0.02, 0], ddof=1))
    assert "labels_needed against the truth (2 verdicts of 174" in check_markdown(check(results))


def test_a_verdict_stopped_part_way_continues_with_the_same_record(quick_run, tmp_path, monkeypatch):
    shutil.copytree(quick_run / "encoders", tmp_path / "encoders")
    tc = truth.TruthConfig.from_dict({**truth.QUICK, "verdicts": 1})
    encoders = {"masked8": SimpleNamespace(arch={"num_layers": 1, "hidden_size": 8})}
    fit, calls = parallel.arm_probabilities, []

    def stopped(*args, **kwargs):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(1)
        return fit(*args, **kwargs)

    monkeypatch.setattr(parallel, "arm_probabilities", stopped)
    results = {"sets": {}}
    with pytest.raises(KeyboardInterrupt):
        truth.run_verdicts(tc, 0, tmp_path, results, encoders, log=lambda _: None)
    assert len(list((tmp_path / "verdict-runs" / "24-0" / "transfer_fits").glob("*.npz"))) == 5
    monkeypatch.undo()
    truth.run_verdicts(tc, 0, tmp_path, results, encoders, log=lambda _: None)
    stored = json.loads((quick_run / "truth.json").read_text())["verdicts"]["24"]["0"]
    assert json.loads(json.dumps(results["verdicts"]["24"]["0"])) == stored
    assert not (tmp_path / "verdict-runs").exists()


def test_the_verdicts_run_on_the_jobs_asked_for(quick_run, tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(
        truth, "run_verdict", lambda labelled, path, cfg, *a: seen.append(cfg.n_jobs) or {"recommended": "x"}
    )
    tc = truth.TruthConfig.from_dict({**truth.QUICK, "verdicts": 2})
    results = {"sets": {}, "verdicts": {"24": {"0": {}}}}  # set 0 is recorded: only set 1 runs
    truth.run_verdicts(
        tc,
        0,
        tmp_path,
        results,
        {"masked8": SimpleNamespace(arch={"num_layers": 1, "hidden_size": 8})},
        log=lambda _: None,
        jobs=2,
    )
    assert seen == [2] and set(results["verdicts"]["24"]) == {"0", "1"}
    assert truth.main([str(quick_run), "--quick", "--jobs", "0"]) == 2
    assert "--jobs must be >= 1" in capsys.readouterr().err


def test_the_labels_needed_caveat_quotes_the_committed_truth_curve():
    # the caveat quotes the study's curve as literals: they must follow docs/experiments/truth/truth.json
    results = json.loads((Path(__file__).parents[2] / "docs/experiments/truth/truth.json").read_text())
    curve = {}
    for size, sets in sorted(results["sets"].items(), key=lambda kv: int(kv[0])):
        scores = size_scores(sets)
        curve[size] = difference(scores["masked64:frozen"], scores["2x64:baseline"])["difference"]
    note = next(c for c in _caveats([{"effect": 0.1, "se": 0.01}], True, "balanced_accuracy", 174) if "fixed" in c)
    quoted = ", ".join(f"{100 * d:+.1f}" for d in curve.values()) + " pp at " + ", ".join(curve)
    assert quoted in note


def test_the_verdicts_caution_quotes_the_committed_bias():
    # answer.py's caution about small leads over the baseline quotes the held-out study's bias over its sets
    docs = Path(__file__).parents[2] / "docs/experiments"
    results = json.loads((docs / "truth/truth.json").read_text())
    heldout = json.loads((docs / "truth_heldout/heldout.json").read_text())
    bias = truth_heldout.decomposition(results, heldout)["masked64:frozen - 2x64:baseline"]["bias"]
    assert f"{interval_text(bias)} pp over {bias['sets']} sets of 174" in " ".join(answer.__doc__.split())
    assert 0.02 <= bias["difference"] <= answer.TESTBED_OPTIMISM  # "2-3 points", and below the line's threshold


def test_the_2x128_encoders_are_picked_on_the_command_line(tmp_path, monkeypatch, capsys):
    seen = []

    def stop(tc, out, jobs):  # the config the study would run, then no fit
        seen.append(tc)
        raise ConfigError("stopped before any fit")

    monkeypatch.setattr(truth, "run_study", stop)
    assert truth.main([str(tmp_path), "--encoders", "masked128", "forecast128", "--verdicts", "10"]) == 2
    tc = seen[0]
    assert list(tc.encoders) == ["masked128", "forecast128"] and tc.verdict_encoder == "masked128"
    configs = [PretrainConfig.from_dict(options) for options in tc.encoders.values()]
    assert {(c.hidden_size, c.num_layers, c.objective) for c in configs} == {(128, 2, "masked"), (128, 2, "forecast")}
    assert all(c.synthetic_end < tc.period[0] for c in configs)  # the labelled sets come after pretraining
    assert truth.main([str(tmp_path)]) == 2 and list(seen[1].encoders) == ["masked64", "forecast64"]
    with pytest.raises(SystemExit) as exit_:
        truth.main([str(tmp_path), "--encoders", "masked256"])
    assert exit_.value.code == 2 and "invalid choice: 'masked256'" in capsys.readouterr().err


def _other_encoders(quick_run: Path, folder: Path, gain: float) -> Path:
    """A copy of the quick study as if its encoder were another architecture's ("masked8b", "1x16") scoring
    ``gain`` above the original on every set: a second folder fitted on the same sets."""
    shutil.copytree(quick_run, folder, ignore=shutil.ignore_patterns("encoders"))
    results = json.loads((folder / "truth.json").read_text())
    for s in results["sets"]["24"].values():
        s["scores"] = {_renamed(k): v + gain * (":" in k) for k, v in s["scores"].items()}
    results["encoders"] = {"masked8b": "1x16"}
    (folder / "truth.json").write_text(json.dumps(results))
    for k in "01":
        arrays = dict(np.load(quick_run / "sets" / f"24_{k}.npz"))
        np.savez_compressed(folder / "sets" / f"24_{k}.npz", **{_renamed(n, "__"): a for n, a in arrays.items()})
    return folder


def _renamed(key: str, sep: str = ":") -> str:
    return key.replace(f"masked8{sep}", f"masked8b{sep}").replace(f"1x8{sep}", f"1x16{sep}")


def test_two_folders_join_on_their_common_sets(quick_run, tmp_path, capsys):
    other = _other_encoders(quick_run, tmp_path / "other", 0.01)
    joined, windows = join([quick_run, other])
    assert joined["encoders"] == {"masked8": "1x8", "masked8b": "1x16"} and list(joined["sets"]["24"]) == ["0", "1"]
    first = json.loads((quick_run / "truth.json").read_text())["sets"]["24"]["1"]["scores"]
    assert joined["sets"]["24"]["1"]["scores"]["masked8b:frozen"] == pytest.approx(first["masked8:frozen"] + 0.01)
    assert {"masked8:frozen", "masked8b:frozen", "1x16:baseline", "simple_logistic"} <= set(windows["24"])
    s = summary(joined, windows)["24"]
    sets = joined["sets"]["24"].values()
    expected = np.mean([x["scores"]["masked8b:frozen"] - x["scores"]["1x8:baseline"] for x in sets])
    assert s["pairs"]["masked8b:frozen - 1x8:baseline"]["difference"] == pytest.approx(expected)
    assert "masked8:frozen - 1x16:baseline" in s["pairs"]  # each pretrained arm meets every architecture's baseline
    out = tmp_path / "joined"
    assert truth.main([str(out), "--join", str(quick_run), str(other)]) == 0
    text = (out / "truth.md").read_text()
    assert "| masked8b:frozen |" in text and "on their common sets (2 at 24)" in text and (out / "truth.png").exists()
    assert not (out / "truth.json").exists()
    assert truth.main([str(quick_run), "--join", str(quick_run), str(other)]) == 2  # not into a study's folder
    assert "a joined report goes to a folder of its own" in capsys.readouterr().err


def test_folders_of_other_sets_are_refused(quick_run, tmp_path):
    other = _other_encoders(quick_run, tmp_path / "other", 0.0)
    results = json.loads((other / "truth.json").read_text())
    results["sets"]["24"]["1"]["scores"]["simple_logistic"] += 0.05  # a shared arm scored otherwise: another set
    (other / "truth.json").write_text(json.dumps(results))
    with pytest.raises(ConfigError, match="set 1 of size 24: simple_logistic scored .* the folders did not fit"):
        join([quick_run, other])
    results["config"]["test_size"] = 80
    (other / "truth.json").write_text(json.dumps(results))
    with pytest.raises(ConfigError, match=r"other set settings than .* \(test_size\)"):
        join([quick_run, other])
    with pytest.raises(ConfigError, match="not found"):
        join([quick_run, tmp_path / "nowhere"])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "truth.json").write_text('{"sets": {')
    with pytest.raises(ConfigError, match="broken/truth.json: not JSON"):
        join([quick_run, tmp_path / "broken"])
    assert truth.main([str(tmp_path / "broken"), "--report-only"]) == 2  # the one reader: one line, no traceback
    assert truth.main([str(tmp_path / "j"), "--join", str(quick_run), "--sizes", "174"]) == 2  # nothing to fit


def test_the_figure_tells_architectures_and_objectives_apart():
    archs = {"masked64": "2x64", "forecast64": "2x64", "masked128": "2x128"}
    m64, f64, m128 = (_style(k, archs) for k in ("masked64:frozen", "forecast64:frozen", "masked128:frozen"))
    assert m64["color"] == f64["color"] == m128["color"]  # one arm, one colour
    assert m64["marker"] != m128["marker"] and _style("2x128:baseline", archs)["marker"] == m128["marker"]
    assert f64["markerfacecolor"] == "none" and f64["linestyle"] == "--" and m64["markerfacecolor"] is None
    assert _style("simple_boosting", archs)["marker"] == "o"


def test_the_fold_grouping_study_pairs_its_estimates_with_the_truth_and_the_verdicts(quick_run, tmp_path, capsys):
    out = tmp_path / "folds"
    assert truth_folds.main([str(quick_run), str(out), "--size", "24", "--sets", "2", "--blocks", "1", "3"]) == 0
    folds = json.loads((out / "folds.json").read_text())
    results = json.loads((quick_run / "truth.json").read_text())
    rows = {(r["comparison"], r["grouping"]): r for r in truth_folds.bias_rows(results, folds)}
    name = "masked8:frozen - 1x8:baseline"
    # block 1 is the session: the folder's own verdicts' recipe (quick: 2 folds x 1 repeat), the same estimates
    assert rows[name, "session (rerun)"]["shift"]["difference"] == 0
    assert rows[name, "session (rerun)"]["bias"] == rows[name, truth_folds.VERDICTS]["bias"]
    # the bias is the estimate minus the set's own true difference, paired by set
    sets, blocks = results["sets"]["24"], folds["blocks"]["3"]
    true = [sets[k]["scores"]["masked8:frozen"] - sets[k]["scores"]["1x8:baseline"] for k in ("0", "1")]
    estimate = [blocks[k]["comparisons"][name]["mean"] for k in ("0", "1")]
    assert rows[name, "blocks of 3 days"]["bias"]["difference"] == pytest.approx(np.mean(estimate) - np.mean(true))
    # 3-day blocks join sessions: other folds than the sessions'
    assert any(r["shift"]["difference"] != 0 for (_, g), r in rows.items() if g == "blocks of 3 days")
    assert "| masked8:frozen - 1x8:baseline | blocks of 3 days | 2 |" in (out / "folds.md").read_text()
    logged = []
    wanted = truth_folds.settings(quick_run, 24, 1, truth_folds.ARMS)
    truth_folds.run_folds(quick_run, out, wanted, [1, 3], 2, 1, log=logged.append)
    assert logged == []  # resumable: nothing left to fit


def test_the_fold_grouping_study_refuses_other_settings_and_its_truth_folder(quick_run, tmp_path, capsys):
    out = tmp_path / "folds"
    assert truth_folds.main([str(quick_run), str(out), "--size", "24", "--sets", "2", "--blocks", "1"]) == 0
    before = (out / "folds.json").read_text()
    capsys.readouterr()
    assert truth_folds.main([str(quick_run), str(out), "--size", "24", "--sets", "2", "--repeats", "2"]) == 2
    assert "other settings (repeats)" in capsys.readouterr().err and (out / "folds.json").read_text() == before
    assert truth_folds.main([str(quick_run), str(quick_run), "--size", "24"]) == 2
    assert "the truth folder itself" in capsys.readouterr().err
    assert truth_folds.main([str(quick_run), str(tmp_path / "new"), "--report-only"]) == 2
    assert "not found" in capsys.readouterr().err
    assert truth_folds.main([str(quick_run), str(tmp_path / "more"), "--size", "24", "--sets", "3"]) == 2
    assert "fewer than 3 sets of size 24" in capsys.readouterr().err


def test_the_held_out_study_reproduces_the_verdicts_estimates_and_takes_their_bias_apart(quick_run, tmp_path):
    out = tmp_path / "heldout"
    assert truth_heldout.main([str(quick_run), str(out), "--size", "24", "--sets", "2"]) == 0
    results = json.loads((quick_run / "truth.json").read_text())
    heldout = json.loads((out / "heldout.json").read_text())
    name = "masked8:frozen - 1x8:baseline"
    for k, s in heldout["sets"].items():  # the quick verdicts are one repeat: the same folds, splits and seeds
        estimate = s["cv"]["masked8:frozen"] - s["cv"]["1x8:baseline"]
        assert estimate == pytest.approx(results["verdicts"]["24"][k]["comparisons"][name]["mean"], abs=1e-12)
        assert s["test"] != s["cv"]  # the same models on the test set: another score
    row = truth_heldout.decomposition(results, heldout)[name]
    parts = row["held_out"]["difference"] + row["training_size"]["difference"]
    assert parts == pytest.approx(row["bias"]["difference"]) and row["estimate"] - row["truth"] == pytest.approx(parts)
    assert f"| {name} | 2 |" in (out / "heldout.md").read_text()
    logged = []
    truth_heldout.run_heldout(quick_run, out, heldout["settings"], 2, 1, logged.append)
    assert logged == []  # resumable: nothing left to fit
    # later months scored too: here the test set's own period, so the same windows and the same scores
    args = [str(quick_run), str(tmp_path / "later"), "--size", "24", "--sets", "2", "--later-period", *QUICK_TEST]
    assert truth_heldout.main(args) == 0
    later = json.loads((tmp_path / "later" / "heldout.json").read_text())
    assert all(later["sets"][k][p] == heldout["sets"][k][p] for k in ("0", "1") for p in ("cv", "test"))
    assert later["sets"]["0"]["later"] == later["sets"]["0"]["test"]
    taken = truth_heldout.decomposition(results, later)[name]
    assert taken["later"] == row["held_out"] and taken["period"]["difference"] == 0
    assert "estimate - same models, later months" in (tmp_path / "later" / "heldout.md").read_text()


def test_a_learning_curve_projection_is_the_line_through_its_points():
    n_train = {0.25: 30.0, 0.5: 60.0, 1.0: 120.0}
    line = {f: 0.5 + 0.05 * math.log(n) for f, n in n_train.items()}
    got = truth_curve.projections(line, n_train, 150)
    assert got["raw"] == line[1.0]
    assert got["two_point"] == pytest.approx(0.5 + 0.05 * math.log(150)) == got["log_linear"]
    bent = {**line, 0.25: line[0.25] - 0.03}  # a curve flattening at the top: the two estimators part
    assert truth_curve.projections(bent, n_train, 150)["log_linear"] > got["two_point"]


def test_the_curve_study_projects_the_held_out_estimates_and_holds_them_against_the_truth(quick_run, tmp_path, capsys):
    study = tmp_path / "truth"  # sets of 48: a fraction of a training fold of 24 leaves too few for an inner split
    shutil.copytree(quick_run / "encoders", study / "encoders")
    quick48 = {**truth.QUICK, "sizes": [48], "verdict_sizes": [48], "verdicts": 2}
    truth.run_study(truth.TruthConfig.from_dict(quick48), study, log=lambda _: None)
    base = [str(study), "--size", "48", "--sets", "2"]
    assert truth_heldout.main([base[0], str(tmp_path / "h"), *base[1:]]) == 0
    args = [base[0], str(tmp_path / "c"), *base[1:], "--heldout", str(tmp_path / "h"), "--fractions", "0.5"]
    assert truth_curve.main(args) == 0
    results = json.loads((study / "truth.json").read_text())
    heldout = json.loads((tmp_path / "h" / "heldout.json").read_text())
    curve = json.loads((tmp_path / "c" / "curve.json").read_text())
    for s in curve["sets"].values():
        assert s["cv"]["0.5"].keys() == heldout["sets"]["0"]["cv"].keys()
        assert s["n_train"]["0.5"] < s["n_train"]["1.0"]
    name = "masked8:frozen - 1x8:baseline"
    rows = truth_curve.error_rows(results, heldout, curve)[name]
    assert rows["raw"]["bias"]["difference"] == pytest.approx(
        truth_heldout.decomposition(results, heldout)[name]["bias"]["difference"]
    )
    two, line = rows["two_point"], rows["log_linear"]  # two points: one line
    assert (line["bias"]["difference"], line["rmse"]) == pytest.approx((two["bias"]["difference"], two["rmse"]))
    assert two["rmse"] != rows["raw"]["rmse"]  # the projection moved the estimates
    # the quick verdicts are one repeat on the same folds: the verdict's estimate is the held-out one
    assert rows["verdict_raw"]["bias"]["difference"] == pytest.approx(rows["raw"]["bias"]["difference"])
    assert rows["verdict_two_point"]["rmse"] == pytest.approx(rows["two_point"]["rmse"])
    other = truth_curve.error_rows(results, heldout, curve)["simple_logistic - 1x8:baseline"]  # the verdict's
    assert other["verdict_raw"]["bias"]["difference"] == pytest.approx(other["raw"]["bias"]["difference"])  # turned
    assert f"| {name} | two_point | 2 |" in (tmp_path / "c" / "curve.md").read_text()
    logged = []
    truth_curve.run_curve(study, tmp_path / "c", curve["settings"], 2, 1, logged.append)
    assert logged == []  # resumable: nothing left to fit
    assert truth_curve.main([*args[:-1], "1.0"]) == 2 and "between 0 and 1" in capsys.readouterr().err
    assert truth_curve.main([*args[:-3], str(tmp_path / "none")]) == 2
    assert "heldout.json: not found" in capsys.readouterr().err


def test_the_markets_study_reproduces_the_truth_on_its_test_market_and_scores_fresh_ones(quick_run, tmp_path, capsys):
    out = tmp_path / "markets"
    args = [str(quick_run), str(out), "--size", "24", "--sets", "2", "--markets", "3", "--market-size", "20"]
    assert truth_markets.main(args) == 0
    results = json.loads((quick_run / "truth.json").read_text())
    markets = json.loads((out / "markets.json").read_text())
    s = markets["sets"]["0"]["markets"]
    assert set(s) == {"test", "m0", "m1", "m2"} and all(len(s[m]["masked8:frozen"]) == 2 for m in ("m0", "m1"))
    # the whole-set models of the truth study: on its test market, its scores exactly
    assert s["test"] == pytest.approx(results["sets"]["24"]["0"]["scores"], abs=1e-12)
    table = truth_markets.rows(results, markets)
    name = "masked8:frozen - 1x8:baseline"
    assert all(r["truth_gap"] == 0 for r in table.values()) and s["m0"] != s["m1"]
    verdicts = [results["verdicts"]["24"][k]["comparisons"][name]["mean"] for k in "01"]
    truths = [results["sets"]["24"][k]["scores"] for k in "01"]
    bias = np.mean([v - t["masked8:frozen"] + t["1x8:baseline"] for v, t in zip(verdicts, truths)])
    assert table[name]["bias_test"]["difference"] == pytest.approx(bias)
    assert f"| {name} | 2 |" in (out / "markets.md").read_text()
    logged = []
    truth_markets.run_markets(quick_run, out, markets["settings"], 2, 1, logged.append)
    assert logged == []  # resumable: nothing left to fit
    assert truth_markets.main([*args[:-1], "30"]) == 2  # other settings: refused
    # more windows than the period holds: one line, before the folder is made
    assert truth_markets.main([args[0], str(tmp_path / "m"), *args[2:6], "--market-size", "100000"]) == 2
    assert "--market-size 100000: synthetic market" in capsys.readouterr().err and not (tmp_path / "m").exists()
    # the fresh markets over another period: other windows, the same test market
    period = ["2025-08-01", "2025-08-31"]
    assert truth_markets.main([str(quick_run), str(tmp_path / "period"), *args[2:], "--fresh-period", *period]) == 0
    other = json.loads((tmp_path / "period" / "markets.json").read_text())["sets"]["0"]["markets"]
    assert other["test"] == s["test"] and other["m0"] != s["m0"]
    assert "over 2025-08-01 .. 2025-08-31" in (tmp_path / "period" / "markets.md").read_text()


def test_the_markets_study_scores_each_sets_own_market_without_its_windows(quick_run, tmp_path):
    tc = truth.TruthConfig.from_dict(json.loads((quick_run / "truth.json").read_text())["config"])
    own, train = truth_markets.own_market(tc, 0, 1, 30), truth.labelled_set(tc, 0, 1)
    assert 0 < len(own) <= 30 and set(own.y) == {0, 1}
    for a, b in zip(own.start, own.end):  # no window of the set's own market shares a bar with the set's
        assert not ((train.start <= b) & (train.end >= a)).any()
    lo, hi = (pd.Timestamp(d, tz="UTC") for d in tc.period)  # the set's period
    assert own.start.min() >= lo and own.end.max() < hi + pd.Timedelta(days=1)
    out = tmp_path / "own"
    args = [str(quick_run), str(out), "--size", "24", "--sets", "2", "--markets", "2", "--market-size", "20"]
    assert truth_markets.main([*args, "--own-market", "30"]) == 0
    markets = json.loads((out / "markets.json").read_text())
    assert all(len(s["markets"]["own"]["masked8:frozen"]) == 2 for s in markets["sets"].values())
    row = truth_markets.rows(json.loads((quick_run / "truth.json").read_text()), markets)[
        "masked8:frozen - 1x8:baseline"
    ]
    own_d = [
        np.mean(np.subtract(s["markets"]["own"]["masked8:frozen"], s["markets"]["own"]["1x8:baseline"]))
        for s in markets["sets"].values()
    ]
    fresh_d = [
        np.mean([np.subtract(s["markets"][m]["masked8:frozen"], s["markets"][m]["1x8:baseline"]) for m in ("m0", "m1")])
        for s in markets["sets"].values()
    ]
    assert row["own"]["difference"] == pytest.approx(np.mean(own_d) - np.mean(fresh_d))
    assert "bias_own" in row and "own market - fresh markets" in (out / "markets.md").read_text()
    assert truth_markets.main([*args[:1], str(tmp_path / "big"), *args[2:], "--own-market", "100000"]) == 2
    assert not (tmp_path / "big").exists()


def test_the_markets_spread_is_split_into_window_noise_and_the_markets_own():
    offsets = np.array([0.0, 0.02, 0.05, -0.01])  # per market; each market's halves +-0.01 apart from its mean
    sets = np.array([0.0, 0.01, -0.01])  # per set
    fresh = offsets[None, :, None] + sets[:, None, None] + np.array([0.01, -0.01])[None, None, :]
    spread = truth_markets.market_spread(fresh)
    assert spread["per_market"] == pytest.approx(offsets)
    assert spread["sd"] == pytest.approx(np.std(offsets, ddof=1)) and spread["noise_sd"] == pytest.approx(0.01)
    assert spread["market_sd"] == pytest.approx(np.sqrt(np.var(offsets, ddof=1) - 0.01**2))
    low, high = spread["ci"]
    assert spread["difference"] == pytest.approx(offsets.mean()) and low < spread["difference"] < high
