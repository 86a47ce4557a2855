"""The notebook layer: what the notebooks in notebooks/ need beyond the library.

- ``params``: each notebook's parameters (a dataclass) and the job configs they describe;
- ``runs``: ``start_run`` (strict parameters, the run directory, params.yaml, manifest.json) and ``Run``;
- ``manifest``: what manifest.json records (code, packages, device, data);
- ``steps``: the steps notebooks call (``labelled_from_params``, ``encoder_from_params``, ...);
- ``execute`` and ``report``: the headless executor (``python -m moola_lib.run_notebook``) and the HTML
  report; ``live_report``: the report of a run started in JupyterLab, written at the notebook's next save;
- ``sweep``: pretrain.ipynb once per setting of a parameter grid;
- ``compare``: pretraining runs side by side (compare.ipynb).

It imports the pipeline and the evaluation (``moola_lib.transfer``); nothing below imports it.
"""
