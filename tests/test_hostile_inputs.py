"""Issue 11: what a hostile user found. Labels that would meet the wrong bars, resume on changed data or
after losing checkpoint_last.pt, broken checkpoints, labelled windows with impossible prices, expected
errors of the command lines in one line, parameters written as users write YAML, degenerate and absurd
data, executed notebook copies left beside the notebooks. (Run directories: tests/util/test_rundir.py.)
Issue 19, the second attack: the items below "issue 19" (labels files with several writers:
tests/labelling/test_label_store.py and tests/notebook/test_label_widget.py; refused runs:
tests/notebook/test_runs.py; inherited claims: tests/util/test_rundir.py; affine-invariant swings:
tests/features/test_features.py)."""

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import uuid
import warnings

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import assert_one_line_error, run_command

from moola_lib.bars.ohlcv import DataValidationError, SuspectOutlierWarning, validate_ohlcv
from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.labelling.session import CandidateOptions, readable_classes
from moola_lib.labels.sets import LabelledSet, load_labels
from moola_lib.notebook.params import LabelParams, PretrainParams, TransferParams
from moola_lib.notebook.steps import encoder_from_params, labelled_from_params, labelling_session_from_params
from moola_lib.pretraining.checkpoints import load_encoder
from moola_lib.pretraining.config import PretrainConfig
from moola_lib.pretraining.job import load_pretrain_data, pretrain
from moola_lib.transfer.config import TransferConfig
from moola_lib.transfer.protocol import run_transfer
from moola_lib.util.cli import error_line
from moola_lib.util.config import ConfigError, read_parameters
from moola_lib.util.io import CheckpointError, file_sha256
from moola_lib.util.paths import ROOT

