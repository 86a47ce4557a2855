"""The labelling widget of label.ipynb (ipywidgets): one candidate window at a time, what its label means,
one button per class, skip, undo, next batch, and a counter (labelled, per class, left in this batch).

Above the buttons the widget says what is being labelled: the candidate's expansion leg (direction, size
in ATR and in price, its bars) and the part of the window the label is about (the bars after the leg),
then the class definitions (``class_definitions``, one line each), so that every labeller applies the
same rule.

Keyboard: keys ``1``..``9`` label the current window with the 1st..9th class, ``s`` skips, ``u`` or
Backspace undoes, ``n`` ranks the next batch; each button shows its key. Keys are captured with
ipyevents (a kept widget library on PyPI, with a prebuilt JupyterLab 4 / ipywidgets 8 extension): while
the mouse pointer is over the widget, its key listener runs in the document's capture phase, before
JupyterLab's own shortcuts (bubbling phase), and stops the key there, so ``1`` labels instead of turning
the cell into a heading. A hidden text box that takes key strokes was the alternative; it needs the
focus kept in the box (a click on a button takes it away) and shows what was typed, so it was not used.
Keys pressed with Ctrl, Alt or Meta and auto-repeats (a held key) do nothing: holding a key must not
label a run of windows. ``key_action`` maps a key to an action without a browser; ``on_key`` is what the
browser calls.

All logic is in ``moola_lib.labelling.session.LabellingSession``; the handlers here only call it and redraw,
so they can be tested without a browser (``widget.class_buttons[name].click()``, ``widget.on_key(event)``).
Every label is written to the labels file before the next window is drawn.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from ..bars.constants import WINDOW_LENGTH
from ..labelling.figures import labelling_figure
from ..labelling.session import LabellingSession
from ..util.progress import TEXT_PROGRESS_ENV

CLASS_KEYS = "123456789"  # the 1st..9th class; classes beyond the 9th have a button only
ACTION_KEYS = {"s": "skip", "u": "undo", "backspace": "undo", "n": "next"}
MODIFIERS = ("ctrlKey", "altKey", "metaKey")


def key_action(event: Mapping, classes: Sequence[str]) -> tuple[str, str | None] | None:
    """The action a browser keydown event (ipyevents' dict: ``key``, ``repeat``, ``ctrlKey``, ...) asks for:
    ("label", class), ("skip", None), ("undo", None), ("next", None), or None for a key without one."""
    if event.get("repeat") or any(event.get(m) for m in MODIFIERS):
        return None
    key = str(event.get("key", "")).lower()
    if len(key) == 1 and key in CLASS_KEYS:
        k = CLASS_KEYS.index(key)
        return ("label", classes[k]) if k < len(classes) else None
    return (ACTION_KEYS[key], None) if key in ACTION_KEYS else None


def class_key(k: int) -> str | None:
    """The key of the k-th class (0-based), None beyond the 9th."""
    return CLASS_KEYS[k] if k < len(CLASS_KEYS) else None


def leg_brief(window: pd.Series, length: int = WINDOW_LENGTH) -> tuple[str, str]:
    """What the candidate is and which of its bars the label is about, one line each (plain text)."""
    a, b = int(window["expansion_start"]), int(window["expansion_end"])
    move = window["size_price"]  # 4 significant digits, but no exponent for moves of 1000 and more
    price = f"{move:,.0f}" if move >= 1000 else f"{move:.4g}"
    leg = (
        f"{window['direction']} leg of {window['size_atr']:.1f} ATR ({price} in price), "
        f"bars {a}-{b} of the window's 0-{length - 1} (orange)"
    )
    about = (
        f"label bars {b + 1}-{length - 1} after the expansion leg: what price does once the leg ends"
        if b + 1 < length
        else "the leg ends at the window's last bar: nothing after it to label (skip)"
    )
    return leg, about


class LabelWidget:
    """What the label means, buttons (with keys), counter, message line and the current window's figure;
    ``view`` is what to display, ``keys`` the ipyevents key listener on it."""

    def __init__(self, session: LabellingSession, context: int = 30, definitions: Mapping[str, str] | None = None):
        import ipywidgets as widgets

        try:
            from ipyevents import Event
        except ImportError:
            raise ImportError(
                "the labelling widget needs ipyevents (the notebooks extra): bin/dev setup, or "
                "pip install -e '.[notebooks]', then restart JupyterLab"
            ) from None

        self.session, self.context = session, context
        self.definitions = {k.strip().lower(): v for k, v in (definitions or {}).items()}
        self.class_buttons = {}
        for k, name in enumerate(session.classes):
            key = class_key(k)
            button = widgets.Button(description=f"{key} {name}" if key else name, button_style="primary")
            button.on_click(lambda _b, name=name: self._safely(self.on_label, name))
            self.class_buttons[name] = button
        self.skip_button = widgets.Button(description="s skip")
        self.undo_button = widgets.Button(
            description="u undo",
            button_style="warning",
            tooltip="u or Backspace: remove the newest row this tool wrote",
        )
        self.next_button = widgets.Button(description="n next batch")
        self.skip_button.on_click(lambda _b: self._safely(self.on_skip))
        self.undo_button.on_click(lambda _b: self._safely(self.on_undo))
        self.next_button.on_click(lambda _b: self._safely(self.on_next_batch))
        self.brief, self.counter, self.message = widgets.HTML(), widgets.HTML(), widgets.HTML()
        self.figure = widgets.Output()
        buttons = [*self.class_buttons.values(), self.skip_button, self.undo_button, self.next_button]
        hint = widgets.HTML(
            "<span style='color:#666'>Keys work while the mouse pointer is over this widget: "
            "the key before each button's name; Backspace also undoes.</span>"
        )
        self.view = widgets.VBox([self.brief, widgets.HBox(buttons), hint, self.counter, self.message, self.figure])
        self.keys = Event(source=self.view, watched_events=["keydown"])
        self.keys.on_dom_event(lambda event: self._safely(self.on_key, event))
        self.say(session.suggestions.note or f"{len(session.batch)} suggestions ({session.suggestions.strategy})")
        self.redraw()

    def _safely(self, handler, *args) -> None:
        # a widget callback's exception only reaches the kernel log: show it where the labeller looks
        try:
            handler(*args)
        except (OSError, ValueError, IndexError) as e:
            self.say(f"{type(e).__name__}: {e}", error=True)

    def say(self, text: str, error: bool = False) -> None:
        color = "#c62828" if error else "#333"
        self.message.value = f"<span style='color:{color}'>{html.escape(text)}</span>"

    def on_key(self, event: Mapping) -> None:
        """A keydown from the browser: the action of its key (``key_action``), or nothing."""
        action = key_action(event, self.session.classes)
        if action is None:
            return
        what, name = action
        if what in ("label", "skip") and self.session.current is None:
            self.say("this batch is done: n (next batch) ranks the remaining candidates again")
        elif what == "label":
            self.on_label(name)
        else:
            {"skip": self.on_skip, "undo": self.on_undo, "next": self.on_next_batch}[what]()

    def on_label(self, name: str) -> None:
        row = self.session.label(name)
        self.say(f"saved {row['window_id']} as {name} to {self.session.store.path}")
        self.redraw()

    def on_skip(self) -> None:
        self.session.skip()
        self.redraw()

    def on_undo(self) -> None:
        removed = self.session.undo()
        self.say(
            f"removed {removed['window_id']} ({removed['label']})"
            if removed
            else "nothing to undo: no row this widget wrote is left in the file (rows from elsewhere are never removed)"
        )
        self.redraw()

    def on_next_batch(self) -> None:
        s = self.session.next_batch()
        self.say(s.note or f"{len(self.session.batch)} new suggestions ({s.strategy})")
        self.redraw()

    def counter_text(self) -> str:
        c = self.session.counter()
        per_class = ", ".join(f"{k} {v}" for k, v in c["per_class"].items())
        return f"labelled {c['labelled']} ({per_class}); {c['left_in_batch']} left in this batch"

    def brief_html(self, window: pd.Series | None) -> str:
        """The leg, the bars the label is about and the class definitions (HTML, above the buttons)."""
        lines = []
        if window is not None:
            leg, about = leg_brief(window, self.session.options.length)
            lines += [f"<b>{html.escape(leg)}</b>", f"<b>{html.escape(about)}</b>"]
        for k, name in enumerate(self.session.classes if self.definitions else ()):
            key = class_key(k)
            text = self.definitions.get(name, "(no definition: add it to class_definitions)")
            lines.append(f"<b>{html.escape(f'{key} {name}' if key else name)}</b>: {html.escape(text)}")
        return "<br>".join(lines)

    def redraw(self) -> None:
        from IPython.display import display

        self.counter.value = f"<b>{html.escape(self.counter_text())}</b>"
        window = self.session.current
        self.brief.value = self.brief_html(window)
        for button in (*self.class_buttons.values(), self.skip_button):
            button.disabled = window is None
        with self.figure:
            self.figure.clear_output(wait=True)
            if window is None:
                print(
                    "This batch is done: n (next batch) ranks the remaining candidates again "
                    "(the probe is refit on the labels so far)."
                )
                return
            fig = labelling_figure(
                self.session.bars,
                self.session.X,
                window,
                context=self.context,
                title=f"{self.session.position + 1}/{len(self.session.batch)}: ",
            )
            display(fig)
            plt.close(fig)


def show_labeller(session: LabellingSession, context: int = 30, definitions: Mapping[str, str] | None = None):
    """The widget's view in a live notebook; in a headless run (papermill) a line saying where the
    suggestions are instead (a widget there would be saved as dead text)."""
    if os.environ.get(TEXT_PROGRESS_ENV):
        print(
            "Headless run: no labelling widget. Label from suggestions.csv and figures/suggestions.png, "
            "or open this notebook in JupyterLab."
        )
        return None
    return LabelWidget(session, context, definitions).view
