"""Agent tests run single-threaded: the networks are tiny, and on a shared 2-core machine OpenMP threads
fighting other processes cost more than they give (see docs/agents.md)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
