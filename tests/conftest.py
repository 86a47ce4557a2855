"""Test-wide settings: headless plotting, a bounded hypothesis profile."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

from hypothesis import settings  # noqa: E402

settings.register_profile("moola", deadline=None, max_examples=50, derandomize=True)
settings.load_profile("moola")
