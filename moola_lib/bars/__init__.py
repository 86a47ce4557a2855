"""Bars: the first stage of the data's journey. OHLCV files loaded and validated (``ohlcv``), the bars of a
run (a file or the embedded market: ``sources``), the splits as dates (``splits``), window starts and
gathers (``windows``), the embedded market (``synthetic``) and its episode process (``episodes``), and the
window length and stride (``constants``). Imports only ``moola_lib.util``."""
