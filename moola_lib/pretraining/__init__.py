"""Pretraining: the Jade encoder and its heads (``model``), the job's options (``config``), the pretext
objectives (``objectives``) and their masking primitives (``masking``), the job's data loaded once
(``data``), the training engine (``trainer``), the job itself (``job``: ``pretrain``, its command line),
checkpoints and the encoder file format (``checkpoints``), what a job tells the world per epoch
(``feedback``: progress.jsonl and the terminal's lines; ``tensorboard_log``), devices and DDP (``devices``,
``distributed``) and the figures of pretraining runs (``plots``). Imports ``features``, ``bars`` and ``util``."""
