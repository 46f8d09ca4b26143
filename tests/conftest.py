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


def pytest_collection_modifyitems(items):
    """The end-to-end test first: under ``make test`` (pytest-xdist, ``--dist loadfile``) one
    worker runs it from the start while the other takes every other file."""
    items.sort(key=lambda item: not item.get_closest_marker("e2e"))
