"""A job's per-epoch feedback: progress.jsonl, the terminal's epoch lines, the follower of the notebook runner,
and TensorBoard's event files (or the one warning when tensorboard is not installed)."""

import json
import sys

import pytest
from helpers import TINY

from moola_lib.pretraining import tensorboard_log
from moola_lib.pretraining.feedback import PROGRESS_FILE, ProgressFollower, duration, epoch_line, follow_progress
from moola_lib.pretraining.job import pretrain

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def record(epoch, epochs=3, **changes):
    return {
        "epoch": epoch,
        "epochs": epochs,
        "train_loss": 0.5,
        "val_loss": 0.25,
        "best_epoch": epoch,
        "seconds": 4.24,
        "eta_seconds": 51.0,
        "finished": epoch == epochs,
        **changes,
    }


@pytest.fixture
def no_tensorboard(monkeypatch):
    """As on a GPU box set up without network: importing torch.utils.tensorboard fails."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    tensorboard_log.summary_writer_class.cache_clear()
    yield
    tensorboard_log.summary_writer_class.cache_clear()


def test_each_epoch_is_a_progress_line_and_a_callback(tmp_path, no_tensorboard):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / PROGRESS_FILE).write_text('{"epoch": 9}\n')  # an earlier attempt's: a fresh run starts anew
    seen = []
    with pytest.warns(UserWarning, match="tensorboard is not installed"):
        results = pretrain({**TINY, "epochs": 3}, tmp_path / "run", on_epoch=seen.append)
    lines = [json.loads(line) for line in (tmp_path / "run" / PROGRESS_FILE).read_text().splitlines()]
    assert lines == seen and [r["epoch"] for r in lines] == [1, 2, 3]
    for r, row in zip(lines, results["history"]):
        assert r.items() >= row.items() and r["epochs"] == 3 and r["elapsed_seconds"] > 0
    assert [r["finished"] for r in lines] == [False, False, True] and lines[-1]["eta_seconds"] == 0
    assert lines[0]["eta_seconds"] > 0 and lines[-1]["best_val_loss"] == results["best_val_loss"]
    assert results["tensorboard"] == "not installed" and not (tmp_path / "run" / "tb").exists()
    assert results["files"]["progress"] == PROGRESS_FILE


def test_the_tensorboard_warning_is_given_once_per_process(no_tensorboard, recwarn):
    assert tensorboard_log.summary_writer_class() is None
    assert tensorboard_log.summary_writer_class() is None
    assert len([w for w in recwarn if "tensorboard" in str(w.message)]) == 1


def test_tensorboard_event_files_hold_the_epochs_and_the_config(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    results = pretrain({**TINY, "epochs": 2}, tmp_path / "run")
    assert results["tensorboard"] == "tb"
    runs = EventMultiplexer().AddRunsFromDirectory(str(tmp_path))
    runs.Reload()
    assert list(runs.Runs()) == ["run/tb"]  # the hyperparameters live in the run's own folder
    for tag, key in tensorboard_log.SCALARS.items():
        events = runs.Scalars("run/tb", tag)  # event files hold float32 values
        assert [e.step for e in events] == [h["epoch"] for h in results["history"]]
        assert [e.value for e in events] == pytest.approx([h[key] for h in results["history"]], rel=1e-6)
    assert runs.Scalars("run/tb", "hparam/best_val_loss")[0].value == pytest.approx(results["best_val_loss"])
    assert "_hparams_/session_start_info" in runs.PluginRunToTagToContent("hparams")["run/tb"]
    text = runs.Tensors("run/tb", "config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "hidden_size: 8" in text


def test_hparam_values_are_what_tensorboard_takes():
    values = tensorboard_log.hparam_values({"lr": 1e-3, "patience": None, "splits": {"val": ["a", "b"]}, "ok": True})
    assert values == {"lr": 1e-3, "patience": "null", "splits": '{"val": ["a", "b"]}', "ok": True}


def test_epoch_lines_say_where_the_job_stands():
    assert epoch_line(record(1)) == "epoch 1/3  train 0.5000  val 0.2500 (best)  4.2 s/epoch  ~51 s left"
    assert epoch_line(record(3, best_epoch=1), "bs-512: ").endswith("val 0.2500  4.2 s/epoch  done")
    assert epoch_line(record(3, epochs=10, finished=True)).startswith("epoch  3/10")
    assert epoch_line(record(3, epochs=10, finished=True)).endswith("stopped early")
    assert [duration(s) for s in (0.4, 59, 185, 7500)] == ["0 s", "59 s", "3 min 05 s", "2 h 05 min"]


def append(path, *lines, end="\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write("".join(json.dumps(r) + end for r in lines))


def test_the_follower_reads_only_new_whole_lines_of_every_run_under_its_root(tmp_path):
    own, setting = tmp_path / PROGRESS_FILE, tmp_path / "batch_size-512" / PROGRESS_FILE
    append(own, record(1), record(2))  # there before: a resumed run's earlier epochs are not repeated
    follower = ProgressFollower(tmp_path)
    assert follower.poll() == []
    append(own, record(3))
    with open(own, "a") as f:
        f.write('{"epoch": 4, "epo')  # half a line: left until its end arrives
    append(setting, record(1))
    assert follower.poll() == ["batch_size-512: " + epoch_line(record(1)), epoch_line(record(3))]  # by path
    with open(own, "a") as f:
        f.write("not json\n")  # a broken line is skipped, the display goes on
    append(own, record(5, epochs=5))
    assert follower.poll() == [epoch_line(record(5, epochs=5))]
    own.write_text(json.dumps(record(1, train_loss=0.9)) + "\n")  # a new run in the same folder: read anew
    assert follower.poll() == [epoch_line(record(1, train_loss=0.9))]


def test_follow_progress_writes_the_last_lines_when_the_block_ends(tmp_path):
    written = []
    with follow_progress(tmp_path, interval=3600, write=written.append):  # no poll during the block
        append(tmp_path / "run" / PROGRESS_FILE, record(1), record(2))
    assert written == ["run: " + epoch_line(record(1)), "run: " + epoch_line(record(2))]
    with follow_progress(tmp_path, enabled=False, write=written.append):
        append(tmp_path / "run" / PROGRESS_FILE, record(3))
    assert len(written) == 2
