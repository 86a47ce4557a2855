"""Every command line of the project answers every expected error -- a bad value of any of its options, an
output path that cannot be written, a file that is not what it should be -- with one line ``error: ...`` on
stderr and exit status 2, without a traceback, before any work: nothing is written (``moola_lib.util.cli``).

Each command runs in-process as ``python -m`` runs it: ``runpy`` executes the module's ``__main__`` block
(so a command whose block skipped the shared error policy would fail here), with ``sys.argv`` set."""

import runpy
import sys
import warnings

import pytest

NOT_UTF8 = "epochs: 3  # f\xfcr\n".encode("latin-1")

# module -> (case, arguments, a part of the one error line); in the arguments {tmp} is a fresh folder, {file}
# an existing file, {latin1} a parameters file that is not UTF-8, {empty} an empty file, {list} a JSON list,
# {other} a JSON object of another kind, {data} a folder holding no run (a .git folder and a data file)
CASES = {
    "moola_lib.run_notebook": [
        ("no-name", [], "give a notebook name"),
        ("unknown-notebook", ["pretrian"], "no notebook"),
        ("unknown-flag", ["eda", "--bogus"], "unrecognized arguments: --bogus"),
        ("unknown-parameter", ["eda", "-p", "n_windowz", "3", "--run-dir", "{tmp}/run"], "'n_windowz'"),
        ("missing-parameters-file", ["eda", "-f", "{tmp}/missing.yaml"], "cannot be read"),
        ("parameters-file-not-utf8", ["eda", "-f", "{latin1}"], "not UTF-8 text"),
        ("invalid-yaml", ["eda", "-y", "a: [1"], "not valid YAML"),
        ("run-dir-a-file", ["eda", "--run-dir", "{file}"], "exists and is not a directory"),
        ("overwrite-a-folder-without-run", ["eda", "--run-dir", "{data}", "--overwrite"], "nothing was deleted"),
        ("report-missing", ["--report", "{tmp}/missing.ipynb"], "no executed notebook"),
        ("report-not-a-notebook", ["--report", "{other}", "--run-dir", "{tmp}/run"], "not a notebook"),
        ("report-broken-notebook", ["--report", "{broken}"], "not a readable notebook"),
    ],
    "moola_lib.pretrain": [
        ("no-run-dir", [], "required: run_dir"),
        ("run-dir-a-file", ["{file}", "-p", "device", "cpu"], "exists and is not a directory"),
        ("unknown-parameter", ["{tmp}/run", "-p", "epochz", "1"], "unknown option 'epochz'"),
        ("epochs", ["{tmp}/run", "-p", "epochs", "0"], "epochs must be >= 1"),
        ("device", ["{tmp}/run", "-p", "device", "gpu"], "must be one of"),
        ("seed", ["{tmp}/run", "-p", "seed", str(2**63)], "seed must be in [0, 2**63)"),
        ("hidden-size", ["{tmp}/run", "-p", "hidden_size", "100000"], "hidden_size must be <="),
        ("batch-size", ["{tmp}/run", "-p", "batch_size", "10000000"], "batch_size must be <="),
        ("memory", ["{tmp}/run", "-p", "batch_size", "1000000", "-p", "device", "cpu"], "GiB to train"),
        ("exclude-reversed", ["{tmp}/run", "-y", "exclude: [[2025-02-01, 2025-01-01]]"], "ends before it starts"),
        ("parameters-file-not-utf8", ["{tmp}/run", "-f", "{latin1}"], "not UTF-8 text"),
        ("missing-data", ["{tmp}/run", "-p", "data_path", "{tmp}/missing.csv", "-p", "device", "cpu"], "missing.csv"),
    ],
    "moola_lib.bench": [
        ("threads-zero", ["--threads", "0"], "--threads takes a count >= 1"),
        ("threads-text", ["--threads", "x"], "invalid int value"),
        ("device", ["--device", "gpu"], "invalid choice"),
        ("json-under-a-file", ["--tiny", "--json", "{file}/bench.json"], "is not a folder"),
        ("json-a-folder", ["--tiny", "--json", "{tmp}"], "it is a folder"),
    ],
    "moola_lib.gpu_check": [
        ("out-dir-a-file", ["{file}", "--dry-run"], "is not a folder"),
        ("budget-negative", ["{tmp}/check", "--budget", "-5"], "--budget takes a number of seconds > 0"),
        ("budget-nan", ["{tmp}/check", "--budget", "nan"], "--budget takes a number of seconds > 0"),
        ("budget-text", ["{tmp}/check", "--budget", "x"], "invalid float value"),
    ],
    "moola_lib.tools.contention": [
        ("threads", ["--threads", "0"], "--threads takes positive counts"),
        ("runs", ["--runs", "0"], "--runs takes a count >= 1"),
        ("busy", ["--busy", "-1"], "--busy takes counts"),
        ("timeout", ["--timeout", "0"], "--timeout takes a number of seconds > 0"),
        ("epochs", ["--epochs", "0"], "epochs must be >= 1"),
        ("json-under-a-file", ["--json", "{file}/c.json"], "is not a folder"),
        ("unknown-parameter", ["-p", "batchsize", "64"], "unknown option 'batchsize'"),
    ],
    "moola_lib.studies.validate": [
        ("unknown-size", ["--quick", "-p", "replicate", "3"], "unknown option 'replicate'"),
        ("json-under-a-file", ["--quick", "--json", "{file}/v.json"], "is not a folder"),
        ("markdown-a-folder", ["--quick", "--markdown", "{tmp}"], "it is a folder"),
        ("parameters-file-not-utf8", ["--quick", "-f", "{latin1}"], "not UTF-8 text"),
        ("rescore-empty", ["--rescore", "{empty}", "--json", "{tmp}/v.json"], "not the results of a validation run"),
        ("rescore-a-list", ["--rescore", "{list}", "--json", "{tmp}/v.json"], "not the results of a validation run"),
        ("rescore-other", ["--rescore", "{other}", "--json", "{tmp}/v.json"], "not the results of a validation run"),
    ],
    "moola_lib.studies.curves": [
        ("from-json-empty", ["--from-json", "{empty}"], "cannot be read as JSON"),
        ("from-json-missing", ["--from-json", "{tmp}/missing.json"], "No such file"),
        ("from-json-a-list", ["--from-json", "{list}"], "not a results file of transfer.curves"),
        ("from-json-another-file", ["--from-json", "{other}"], "not a results file of transfer.curves"),
        ("markdown-under-a-file", ["--from-json", "{other}", "--markdown", "{file}/c.md"], "is not a folder"),
        ("json-under-a-file", ["-y", "{{encoders: {{a: x.pt}}}}", "--json", "{file}/c.json"], "is not a folder"),
        ("figure-a-folder", ["-y", "{{encoders: {{a: x.pt}}}}", "--figure", "{tmp}"], "it is a folder"),
        ("unknown-option", ["-y", "{{encoderz: {{}}}}"], "unknown option 'encoderz'"),
        ("sizes", ["-y", "{{sizes: [5]}}"], "sizes must be a list of sizes >= 10"),
        ("missing-encoder", ["-y", "{{encoders: {{a: {tmp}/x.pt}}}}", "--json", "{tmp}/c.json"], "x.pt not found"),
    ],
    "moola_lib.studies.ceiling": [
        ("replicates-negative", ["--replicates", "-1"], "replicates must be >= 1"),
        ("replicates-text", ["--replicates", "x"], "invalid int value"),
        ("difficulty-nan", ["--difficulty", "nan"], "difficulty must lie in [0, 1]"),
        ("difficulty-large", ["--difficulty", "2"], "difficulty must lie in [0, 1]"),
        ("train-n", ["--train-n", "0"], "train_n and test_n must be >= 20"),
        ("test-n", ["--test-n", "5"], "train_n and test_n must be >= 20"),
        ("seed", ["--seed", "-1"], "seed must be in [0, 2**31)"),
    ],
    "moola_lib.studies.labelling_study": [
        ("no-out", [], "required: --out"),
        ("out-a-file", ["--out", "{file}"], "is not a folder"),
        ("figure-under-a-file", ["--out", "{tmp}/s", "--figure", "{file}/f.png"], "is not a folder"),
        ("strategies", ["--out", "{tmp}/s", "--strategies", "random,clever"], "strategies"),
        ("repeats", ["--out", "{tmp}/s", "--repeats", "0"], "repeats and batch must be >= 1"),
        ("seed-labels", ["--out", "{tmp}/s", "--seed-labels", "3"], "seed_labels an even number"),
        ("budget", ["--out", "{tmp}/s", "--budget", "5"], "budget (5) must exceed"),
        ("flip-rate", ["--out", "{tmp}/s", "--flip-rate", "0.7"], "0 <= flip_rate < 0.5"),
        ("heldout-n", ["--out", "{tmp}/s", "--heldout-n", "3"], "heldout_n >= 20"),
        ("market-seed", ["--out", "{tmp}/s", "--first-market-seed", "-1"], "must be >= 0"),
        ("pool-dates", ["--out", "{tmp}/s", "--pool-start", "not a date"], "two dates, in order"),
        ("repeats-text", ["--out", "{tmp}/s", "--repeats", "x"], "invalid int value"),
    ],
}
CASES["moola_lib.classify"] = [
    ("no-command", [], "required"),
    ("unknown-arm", ["fit", "{tmp}/clf", "--arm", "frozn"], "unknown arm 'frozn'"),
    ("threshold", ["scan", "{tmp}/m", "--data", "x.csv", "--out", "{tmp}/o.csv", "--threshold", "1.5"], "probability"),
    ("stride", ["scan", "{tmp}/m", "--data", "x.csv", "--out", "{tmp}/o.csv", "--stride", "0"], "whole number"),
    ("no-model", ["scan", "{tmp}/nomodel", "--data", "{file}", "--out", "{tmp}/o.csv"], "model.json"),
    ("background", ["fit", "{tmp}/clf", "--arm", "simple_logistic", "--background", "none"], "background class 'none'"),
]
CASES["moola_lib.studies.truth"] = [
    ("sets", ["{tmp}/t", "--sets", "1"], "sets must be 2 .. 1000"),
    ("sizes", ["{tmp}/t", "--sizes", "5"], "sizes must be"),
    ("out-under-a-file", ["{file}/t"], "is not a folder"),
    ("flag", ["{tmp}/t", "--bogus"], "unrecognized arguments"),
]
CASES["moola_lib.studies.truth_folds"] = [
    ("no-truth", ["{tmp}/none", "{tmp}/f"], "not found (a truth study folder holds its truth.json)"),
    ("not-a-truth", ["{data}", "{tmp}/f"], "not found"),
    ("sets", ["{tmp}/none", "{tmp}/f", "--sets", "1"], "--sets >= 2"),
    ("out-under-a-file", ["{tmp}/none", "{file}/f"], "is not a folder"),
    ("flag", ["{tmp}/none", "{tmp}/f", "--bogus"], "unrecognized arguments"),
]
CASES["moola_lib.studies.truth_heldout"] = [
    ("no-truth", ["{tmp}/none", "{tmp}/h"], "not found (a truth study folder holds its truth.json)"),
    ("jobs", ["{tmp}/none", "{tmp}/h", "--jobs", "0"], "--jobs must be >= 1"),
    ("same-folder", ["{tmp}", "{tmp}"], "the truth folder itself"),
    ("report-only", ["{tmp}/none", "{tmp}/h", "--report-only"], "not found (--report-only"),
]
CASES["moola_lib.studies.truth_curve"] = [
    ("no-heldout", ["{tmp}/none", "{tmp}/c", "--heldout", "{tmp}/h"], "not found (--heldout names a truth_heldout"),
    ("fractions", ["{tmp}/none", "{tmp}/c", "--heldout", "{tmp}/h", "--fractions", "1"], "between 0 and 1"),
    ("no-flag", ["{tmp}/none", "{tmp}/c"], "--heldout"),
]
CASES["moola_lib.studies.truth_markets"] = [
    ("no-truth", ["{tmp}/none", "{tmp}/m"], "not found (a truth study folder holds its truth.json)"),
    ("markets", ["{tmp}/none", "{tmp}/m", "--markets", "1"], "--markets must be >= 2"),
    ("report-only", ["{tmp}/none", "{tmp}/m", "--report-only"], "not found (--report-only"),
]
CASES["moola_lib.studies.classifier_check"] = [
    ("out-under-a-file", ["{file}/c"], "is not a folder"),
    ("arm", ["{tmp}/c", "--arms", "frozn"], "frozn"),
    ("flag", ["{tmp}/c", "--bogus"], "unrecognized arguments"),
]
CASES["moola_lib.bench"] += [("scan-arm", ["--scan", "--arms", "frozn"], "invalid choice")]
PARAMS = [
    pytest.param(module, args, part, id=f"{module.rsplit('.', 1)[-1]}-{case}")
    for module, cases in CASES.items()
    for case, args, part in cases
]


