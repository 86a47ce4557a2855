"""Generic helpers that know nothing of markets or models: atomic file writes and safe reads (``io``), paths
relative to the repository (``paths``), progress bars (``progress``), device choice (``devices``), the
distributed context (``distributed``), one writer per run directory (``rundir``) and the command-line error
policy (``cli``). Every wing may import them; they import no wing."""