SPLITS = {
    "train": ["2024-12-02", "2024-12-10"],
    "val": ["2024-12-10", "2024-12-12"],
    "test": ["2024-12-12", "2024-12-14"],
}
TINY = {
    "splits": SPLITS,
    "stride": 52,
    "hidden_size": 8,
    "num_layers": 1,
    "epochs": 1,
    "batch_size": 32,
    "warmup_epochs": 1,
    "device": "cpu",
    "progress": False,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bars():
    return synthetic_ohlcv("2024-12-01", "2024-12-20", seed=3)


@pytest.fixture(scope="module")
def bars_file(bars, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "bars.parquet"
    bars.reset_index().to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(bars_file, tmp_path_factory):
    """A finished one-epoch pretraining run on the data file."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    pretrain({**TINY, "data_path": str(bars_file)}, run_dir)
    return run_dir


def labels_csv(bars, path, n=6):
    starts = bars.index.searchsorted(pd.Timestamp("2024-12-14", tz="UTC")) + np.arange(n) * 150
    pd.DataFrame(
        {"start": bars.index[starts].astype(str), "label": ["consolidation", "retracement"] * (n // 2)}
    ).to_csv(path, index=False)
    return path


# ---------------------------------------------------------------------- 1. labels meet their own bars


def test_timestamp_labels_without_data_path_are_refused(bars, tmp_path):
    params = TransferParams(labels_path=str(labels_csv(bars, tmp_path / "labels.csv")))
    with pytest.raises(ConfigError, match="given by timestamps.*data_path is None.*Pass the OHLCV file"):
        labelled_from_params(params)


def test_the_labelled_sets_bars_source_is_recorded(bars, bars_file, tmp_path):
    params = TransferParams(labels_path=str(labels_csv(bars, tmp_path / "labels.csv")), data_path=str(bars_file))
    source = labelled_from_params(params).summary()["source"]["bars"]  # -> transfer_results.json "data"
    assert source == {"kind": "file", "path": str(bars_file), "sha256": file_sha256(bars_file)}
    embedded = TransferParams(
        n_labelled=8, synthetic_start="2025-06-24", labels_start="2025-07-01", labels_end="2025-07-14", synthetic_seed=4
    )
    source = labelled_from_params(embedded).summary()["source"]["bars"]
    assert source["kind"] == "synthetic" and source["seed"] == 4 and source["start"] == "2025-06-24"


# ---------------------------------------------------------------------- 3. resume checks its inputs


def test_the_checkpoint_records_the_data_file_and_resume_refuses_a_changed_one(bars, tmp_path):
    data, run_dir = tmp_path / "bars.parquet", tmp_path / "run"
    bars.reset_index().to_parquet(data, index=False)
    config = {**TINY, "data_path": str(data)}
    pretrain(config, run_dir)
    last = torch.load(run_dir / "checkpoint_last.pt", weights_only=True)
    assert last["data_source"] == {"kind": "file", "path": str(data), "sha256": file_sha256(data)}
    assert pretrain({**config, "resume": True}, run_dir)["epochs_completed"] == 1  # same file: resumes
    changed = bars.copy()
    changed.iloc[3000, changed.columns.get_loc("high")] += 0.25  # one tick on one bar
    changed.reset_index().to_parquet(data, index=False)
    before = (run_dir / "checkpoint_last.pt").read_bytes()
    with pytest.raises(ConfigError, match="data file .*bars.parquet changed since the checkpoint was written"):
        pretrain({**config, "resume": True}, run_dir)
    assert (run_dir / "checkpoint_last.pt").read_bytes() == before


def test_resume_without_checkpoint_last_is_refused(trained, bars_file, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    (run_dir / "checkpoint_last.pt").unlink()
    best = (run_dir / "checkpoint_best.pt").read_bytes()
    with pytest.raises(ConfigError, match="holds checkpoint_best.pt.*but no checkpoint_last.pt"):
        pretrain({**TINY, "data_path": str(bars_file), "resume": True}, run_dir)
    assert (run_dir / "checkpoint_best.pt").read_bytes() == best


# ---------------------------------------------------------------------- 5. broken checkpoints


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pickled code ran",))


def broken_file(kind, good, path):
    data = good.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "pickled-code":
        torch.save({"format": "moola.jade_encoder.v1", "payload": _RunsCode()}, path)
    elif kind == "raw-pickle":
        path.write_bytes(pickle.dumps({"a": 1}))
    return path


BROKEN = {
    "empty": "empty \\(0 bytes\\)",
    "truncated": "truncated or corrupt",
    "foreign": "not a moola encoder file",
    "pickled-code": "would run code",
    "raw-pickle": "not a file written by torch.save",
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_encoder_files_are_one_line_errors(trained, tmp_path, kind):
    path = broken_file(kind, trained / "checkpoint_best.pt", tmp_path / "encoder.pt")
    with pytest.raises(CheckpointError, match=BROKEN[kind]) as err:
        load_encoder(path)
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message and "weights_only=False" not in message


@pytest.mark.parametrize("kind", ["empty", "pickled-code"])
def test_broken_encoder_in_the_transfer_notebook(trained, tmp_path, kind):
    path = broken_file(kind, trained / "checkpoint_best.pt", tmp_path / "encoder.pt")
    with pytest.raises(CheckpointError, match=BROKEN[kind]):
        labelled_from_params(
            TransferParams(
                encoder_path=str(path),
                n_labelled=8,
                synthetic_start="2025-06-24",
                labels_start="2025-07-01",
                labels_end="2025-07-14",
            )
        )


def test_broken_checkpoint_on_resume_is_one_line(trained, bars_file, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    broken_file("truncated", trained / "checkpoint_last.pt", run_dir / "checkpoint_last.pt")
    proc = run_command(
        "moola_lib.pretrain", run_dir, "-y", json.dumps(TINY), "-p", "data_path", bars_file, "-p", "resume", "True"
    )
    assert_one_line_error(proc, "checkpoint_last.pt: truncated or corrupt")


# ---------------------------------------------------------------------- 6. label windows: price checks


def test_self_contained_windows_get_the_price_checks_of_ohlcv_files(bars):
    ohlc = bars[["open", "high", "low", "close"]].to_numpy()
    windows = [ohlc[s : s + 105] for s in (400, 1500, 2600, 3700)]
    windows[2] = windows[2] - (windows[2].max() + 1.0)  # every price negative, bar order intact
    frame = pd.DataFrame(
        {
            "window_id": [f"w{i}" for i in range(4)],
            "features": [w.tolist() for w in windows],
            "label": ["consolidation", "retracement"] * 2,
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataValidationError, match="non_positive_price.*window_id 'w2'.*bar offset"):
            load_labels(frame)


# ---------------------------------------------------------------------- 7. command lines, YAML habits


def test_nan_stop_ends_the_command_in_one_line(bars_file, tmp_path):
    proc = run_command(
        "moola_lib.pretrain",
        tmp_path / "run",
        "-y",
        json.dumps(TINY),
        "-p",
        "data_path",
        bars_file,
        "-p",
        "lr",
        "1e20",
        "-p",
        "warmup_epochs",
        "0",
        "-p",
        "grad_clip",
        "None",
    )
    assert_one_line_error(proc, "non-finite", "training stopped")
    assert not (tmp_path / "run").exists()  # nothing was written: no empty run directory either


def test_unquoted_dates_and_exponent_floats_are_read_as_meant(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "splits: {train: [2024-12-02, 2024-12-10], val: [2024-12-10, 2024-12-12]}\n"
        "lr: 1e-3\nweight_decay: 1E-2\nexclude: [[2024-12-03 10:00:00, 2024-12-03 12:00:00]]\n"
    )
    params = read_parameters([path], ["huber_delta: 5e-1"])
    assert params["splits"] == {"train": ["2024-12-02", "2024-12-10"], "val": ["2024-12-10", "2024-12-12"]}
    assert (params["lr"], params["weight_decay"], params["huber_delta"]) == (1e-3, 1e-2, 0.5)
    assert params["exclude"] == [["2024-12-03T10:00:00", "2024-12-03T12:00:00"]]
    json.dumps(params)  # papermill stores the parameters as JSON
    config = PretrainConfig.from_dict(params)
    assert config.splits["train"] == ["2024-12-02", "2024-12-10"] and config.lr == 1e-3
    # plain papermill reads -f files with YAML 1.1 and hands "1e-3" to the notebook as text
    assert PretrainConfig.from_dict({"lr": "1e-3", "grad_clip": "2.5E+0"}).grad_clip == 2.5
    with pytest.raises(ConfigError, match="lr: expected float"):
        PretrainConfig.from_dict({"lr": "1e-3 fast"})


@pytest.mark.slow
def test_run_notebook_takes_unquoted_dates(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("splits: {train: [2024-12-02, 2024-12-10], val: [2024-12-10, 2024-12-12]}\nepochs: 0\n")
    proc = run_command("moola_lib.run_notebook", "pretrain", "--no-progress", "--run-dir", tmp_path / "run", "-f", path)
    assert_one_line_error(proc, "epochs must be >= 1")  # the dates went through; the kernel checked the rest


def test_under_torchrun_an_expected_error_is_printed_once(tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    proc = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "moola_lib.pretrain",
            str(tmp_path / "run"),
            "-p",
            "batchsize",
            "64",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == [error_line(ConfigError(errors[0][len("error: ") :]))] and "'batchsize'" in errors[0]
    assert any("exitcode" in line and ": 2 " in line for line in lines), proc.stderr[-3000:]
    assert "moola_lib" not in "".join(line for line in lines if line.lstrip().startswith("File "))


# ---------------------------------------------------------------------- 8. degenerate and absurd data


def test_data_that_never_confirms_a_swing_says_so(tmp_path):
    index = pd.date_range("2024-12-02", "2024-12-06", freq="1min", tz="UTC")
    flat = pd.DataFrame({"timestamp": index, "open": 100.0, "high": 100.0, "low": 100.0, "close": 100.0})
    flat.to_csv(tmp_path / "flat.csv", index=False)
    splits = {"train": ["2024-12-02", "2024-12-05"], "val": ["2024-12-05", "2024-12-06"]}
    with pytest.raises(ConfigError, match="0 valid bars.*no swing high or low is ever confirmed") as err:
        load_pretrain_data({"data_path": str(tmp_path / "flat.csv"), "splits": splits})
    assert "widen the split" not in str(err.value)


def test_an_absurd_bar_is_reported_as_a_suspect_outlier(bars):
    frame = bars.copy()
    frame.iloc[2000, frame.columns.get_loc("high")] = 1e300
    with pytest.warns(SuspectOutlierWarning, match=f"1 suspect outlier.*first at {re.escape(str(bars.index[2000]))}"):
        checked = validate_ohlcv(frame, source="bars.csv")
    assert checked.attrs["suspect_outliers"] == 1
    grown = bars * np.geomspace(0.05, 5.0, len(bars))[:, None]  # x100 over the file, like decades of a stock
    with warnings.catch_warnings():
        warnings.simplefilter("error", SuspectOutlierWarning)
        validate_ohlcv(bars)  # real moves are not outliers
        assert validate_ohlcv(grown).attrs["suspect_outliers"] == 0
    grown.iloc[7000, grown.columns.get_loc("low")] /= 50.0
    with pytest.warns(SuspectOutlierWarning, match=re.escape(str(bars.index[7000]))):
        validate_ohlcv(grown)


def test_the_drop_remedy_is_a_parameter_where_it_is_offered(bars, tmp_path):
    frame = bars.reset_index()
    frame.loc[500, "high"] = frame.loc[500, "low"] - 1.0
    frame.to_csv(tmp_path / "bad.csv", index=False)
    config = {**TINY, "data_path": str(tmp_path / "bad.csv")}
    with pytest.raises(DataValidationError, match="on_invalid='drop' \\(the on_invalid parameter\\)"):
        load_pretrain_data(config)
    with pytest.warns(UserWarning, match="dropped 1 of"):
        data = load_pretrain_data({**config, "on_invalid": "drop"})
    assert data.summary["bars"] == len(bars) - 1
    for params in (PretrainParams, TransferParams):  # the pretrain and transfer notebooks, the command line
        assert params(on_invalid="drop").on_invalid == "drop"


# ---------------------------------------------------------------------- 9. executed notebook copies


def test_executed_notebook_copies_are_ignored_by_git_and_the_tests():
    name = f"out-{uuid.uuid4().hex[:8]}.ipynb"
    copy = ROOT / "notebooks" / name
    nb = nbformat.read(ROOT / "notebooks" / "pretrain.ipynb", as_version=4)
    nb.metadata["papermill"] = {"input_path": "pretrain.ipynb", "output_path": name}
    nbformat.write(nb, copy)
    try:
        ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(copy)], timeout=60)
        if ignored.returncode == 128:
            pytest.skip("not a git checkout")
        assert ignored.returncode == 0, f"git would offer {name} for commit"
        collected = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "--collect-only",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/notebook/test_notebooks.py",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        assert collected.returncode == 0, collected.stdout[-3000:]
        assert "pretrain" in collected.stdout and name[:-6] not in collected.stdout
    finally:
        copy.unlink()


# ====================================================================== issue 19: the second attack


def small_set(n=60, groups=None, seed=0) -> LabelledSet:
    """n windows (alternating classes, a learnable offset on feature 0) without timestamps."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 105, 10)).astype(np.float32)
    X[..., 0] += y[:, None]
    nat = pd.DatetimeIndex([pd.NaT] * n, tz="UTC")
    return LabelledSet(
        X=X,
        valid=np.ones((n, 105), dtype=bool),
        y=y,
        classes=("consolidation", "retracement"),
        window_id=np.array([f"w{i}" for i in range(n)], dtype=object),
        start=nat,
        end=nat,
        expansion=np.full((n, 2), -1),
        groups=np.arange(n) if groups is None else groups,
        source={"path": "<small>"},
    )


# ---------------------------------------------------------------------- 7. few groups: a clear error


def test_few_session_groups_are_refused_before_any_training_not_by_sklearn(trained):
    labelled = small_set(groups=np.repeat([0, 1], 30))  # 60 windows chained into 2 groups
    config = {"folds": 2, "repeats": 1, "arms": ["baseline"], "primary": "baseline vs simple_logistic"}
    with pytest.raises(DataValidationError, match="only 1 group\\(s\\) of windows.*inner split of 1/5"):
        run_transfer(labelled, trained / "checkpoint_best.pt", {**config, "arms": ["baseline", "simple"]})


# ---------------------------------------------------------------------- 9. tracebacks and status 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"lr": float("inf")}, "lr and encoder_lr_scale must be finite"),
        ({"seed": 2**70}, "seed must be in \\[0, 2\\*\\*31\\)"),
    ],
)
def test_transfer_values_that_crashed_late_are_config_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        TransferConfig.from_dict(change)


