"""Test-wide settings: headless plotting, a bounded hypothesis profile, one torch thread where asked."""
import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

from hypothesis import settings  # noqa: E402

settings.register_profile("moola", deadline=None, max_examples=50, derandomize=True)
settings.load_profile("moola")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny LSTMs run fastest on one torch thread, and on a shared 2-core machine two OpenMP threads are
    many times slower (modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
