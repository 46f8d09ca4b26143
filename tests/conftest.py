import sys
from pathlib import Path

import pytest

# tests/ helpers (midi_factory) are plain modules, not a package
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def torch_one_thread():
    """torch on one thread for the test (results then match across machines), restored after."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
