"""A protocol run's finished fits on disk (``moola_lib.transfer.fit_store``): a run interrupted part-way
continues in the same run directory with the uninterrupted run's results, fitting only what is missing (in
this process or on workers); a run with other settings, windows or encoder is refused in one line naming
what changed; a fit stored for other windows is fitted anew; the folder goes once the results are written,
and nothing moola did not write goes with it."""

import json

import numpy as np
import pytest
import torch
from helpers import CFG as TINY
from helpers import tiny_set

from moola_lib.labels.provenance import EncoderSource
from moola_lib.notebook.params import TransferParams
from moola_lib.notebook.runs import start_run
from moola_lib.notebook.steps import default_pretrain_config
from moola_lib.pretraining.checkpoints import save_encoder
from moola_lib.pretraining.model import JadeEncoder
from moola_lib.transfer import parallel
from moola_lib.transfer.config import TransferConfig
from moola_lib.transfer.fit_store import _FIT_FILE, FOLDER, FitStore, FitStoreError, fingerprint
from moola_lib.transfer.parallel import Fit
from moola_lib.transfer.protocol import run_transfer
from moola_lib.util.io import json_default

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = {**TINY, "arms": ["baseline", "frozen", "simple"], "epochs": 2, "seeds_per_fold": 2, "n_jobs": 1}


def _encoder(path, seed=0):
    torch.manual_seed(seed)
    save_encoder(JadeEncoder(hidden_size=8, num_layers=1), path)
    return EncoderSource.load(path, input_size=10)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return _encoder(tmp_path_factory.mktemp("enc") / "encoder.pt")


@pytest.fixture(scope="module")
def reference(encoder):
    """The uninterrupted run, as its results file reads."""
    return _as_written(run_transfer(tiny_set(), encoder, CFG))


def _as_written(results) -> dict:
    """The results as transfer_results.json holds them, less what may differ between runs (timings, jobs)."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("seconds", "n_jobs", "fits_resumed")}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return strip(json.loads(json.dumps(results, default=json_default)))


def _count_fits(monkeypatch, fail_after=None) -> list:
    """Count this process's fits (``parallel.arm_probabilities``); raise after ``fail_after`` of them."""
    calls = []
    fit = parallel.arm_probabilities

    def counted(*args, **kwargs):
        if fail_after is not None and len(calls) == fail_after:
            raise KeyboardInterrupt  # the kernel interrupted, the box preempted
        calls.append(args[0])
        return fit(*args, **kwargs)

    monkeypatch.setattr(parallel, "arm_probabilities", counted)
    return calls


def _stored(run_dir) -> int:
    """The fit files a run left in its store's folder (named as the store names them, ``_FIT_FILE``)."""
    return sum(1 for p in (run_dir / FOLDER).iterdir() if _FIT_FILE.match(p.name))


def _interrupted(monkeypatch, encoder, run_dir, after: int) -> None:
    _count_fits(monkeypatch, fail_after=after)
    with pytest.raises(KeyboardInterrupt):
        run_transfer(tiny_set(), encoder, CFG, run_dir)
    assert _stored(run_dir) == after
    monkeypatch.undo()


def _fingerprint(encoder, cfg) -> dict:
    return fingerprint(tiny_set(), encoder.encoder, TransferConfig.from_dict(cfg), "cpu")


def test_an_interrupted_run_continues_with_the_uninterrupted_results(monkeypatch, tmp_path, encoder, reference):
    n_fits = TransferConfig.from_dict(CFG).n_fits
    _interrupted(monkeypatch, encoder, tmp_path, after=7)
    calls = _count_fits(monkeypatch)
    resumed = run_transfer(tiny_set(), encoder, CFG, tmp_path)
    assert len(calls) == n_fits - 7 > 0  # only the fits that were missing
    assert resumed["fits_resumed"] == 7  # recorded: their seconds are the earlier process's
    assert _as_written(resumed) == reference
    assert json.loads((tmp_path / "transfer_results.json").read_text())["arms"].keys() == reference["arms"].keys()
    assert not (tmp_path / FOLDER).exists()  # gone with the results written


def test_a_run_with_fewer_arms_counts_only_the_fits_it_read(monkeypatch, tmp_path, encoder):
    _interrupted(monkeypatch, encoder, tmp_path, after=6)  # of baseline / frozen / simple
    kept = ("baseline", "simple_logistic", "simple_boosting")
    read = sum(p.name.split("-")[0] in kept for p in (tmp_path / FOLDER).glob("*.npz"))
    fewer = {**CFG, "arms": ["baseline", "simple"], "primary": "simple_logistic vs baseline"}
    resumed = run_transfer(tiny_set(), encoder, fewer, tmp_path)
    assert 0 < read < 6 and resumed["fits_resumed"] == read  # the frozen probe's stored fits are not this run's


def test_the_rest_may_run_on_workers(monkeypatch, tmp_path, encoder, reference):
    _interrupted(monkeypatch, encoder, tmp_path, after=4)
    assert _as_written(run_transfer(tiny_set(), encoder, {**CFG, "n_jobs": 2}, tmp_path)) == reference


