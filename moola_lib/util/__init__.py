"""Generic helpers that know nothing of markets or models: atomic file writes and safe reads (``io``), paths
relative to the repository (``paths``), progress bars (``progress``), one writer per run directory
(``rundir``) and did-you-mean hints for unknown names (``names``). Every wing may import them; they import
no wing."""
