"""The labelling wing: candidate windows taken from the user's bars and the session that walks them
(``session``), which window to label next (``suggestions``), the labels file written one click at a time
(``store``) and the figures of candidate windows (``figures``). It builds on the pipeline (data, features,
windows, labels) and imports neither the evaluation wing nor the notebook layer; the widget that shows it
in JupyterLab is ``moola_lib.notebook.label_widget``."""
