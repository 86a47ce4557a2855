"""Transfer evaluation: does the pretrained encoder help the small labelled task, and by how much?

Protocol (DESIGN.md section 5), one module per concern:

- ``arms``: the table of arms, one row each (name, the ``TransferConfig.arms`` value that runs it, kind,
  role, title, colour, encoder and optimiser settings), read by everything below. The neural arms share one
  architecture (the encoder checkpoint's): ``baseline`` = random init, all trained; ``frozen`` = pretrained
  encoder frozen, scored by a deterministic linear probe on its pooled features; ``finetune`` = pretrained
  encoder, head first (``unfreeze_epoch`` epochs frozen), then the encoder too at ``lr * encoder_lr_scale``;
  ``lpft`` = linear probe, then the whole model fine-tuned from it at ``lr * encoder_lr_scale``;
  ``random_frozen`` = a random encoder under the same probe (the control for ``frozen``). The non-neural
  arms: ``simple`` = logistic regression and gradient boosting on per-window feature summaries; ``rocket``
  = MiniRocket and MultiRocket features with a ridge classifier. Trained arms average ``seeds_per_fold``
  seeds a fold; every arm learns from the fit windows of the inner split;
- ``config``: TransferConfig (its ``arms`` checked against the table) and the metrics;
- ``folds``: groups (overlapping windows, trading sessions), repeated stratified group K-fold identical for
  all arms, an optional embargo; an inner validation split of the training folds for early stopping and
  the probes' regularisation, never the test fold;
- ``readouts``: how the probes read a frozen encoder (pooling x layer, ``TransferConfig.readouts``), chosen
  per fold on the inner split;
- ``fits``: one arm on one split, a class per kind of arm (``KINDS``: prepare, fit, predict, state) whose
  fitted object is the model; ``probe``: one neural classifier trained on one split; ``linear``: the
  deterministic logistic probe; ``simple``: the window summaries and the simple models; ``rocket``: the
  ROCKET transforms and the ridge classifier; ``calibration``: the temperature and the calibration error;
- ``protocol``: every arm on every fold (``run_transfer``), summaries, learning curve, the results file;
- ``stats``: accuracy, balanced accuracy, macro F1, log-loss, ROC AUC, per-class recall with 95% CIs; the
  corrected resampled t-test of Nadeau & Bengio (2003), the minimal detectable effect, Holm's correction,
  a paired bootstrap;
- ``comparisons``: the primary comparison (named before the run) and the Holm-corrected others;
- ``decision``: which arm to use, from one model of every arm's fold scores: each arm's probability of
  being the best, the expected loss of choosing it, the recommended arm and whether the data separate it;
- ``answer``: the verdict's first three plain lines (which model, by how much, what more labels would buy);
- ``verdict``: the answer, then a table of the statistical detail, with the effect size the run could resolve;
- ``figures``: the figures and tables of transfer.ipynb;
- ``validate``: the protocol checked on known answers (``python -m moola_lib.studies.validate``,
  VALIDATION.md).

This package imports the pipeline (models, labels, ...) and never the notebook layer.
"""