def test_a_diverging_learning_rate_is_a_one_line_floating_point_error(trained):
    config = {
        "folds": 2,
        "repeats": 1,
        "arms": ["baseline", "simple"],
        "primary": "baseline vs simple_logistic",
        "lr": 1e30,
        "epochs": 3,
        "fractions": [1.0],
        "n_bootstrap": 0,
        "device": "cpu",
        "progress": False,
    }
    with pytest.raises(FloatingPointError, match="baseline: the validation loss was never finite.*lower lr"):
        run_transfer(small_set(20), trained / "checkpoint_best.pt", config)


def test_absurd_max_gap_and_stride_say_what_to_change(bars):
    for gap in (1e-300, 1e300):
        with pytest.raises(ConfigError, match="max_gap_minutes must be between"):
            PretrainConfig(max_gap_minutes=gap)
        with pytest.raises(ConfigError, match="max_gap_minutes must be between"):
            CandidateOptions(max_gap_minutes=gap)
    with pytest.raises(ConfigError, match="stride=1000000000 is not shorter than the split's .* bars"):
        # the only start tried is the data's first bar, inside the feature warm-up
        load_pretrain_data({**TINY, "synthetic_start": "2024-12-02", "synthetic_end": "2024-12-14", "stride": 10**9})


@pytest.mark.parametrize("drop", ["history", "model"])
def test_a_checkpoint_missing_keys_is_a_checkpoint_error(trained, bars_file, tmp_path, drop):
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
        state = torch.load(run_dir / name, weights_only=True)
        del state[drop]
        torch.save(state, run_dir / name)
    proc = run_command(
        "moola_lib.pretrain", run_dir, "-y", json.dumps(TINY), "-p", "data_path", bars_file, "-p", "resume", "True"
    )
    assert_one_line_error(proc, "checkpoint_last.pt: a pretraining checkpoint without", drop)
    encoder = torch.load(run_dir / "checkpoint_best.pt", weights_only=True)["encoder"]
    del encoder["state_dict"]
    torch.save(encoder, tmp_path / "encoder.pt")
    with pytest.raises(CheckpointError, match="encoder.pt: a moola encoder without its weights"):
        load_encoder(tmp_path / "encoder.pt")


