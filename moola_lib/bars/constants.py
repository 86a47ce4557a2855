"""The fixed shape of the pipeline: how many bars a window holds and how far windows step.

DESIGN.md section 2: windows of 105 one-minute bars, stride 52. Every default window length in the
library (windows, labels, masking, features' bars-since normalisation, the minimum bars of a data file)
comes from here, so the number is written once. ``SESSION_GAP_MINUTES``: the gap between two consecutive
bars beyond which they belong to different sessions (the labelling candidates' and the scan's default).
"""

from __future__ import annotations

WINDOW_LENGTH = 105  # bars per window
WINDOW_STRIDE = 52  # bars between the starts of consecutive windows
# CME's daily halt leaves 61 minutes between the bars of 16:59 and 18:00 New York; a few quiet minutes
# without a trade inside a session leave far less
SESSION_GAP_MINUTES = 60.0
