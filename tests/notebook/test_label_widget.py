"""The labelling widget without a browser (its handlers are the button clicks and the key events ipyevents
delivers), what it says about the window, the notebook's session step and parameters, and the report
renderer's handling of widget views."""

import dataclasses

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd
import pytest
import torch

from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.features.relativity import relativity_features
from moola_lib.labelling.figures import labelling_figure
from moola_lib.labelling.session import LabellingSession, average_true_range
from moola_lib.labelling.store import LabelStore
from moola_lib.labels.sets import read_label_table
from moola_lib.notebook.label_widget import LabelWidget, key_action, leg_brief, show_labeller
from moola_lib.notebook.params import LabelParams
from moola_lib.notebook.report import render_report
from moola_lib.notebook.steps import labelling_session_from_params
from moola_lib.pretraining.checkpoints import save_encoder
from moola_lib.pretraining.model import JadeEncoder
from moola_lib.util.config import ConfigError, apply_overrides
from moola_lib.util.progress import TEXT_PROGRESS_ENV

# strategy: these tests follow uncertainty's fallback notes (the default is random since issue 21's study)
TINY = dict(
    synthetic_start="2025-05-01", synthetic_end="2025-05-10", n_suggestions=5, device="cpu", strategy="uncertainty"
)


@pytest.fixture
def params(tmp_path):
    return LabelParams(
        **TINY, labels_path=str(tmp_path / "labels.csv"), run_dir=str(tmp_path / "run"), labeller="tester"
    )


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


def keydown(key, **extra):
    """The dict ipyevents sends for a keydown (the fields the widget reads)."""
    return {
        "event": "keydown",
        "key": key,
        "repeat": False,
        "ctrlKey": False,
        "altKey": False,
        "metaKey": False,
        "shiftKey": False,
        **extra,
    }


def test_key_action_maps_keys_to_actions():
    classes = ("consolidation", "retracement")
    assert key_action(keydown("1"), classes) == ("label", "consolidation")
    assert key_action(keydown("2"), classes) == ("label", "retracement")
    assert key_action(keydown("S"), classes) == ("skip", None)  # caps lock or shift: the same key
    assert key_action(keydown("u"), classes) == key_action(keydown("Backspace"), classes) == ("undo", None)
    assert key_action(keydown("n"), classes) == ("next", None)
    for ignored in (keydown("3"), keydown("x"), keydown("Enter"), keydown("0"), keydown(""), {}):
        assert key_action(ignored, classes) is None, ignored
    # browser and JupyterLab shortcuts (Ctrl+S saves) and a held key (auto-repeat) label nothing
    for extra in ({"ctrlKey": True}, {"altKey": True}, {"metaKey": True}, {"repeat": True}):
        assert key_action(keydown("1", **extra), classes) is None and key_action(keydown("s", **extra), classes) is None
    many = [f"c{k}" for k in range(11)]
    assert key_action(keydown("9"), many) == ("label", "c8") and key_action(keydown("0"), many) is None


def test_keys_write_rows_skip_moves_on_undo_removes_the_last_and_unknown_keys_do_nothing(params):
    widget = LabelWidget(labelling_session_from_params(params))
    assert [b.description for b in widget.class_buttons.values()] == ["1 consolidation", "2 retracement"]
    assert (widget.skip_button.description, widget.undo_button.description) == ("s skip", "u undo")
    press = widget.keys._handle_mouse_msg  # what ipyevents calls with the browser's message
    batch = widget.session.batch["start_time"]
    press(None, keydown("2"), [])
    press(None, keydown("s"), [])
    press(None, keydown("1"), [])
    rows = pd.read_csv(params.labels_path)
    assert list(rows["label"]) == ["retracement", "consolidation"]
    assert list(rows["start"]) == [batch[0].isoformat(), batch[2].isoformat()]  # the skipped one is not there
    before, position = widget.message.value, widget.session.position
    for key in ("x", "3", "Enter"):
        press(None, keydown(key), [])
    press(None, keydown("1", repeat=True), [])
    press(None, keydown("1", ctrlKey=True), [])
    assert len(pd.read_csv(params.labels_path)) == 2
    assert (widget.message.value, widget.session.position) == (before, position)
    press(None, keydown("Backspace"), [])
    assert list(pd.read_csv(params.labels_path)["label"]) == ["retracement"] and "removed" in widget.message.value
    assert widget.session.current["start_time"] == batch[2]  # the undone window is shown again
    press(None, keydown("u"), [])
    assert len(pd.read_csv(params.labels_path)) == 0
    for _ in range(5):
        press(None, keydown("s"), [])
    press(None, keydown("1"), [])  # the batch is done: the key says so and writes nothing
    assert len(pd.read_csv(params.labels_path)) == 0 and "n (next batch)" in widget.message.value
    press(None, keydown("n"), [])
    assert "5 left in this batch" in widget.counter_text()


def test_the_widget_says_what_the_label_is_about(params):
    session = labelling_session_from_params(params)
    widget = LabelWidget(session, definitions=params.class_definitions)
    w = session.current
    a, b = int(w["expansion_start"]), int(w["expansion_end"])
    leg, about = leg_brief(w)
    assert leg.startswith(f"{w['direction']} leg of {w['size_atr']:.1f} ATR") and f"bars {a}-{b}" in leg
    assert f"label bars {b + 1}-104 after the expansion leg" in about
    last = pd.Series(
        {"expansion_start": 20, "expansion_end": 104, "direction": "up", "size_atr": 7.25, "size_price": 12345.6}
    )
    assert leg_brief(last) == (
        "up leg of 7.2 ATR (12,346 in price), bars 20-104 of the window's 0-104 (orange)",
        "the leg ends at the window's last bar: nothing after it to label (skip)",
    )
    assert "(0.001234 in price)" in leg_brief(last.replace(12345.6, 0.0012345))[0]
    brief = widget.brief.value
    assert f"bars {b + 1}-104 after the expansion leg" in brief
    for k, (name, text) in enumerate(params.class_definitions.items()):
        assert f"<b>{k + 1} {name}</b>: {text}".replace("'", "&#x27;") in brief
    assert brief.index("consolidation") < brief.index("retracement")
    widget.skip_button.click()
    assert widget.brief.value != brief  # the next window's leg
    assert "definition" not in LabelWidget(session).brief.value  # library use without definitions: none shown