def test_a_run_with_more_arms_reuses_the_fits_both_runs_share(monkeypatch, tmp_path, encoder):
    _interrupted(monkeypatch, encoder, tmp_path, after=6)  # of baseline / frozen / simple
    calls = _count_fits(monkeypatch)
    more = {**CFG, "arms": [*CFG["arms"], "random_frozen"]}
    resumed = run_transfer(tiny_set(), encoder, more, tmp_path)
    assert len(calls) == TransferConfig.from_dict(more).n_fits - 6 and resumed["fits_resumed"] == 6
    monkeypatch.undo()
    assert _as_written(resumed) == _as_written(run_transfer(tiny_set(), encoder, more))


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda enc, cfg, tmp: (enc, {**cfg, "epochs": 3}), "the option epochs (2 there, 3 now)"),
        (lambda enc, cfg, tmp: (_encoder(tmp / "other.pt", seed=1), cfg), "(the encoder)"),
    ],
    ids=["options", "encoder"],
)
def test_a_run_with_other_settings_is_refused_naming_what_changed(monkeypatch, tmp_path, encoder, change, named):
    _interrupted(monkeypatch, encoder, tmp_path, after=2)
    other_encoder, cfg = change(encoder, CFG, tmp_path)
    with pytest.raises(FitStoreError, match="^[^\n]+$") as e:
        run_transfer(tiny_set(), other_encoder, cfg, tmp_path)
    assert named in str(e.value) and str(tmp_path / FOLDER) in str(e.value) and "another run_dir" in str(e.value)
    assert _stored(tmp_path) == 2  # nothing lost
    with pytest.raises(FitStoreError, match="the labelled windows"):
        FitStore(tmp_path, fingerprint(tiny_set(seed=1), encoder.encoder, TransferConfig.from_dict(CFG), "cpu"))
    (tmp_path / FOLDER / "fingerprint.json").write_text("{")
    with pytest.raises(FitStoreError, match="fingerprint.json cannot be read .*move .* away"):
        FitStore(tmp_path, _fingerprint(encoder, CFG))


def test_a_fit_stored_for_other_windows_is_fitted_anew(tmp_path, encoder):
    store = FitStore(tmp_path, _fingerprint(encoder, CFG))
    split = (np.arange(10), np.arange(10, 14), np.arange(14, 20))
    result = ([np.full((6, 2), 0.5, np.float32)] * 2, {"best_epoch": [1, 2], "C": np.float64(0.1)}, 1.5)
    store.put(Fit("frozen", split, 7), result)
    probas, chosen, seconds = store.get(Fit("frozen", split, 7))
    assert [p.dtype for p in probas] == [np.float32] * 2 and np.array_equal(np.stack(probas), np.stack(result[0]))
    assert chosen == {"best_epoch": [1, 2], "C": 0.1} and seconds == 1.5
    moved = (split[0], split[1], np.arange(15, 21))
    assert store.get(Fit("frozen", moved, 7)) is None and store.get(Fit("baseline", split, 7)) is None
    path = tmp_path / FOLDER / "frozen-7.npz"
    for cut in (path.read_bytes()[:100], b""):  # what a crash may leave of a file not yet flushed to disk
        path.write_bytes(cut)
        assert store.get(Fit("frozen", split, 7)) is None


def test_removing_the_store_keeps_what_moola_did_not_write(tmp_path, encoder):
    store = FitStore(tmp_path, _fingerprint(encoder, CFG))
    store.put(Fit("simple", (np.arange(3), np.arange(3, 4), np.arange(4, 6)), 1), ([np.zeros((2, 2))], {}, 0.0))
    (tmp_path / FOLDER / "notes.txt").write_text("mine")
    store.remove()
    assert [p.name for p in (tmp_path / FOLDER).iterdir()] == ["notes.txt"]
    (tmp_path / FOLDER / "notes.txt").unlink()
    FitStore(tmp_path, _fingerprint(encoder, CFG)).remove()
    assert not (tmp_path / FOLDER).exists()


def test_the_transfer_notebook_resumes_an_interrupted_run(monkeypatch, tmp_path, encoder, reference):
    """What the notebook's cells do: start_run refuses the unfinished run directory but offers resume=True,
    which continues it from the fits it finished."""
    ns = {"run_dir": str(tmp_path / "r"), "n_labelled": 24}
    run = start_run("transfer", ns, TransferParams)
    _interrupted(monkeypatch, encoder, run.dir, after=3)
    run.release()
    with pytest.raises(FileExistsError, match=r"resume=True"):
        start_run("transfer", ns, TransferParams)
    run = start_run("transfer", {**ns, "resume": True}, TransferParams)
    calls = _count_fits(monkeypatch)
    assert _as_written(run_transfer(tiny_set(), encoder, CFG, run.dir)) == reference
    assert len(calls) == TransferConfig.from_dict(CFG).n_fits - 3
    run.finish()
    # the default encoder (no encoder_path) is pretrained into the run directory: resumed with it
    assert (
        default_pretrain_config(run.params, tiny_set()).resume
        and not default_pretrain_config(TransferParams(), tiny_set()).resume
    )