@pytest.fixture
def paths(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "latin1.yaml").write_bytes(NOT_UTF8)
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "other.json").write_text('{"notebook": "eda"}')
    (tmp_path / "broken.ipynb").write_text("{")
    (tmp_path / "data" / ".git").mkdir(parents=True)
    (tmp_path / "data" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / "data" / "prices.csv").write_text("timestamp,open\n")
    return {
        "tmp": tmp_path,
        "file": tmp_path / "a_file",
        "latin1": tmp_path / "latin1.yaml",
        "empty": tmp_path / "empty.json",
        "list": tmp_path / "list.json",
        "other": tmp_path / "other.json",
        "broken": tmp_path / "broken.ipynb",
        "data": tmp_path / "data",
    }


def files(folder) -> dict:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("module, args, part", PARAMS)
def test_every_expected_error_is_one_line_and_exit_status_2(module, args, part, paths, monkeypatch, capsys):
    argv = [a.format(**paths) for a in args]
    before = files(paths["tmp"])
    monkeypatch.setattr(sys, "argv", [module, *argv])
    with pytest.raises(SystemExit) as exit, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module was imported before it runs
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    err = capsys.readouterr().err
    assert exit.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert part in lines[0], lines[0]
    assert files(paths["tmp"]) == before  # checked before the work: nothing written