def test_a_full_disk_while_writing_a_checkpoint_is_one_line_and_keeps_the_files(
    bars_file, tmp_path, monkeypatch, capsys
):
    import errno

    from moola_lib.pretraining.job import main as pretrain_main
    from moola_lib.util import cli

    real = os.replace

    def full(src, dst):
        if str(dst).endswith("checkpoint_last.pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", full)
    run_dir = tmp_path / "run"
    assert cli.run(pretrain_main, [str(run_dir), "-y", json.dumps(TINY), "-p", "data_path", str(bars_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: cannot write ") and "checkpoint_last.pt: No space left on device" in err[-1]
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint_best.pt"]  # complete; no temp file


def test_resume_without_checkpoint_best_is_refused_before_the_work(trained, bars_file, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    (run_dir / "checkpoint_best.pt").unlink()
    monkeypatch.setattr("moola_lib.pretraining.job.load_pretrain_data", lambda *a, **k: pytest.fail("data loaded"))
    with pytest.raises(ConfigError, match="holds checkpoint_last.pt but no checkpoint_best.pt"):
        pretrain({**TINY, "data_path": str(bars_file), "resume": True}, run_dir)


def test_labels_path_that_is_a_folder_and_a_five_window_file(bars, bars_file, tmp_path):
    with pytest.raises(DataValidationError, match="check 'labels_path' failed: is a folder, not a labels file"):
        labelled_from_params(TransferParams(labels_path=str(tmp_path), data_path=str(bars_file)))
    five = labels_csv(bars, tmp_path / "five.csv", n=6).with_name("five.csv")
    pd.read_csv(five).iloc[:5].to_csv(five, index=False)
    params = TransferParams(labels_path=str(five), data_path=str(bars_file))
    labelled = labelled_from_params(params)
    with pytest.raises(DataValidationError, match="fewer windows than folds=5"):  # before pretraining an encoder
        encoder_from_params(params, labelled, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_expected_errors_raised_inside_a_notebook_exit_2(monkeypatch, capsys):
    import papermill

    from moola_lib.notebook import execute
    from moola_lib.util import cli

    for name in ("RunDirBusyError", "LabelsFileError", "FileWriteError", "DataValidationError"):
        assert name in cli.expected_error_names()

        def fails(*args, name=name, **kwargs):
            raise papermill.PapermillExecutionError(3, 3, "run = start_run(...)", name, "why", [])

        monkeypatch.setattr(execute, "execute", fails)
        assert execute.main(["eda"]) == 2
        assert f"eda.ipynb failed in cell 3: {name}: why" in capsys.readouterr().err


# ---------------------------------------------------------------------- 8. class lists the tool cannot offer


def test_the_labelling_tool_refuses_class_lists_it_cannot_offer(tmp_path, monkeypatch):
    # the user's own classes (2 to 9) are read by transfer and the classifier (issue 29); these are not lists
    monkeypatch.setattr("moola_lib.notebook.steps.run_bars", lambda *a: pytest.fail("data loaded"))
    for classes in (["consolidation"], ["up", "Up"], [f"c{i}" for i in range(10)]):
        with pytest.raises(ConfigError, match="classes"):
            labelling_session_from_params(LabelParams(classes=classes, labels_path=str(tmp_path / "l.csv")))
    assert readable_classes([" Retracement", "consolidation"]) == ("retracement", "consolidation")


# ---------------------------------------------------------------------- 10. naive label timestamps


def test_label_times_without_a_time_zone_are_refused_naming_time_zones(bars, tmp_path):
    starts = bars.index.searchsorted(pd.Timestamp("2024-12-14", tz="UTC")) + np.arange(6) * 150
    local = bars.index[starts].tz_convert("America/New_York").tz_localize(None)  # New York wall-clock times
    frame = pd.DataFrame({"start": local.astype(str), "label": ["consolidation", "retracement"] * 3})
    for suffix in (".csv", ".parquet", ".jsonl"):
        path = tmp_path / f"ny{suffix}"
        getattr(frame, {".csv": "to_csv", ".parquet": "to_parquet", ".jsonl": "to_json"}[suffix])(
            path, **({"index": False} if suffix != ".jsonl" else {"orient": "records", "lines": True})
        )
        with pytest.raises(DataValidationError, match="'start' has no time zone in 6 row\\(s\\).*UTC offset"):
            load_labels(path, bars)
    aware = frame.assign(start=bars.index[starts].tz_convert("America/New_York").astype(str))
    assert list(load_labels(aware, bars).start) == list(bars.index[starts])  # an offset is read as written


# ---------------------------------------------------------------------- 11. smaller


def test_a_bad_tick_in_a_self_contained_window_is_warned(bars):
    ohlc = bars[["open", "high", "low", "close"]].to_numpy()
    windows = [ohlc[s : s + 105].copy() for s in (400, 1500)]
    windows[1][60] *= 12.0  # past OUTLIER_FACTOR (10x) from its neighbours: exactly 10x sits on the bound
    frame = pd.DataFrame(
        {
            "window_id": ["ok", "spiky"],
            "label": ["consolidation", "retracement"],
            "features": [w.tolist() for w in windows],
        }
    )
    with pytest.warns(
        SuspectOutlierWarning, match="1 window\\(s\\) with suspect outlier bars.*'spiky' at bar offset\\(s\\) 60"
    ):
        labelled = load_labels(frame)
    assert len(labelled) == 2 and any("spiky" in note for note in labelled.warnings)


def test_run_notebook_neither_lists_nor_runs_executed_copies():
    from moola_lib.notebook.execute import notebook_source, project_notebooks

    name = f"out-{uuid.uuid4().hex[:8]}"
    nb = nbformat.read(ROOT / "notebooks" / "pretrain.ipynb", as_version=4)
    nb.metadata["papermill"] = {"input_path": "pretrain.ipynb", "output_path": f"{name}.ipynb"}
    nbformat.write(nb, ROOT / "notebooks" / f"{name}.ipynb")
    try:
        assert name not in project_notebooks() and "pretrain" in project_notebooks()
        message = f"{name}.ipynb: an executed copy, not a project notebook; known: classify, compare, eda"
        with pytest.raises(ConfigError, match=message):
            notebook_source(name)
    finally:
        (ROOT / "notebooks" / f"{name}.ipynb").unlink()


def test_taking_over_a_stale_lock_is_one_warning_line(tmp_path):
    from helpers import hold_claim

    run_dir = tmp_path / "run"
    holder = hold_claim(run_dir, then="kill")
    holder.wait(timeout=60)
    (run_dir / "old_result.json").write_text("{}")  # the killed run's files: the new one is refused
    proc = run_command("moola_lib.run_notebook", "eda", "--run-dir", run_dir)
    assert_one_line_error(proc, "already holds a run")
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("warning: run directory") and "stale lock" in lines[0]
