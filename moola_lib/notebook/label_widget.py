"""The labelling widget of label.ipynb (ipywidgets): one candidate window at a time, one button per class,
skip, undo, next batch, and a counter (labelled, per class, left in this batch).

All logic is in ``moola_lib.labelling.session.LabellingSession``; the handlers here only call it and redraw, so
they can be tested without a browser (``widget.class_buttons[name].click()``). Every click is written to
the labels file before the next window is drawn.
"""
from __future__ import annotations

import html
import os

import matplotlib.pyplot as plt

from ..labelling.figures import labelling_figure
from ..labelling.session import LabellingSession
from ..util.progress import TEXT_PROGRESS_ENV


class LabelWidget:
    """Buttons, counter, message line and the current window's figure; ``view`` is what to display."""

    def __init__(self, session: LabellingSession, context: int = 30):
        import ipywidgets as widgets

        self.session, self.context = session, context
        self.class_buttons = {c: widgets.Button(description=c, button_style="primary") for c in session.classes}
        for name, button in self.class_buttons.items():
            button.on_click(lambda _b, name=name: self._safely(self.on_label, name))
        self.skip_button = widgets.Button(description="skip")
        self.undo_button = widgets.Button(description="undo", button_style="warning")
        self.next_button = widgets.Button(description="next batch")
        self.skip_button.on_click(lambda _b: self._safely(self.on_skip))
        self.undo_button.on_click(lambda _b: self._safely(self.on_undo))
        self.next_button.on_click(lambda _b: self._safely(self.on_next_batch))
        self.counter, self.message, self.figure = widgets.HTML(), widgets.HTML(), widgets.Output()
        buttons = [*self.class_buttons.values(), self.skip_button, self.undo_button, self.next_button]
        self.view = widgets.VBox([widgets.HBox(buttons), self.counter, self.message, self.figure])
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

    def on_label(self, name: str) -> None:
        row = self.session.label(name)
        self.say(f"saved {row['window_id']} as {name} to {self.session.store.path}")
        self.redraw()

    def on_skip(self) -> None:
        self.session.skip()
        self.redraw()

    def on_undo(self) -> None:
        removed = self.session.undo()
        self.say(f"removed {removed['window_id']} ({removed['label']})" if removed else
                 "nothing to undo: no row this widget wrote is left in the file (rows from elsewhere are "
                 "never removed)")
        self.redraw()

    def on_next_batch(self) -> None:
        s = self.session.next_batch()
        self.say(s.note or f"{len(self.session.batch)} new suggestions ({s.strategy})")
        self.redraw()

    def counter_text(self) -> str:
        c = self.session.counter()
        per_class = ", ".join(f"{k} {v}" for k, v in c["per_class"].items())
        return f"labelled {c['labelled']} ({per_class}); {c['left_in_batch']} left in this batch"

    def redraw(self) -> None:
        from IPython.display import display

        self.counter.value = f"<b>{html.escape(self.counter_text())}</b>"
        window = self.session.current
        for button in (*self.class_buttons.values(), self.skip_button):
            button.disabled = window is None
        with self.figure:
            self.figure.clear_output(wait=True)
            if window is None:
                print("This batch is done: 'next batch' ranks the remaining candidates again "
                      "(the probe is refit on the labels so far).")
                return
            fig = labelling_figure(self.session.bars, self.session.X, window, context=self.context,
                                   title=f"{self.session.position + 1}/{len(self.session.batch)}: ")
            display(fig)
            plt.close(fig)


def show_labeller(session: LabellingSession, context: int = 30):
    """The widget's view in a live notebook; in a headless run (papermill) a line saying where the
    suggestions are instead (a widget there would be saved as dead text)."""
    if os.environ.get(TEXT_PROGRESS_ENV):
        print("Headless run: no labelling widget. Label from suggestions.csv and figures/suggestions.png, "
              "or open this notebook in JupyterLab.")
        return None
    return LabelWidget(session, context).view
