"""The classifier wing: a classifier fitted on the labelled windows, applied to new bars. ``scan`` scores every
window of new bars with a fitted model and merges the windows it detects into episodes (``scan_report``: their
figures). It sits above the labelling and transfer wings and may import both."""
