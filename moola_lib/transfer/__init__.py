"""Transfer evaluation: does the pretrained encoder help the small labelled task, and by how much?

Protocol (DESIGN.md section 5), one module per concern:

- ``config``: TransferConfig, the arms and the metrics. Arms share one architecture (the encoder
  checkpoint's): ``baseline`` = random init, all trained; ``frozen`` = pretrained encoder frozen, only the
  head trains; ``finetune`` = pretrained encoder, head first (``unfreeze_epoch`` epochs frozen), then the
  encoder too at ``lr * encoder_lr_scale``; ``random_frozen`` = a random encoder under the same head-only
  probe (the control for ``frozen``);
- ``folds``: repeated stratified K-fold, identical for all arms, windows that overlap in time in the same
  fold; an inner validation split of the training folds for early stopping, never the test fold;
- ``probe``: one classifier trained and tested on one split;
- ``protocol``: every arm on every fold (``run_transfer``), summaries, comparisons, learning curve;
- ``stats``: accuracy, balanced accuracy, macro F1, per-class recall with 95% confidence intervals; paired
  differences with the corrected resampled t-test of Nadeau & Bengio (2003) and a paired bootstrap;
- ``verdict``: one paragraph generated from the numbers;
- ``provenance``: the encoder's pretraining run, its feature options and the labelled windows it has seen;
- ``figures``: the figures and tables of transfer.ipynb.

This package imports the pipeline (models, labels, ...) and never the notebook layer.
"""
