"""The classifier the labels were for: the arm a transfer run chose (or one named), fitted on all labelled
windows with exactly the recipe the protocol evaluated, calibrated, saved as one self-describing artefact,
read back to classify new windows, and scanned over new bars.

``model``: ``ArmClassifier`` (fit, predict, save, load); ``recipe``: which arm and which ``TransferConfig``
(a transfer run's, read once as a ``TransferRun``); ``files``: the model's files (``model.json`` and the
weights-only ``model.pt``), written and checked; ``fit_report``: the figures of a fit (the reliability
diagram); ``scan``: every window of new bars scored, the windows it detects merged into episodes
(``scan_report``: their figures); ``cli``: ``python -m moola_lib.classify fit | scan``; ``errors``: the
classifier's expected errors. It sits above the labelling and transfer wings and may
import both; only the studies, the notebook layer, the tools and the entry module import it.
"""
