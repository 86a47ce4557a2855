"""The fixed shape of the pipeline: how many bars a window holds and how far windows step.

DESIGN.md section 2: windows of 105 one-minute bars, stride 52. Every default window length in the
library (windows, labels, masking, features' bars-since normalisation, the minimum bars of a data file)
comes from here, so the number is written once.
"""

from __future__ import annotations

WINDOW_LENGTH = 105  # bars per window
WINDOW_STRIDE = 52  # bars between the starts of consecutive windows