def test_the_window_figure_marks_the_bars_the_label_is_about(params):
    session = labelling_session_from_params(params)
    w = session.current
    fig = labelling_figure(session.bars, session.X, w)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert f"label: bars {int(w['expansion_end']) + 1}-104 after the leg" in texts
    plt.close(fig)
    fig = labelling_figure(
        session.bars, session.X, pd.concat([w.drop("expansion_end"), pd.Series({"expansion_end": 104})])
    )
    assert not any(t.get_text().startswith("label:") for t in fig.axes[0].texts)  # nothing after the leg
    plt.close(fig)


def test_the_leg_size_in_price_is_the_atr_size_times_the_atr_before_the_leg(params):
    session = labelling_session_from_params(params)
    c = session.candidates
    atr = average_true_range(session.bars)[(c["start"] + c["expansion_start"]).to_numpy()]
    assert (c["size_price"] > 0).all()
    np.testing.assert_allclose(c["size_price"].to_numpy(), c["size_atr"].to_numpy() * atr, rtol=1e-9)


def test_class_definitions_need_one_line_for_each_class():
    assert set(LabelParams().class_definitions) == set(LabelParams().classes)
    one = {"classes": ["retracement", "consolidation"], "class_definitions": {"Retracement": "gives back"}}
    with pytest.raises(ConfigError, match=r"label.ipynb parameters: .*missing \['consolidation'\], not a class \[\]"):
        apply_overrides(LabelParams(), one, what="label.ipynb parameters")
    with pytest.raises(ConfigError, match=r"not a class \['other'\]"):
        LabelParams(class_definitions={**LabelParams().class_definitions, "other": "x"})
    for bad in ("", "  ", "two\nlines"):
        with pytest.raises(ConfigError, match=r"\['retracement'\] must be one non-empty line"):
            LabelParams(class_definitions={"consolidation": "sideways", "retracement": bad})
    both = {**one["class_definitions"], "consolidation": "x"}
    ok = apply_overrides(LabelParams(), {**one, "class_definitions": both})
    assert ok.class_definitions["consolidation"] == "x" and ok.classes == ["retracement", "consolidation"]


def test_the_last_window_disables_the_class_buttons_and_errors_show_in_the_widget(params):
    widget = LabelWidget(labelling_session_from_params(params))
    for _ in range(5):
        widget.skip_button.click()
    assert widget.class_buttons["consolidation"].disabled and "0 left" in widget.counter_text()
    widget.session.store.path = widget.session.store.path.parent / "missing" / "\0bad.csv"
    widget.session.next_batch()
    widget.redraw()
    widget.class_buttons["consolidation"].click()  # an impossible path: shown, not raised into the void
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
    view = {
        "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0},
        "text/plain": "VBox(children=(IntSlider(value=0, description='window'),))",
    }
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "browser",
                outputs=[
                    nbformat.v4.new_output("display_data", data=view),
                    nbformat.v4.new_output("stream", name="stdout", text="static stand-in shown\n"),
                ],
            )
        ]
    )
    nbformat.write(nb, tmp_path / "saved.ipynb")
    html = render_report(tmp_path / "saved.ipynb", tmp_path / "report.html").read_text()
    assert "VBox(children=" not in html and "static stand-in shown" in html
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"abc": {}}}}
    nbformat.write(nb, tmp_path / "with_state.ipynb")
    html = render_report(tmp_path / "with_state.ipynb", tmp_path / "report2.html").read_text()
    assert "abc" in html  # a saved widget state is left to nbconvert's widget renderer


@pytest.fixture(scope="module")
def market():
    bars = synthetic_ohlcv(TINY["synthetic_start"], TINY["synthetic_end"], seed=0)
    return (bars, *relativity_features(bars))


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".jsonl"])
def test_two_widgets_on_one_users_file_lose_no_click_and_undo_only_their_own(market, tmp_path, suffix, foreign_labels):
    path = tmp_path / f"labels{suffix}"
    original = foreign_labels(path)  # a user's own file, rows with labelled_at included
    ann, bob = (
        LabelWidget(LabellingSession(*market, LabelStore(path, user=who), n_suggestions=5)) for who in ("ann", "bob")
    )
    for widget, button in [
        (ann, "consolidation"),
        (bob, "retracement"),
        (ann, "retracement"),
        (bob, "skip"),
        (bob, "consolidation"),
        (ann, "consolidation"),
    ]:
        (widget.skip_button if button == "skip" else widget.class_buttons[button]).click()
    rows = read_label_table(path)[0]
    assert list(rows["labelled_by"]) == ["bob", "eve", "ann", "bob", "ann", "bob", "ann"]  # 5 clicks, 5 rows
    original.assert_kept()
    assert "labelled 7 " in bob.counter_text()  # bob's counter sees ann's rows
    bob.undo_button.click()
    assert list(read_label_table(path)[0]["labelled_by"]) == ["bob", "eve", "ann", "bob", "ann", "ann"]
    for _ in range(4):
        ann.undo_button.click()
    assert "nothing to undo" in ann.message.value
    bob.undo_button.click()
    original.assert_unchanged()  # every row the widgets wrote is gone, the user's rows never were touched
