import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A private data cache and results root, training allowed: what a fresh user has."""
    monkeypatch.setenv("CUBELIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CUBELIB_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("CUBELIB_NO_TRAIN", raising=False)
    return tmp_path
