"""The labelling widget without a browser (its handlers are the button clicks), the notebook's session step,
and the report renderer's handling of widget views."""
import dataclasses

import nbformat
import pandas as pd
import pytest
import torch

from moola_lib.features import relativity_features
from moola_lib.labelling.session import LabellingSession
from moola_lib.labelling.store import LabelStore
from moola_lib.labels import read_label_table
from moola_lib.models import JadeEncoder, save_encoder
from moola_lib.notebook.label_widget import LabelWidget, show_labeller
from moola_lib.notebook.params import LabelParams
from moola_lib.notebook.report import render_report
from moola_lib.synthetic import synthetic_ohlcv
from moola_lib.notebook.steps import labelling_session_from_params
from moola_lib.util.progress import TEXT_PROGRESS_ENV

TINY = dict(synthetic_start="2025-05-01", synthetic_end="2025-05-10", n_suggestions=5, device="cpu")


@pytest.fixture
def params(tmp_path):
    return LabelParams(**TINY, labels_path=str(tmp_path / "labels.csv"), run_dir=str(tmp_path / "run"),
                       labeller="tester")


def test_buttons_write_rows_undo_removes_the_last_and_reopening_continues(params):
    widget = LabelWidget(labelling_session_from_params(params))
    assert "no encoder" in widget.message.value and "5 left in this batch" in widget.counter_text()
    first = widget.session.current["start_time"]
    widget.class_buttons["retracement"].click()
    widget.skip_button.click()
    widget.class_buttons["consolidation"].click()
    rows = pd.read_csv(params.labels_path)
    assert list(rows["label"]) == ["retracement", "consolidation"] and rows["start"][0] == first.isoformat()
    assert "labelled 2 (consolidation 1, retracement 1); 2 left" in widget.counter_text()
    widget.undo_button.click()
    assert list(pd.read_csv(params.labels_path)["label"]) == ["retracement"]
    assert "removed" in widget.message.value and "3 left in this batch" in widget.counter_text()

    reopened = LabelWidget(labelling_session_from_params(params))
    assert "labelled 1 (consolidation 0, retracement 1)" in reopened.counter_text()
    assert first not in set(reopened.session.batch["start_time"])


def test_the_last_window_disables_the_class_buttons_and_errors_show_in_the_widget(params):
    widget = LabelWidget(labelling_session_from_params(params))
    for _ in range(5):
        widget.skip_button.click()
    assert widget.class_buttons["consolidation"].disabled and "0 left" in widget.counter_text()
    widget.session.store.path = widget.session.store.path.parent / "missing" / "\0bad.csv"
    widget.session.next_batch()
    widget.redraw()
    widget.class_buttons["consolidation"].click()   # an impossible path: shown, not raised into the void
    assert "Error" in widget.message.value and "#c62828" in widget.message.value
    widget.next_button.click()
    assert "5 left in this batch" in widget.counter_text()


def test_an_encoder_gives_uncertainty_once_there_are_enough_labels(params, tmp_path):
    torch.manual_seed(0)
    save_encoder(JadeEncoder(hidden_size=8, num_layers=1), tmp_path / "enc.pt")
    p = dataclasses.replace(params, encoder_path=str(tmp_path / "enc.pt"), min_labels=4)
    session = labelling_session_from_params(p)
    assert session.embed is not None and session.suggestions.strategy == "diverse"
    for k in range(4):
        session.label(session.classes[k % 2])
    assert session.next_batch().strategy == "uncertainty"
    assert "by uncertainty on encoder features" in session.summary()


def test_headless_shows_no_widget(params, monkeypatch, capsys):
    monkeypatch.setenv(TEXT_PROGRESS_ENV, "1")
    assert show_labeller(labelling_session_from_params(params)) is None
    assert "Headless run: no labelling widget" in capsys.readouterr().out


def test_the_report_drops_widget_views_jupyterlab_did_not_save(tmp_path):
    view = {"application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2,
                                                         "version_minor": 0},
            "text/plain": "VBox(children=(IntSlider(value=0, description='window'),))"}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("browser", outputs=[
        nbformat.v4.new_output("display_data", data=view),
        nbformat.v4.new_output("stream", name="stdout", text="static stand-in shown\n")])])
    nbformat.write(nb, tmp_path / "saved.ipynb")
    html = render_report(tmp_path / "saved.ipynb", tmp_path / "report.html").read_text()
    assert "VBox(children=" not in html and "static stand-in shown" in html
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"abc": {}}}}
    nbformat.write(nb, tmp_path / "with_state.ipynb")
    html = render_report(tmp_path / "with_state.ipynb", tmp_path / "report2.html").read_text()
    assert "abc" in html   # a saved widget state is left to nbconvert's widget renderer


@pytest.fixture(scope="module")
def market():
    bars = synthetic_ohlcv(TINY["synthetic_start"], TINY["synthetic_end"], seed=0)
    return (bars, *relativity_features(bars))


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".jsonl"])
def test_two_widgets_on_one_users_file_lose_no_click_and_undo_only_their_own(market, tmp_path, suffix,
                                                                               foreign_labels):
    path = tmp_path / f"labels{suffix}"
    original = foreign_labels(path)   # a user's own file, rows with labelled_at included
    ann, bob = (LabelWidget(LabellingSession(*market, LabelStore(path, user=who), n_suggestions=5))
                for who in ("ann", "bob"))
    for widget, button in [(ann, "consolidation"), (bob, "retracement"), (ann, "retracement"), (bob, "skip"),
                           (bob, "consolidation"), (ann, "consolidation")]:
        (widget.skip_button if button == "skip" else widget.class_buttons[button]).click()
    rows = read_label_table(path)[0]
    assert list(rows["labelled_by"]) == ["bob", "eve", "ann", "bob", "ann", "bob", "ann"]   # 5 clicks, 5 rows
    original.assert_kept()
    assert "labelled 7 " in bob.counter_text()   # bob's counter sees ann's rows
    bob.undo_button.click()
    assert list(read_label_table(path)[0]["labelled_by"]) == ["bob", "eve", "ann", "bob", "ann", "ann"]
    for _ in range(4):
        ann.undo_button.click()
    assert "nothing to undo" in ann.message.value
    bob.undo_button.click()
    original.assert_unchanged()   # every row the widgets wrote is gone, the user's rows never were touched
