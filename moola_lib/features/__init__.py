"""Features: the 10 causal relativity features of each bar (``relativity``: numba zigzag, swing points),
their options (``options``: defaults, the original's set, ranges) and the EDA figures of bars and features
(``eda_plots``). Imports ``bars`` and ``util``."""
