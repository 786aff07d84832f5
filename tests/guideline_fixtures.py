"""Fixtures shared by the guideline tests: the full corpus indexed once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.index import GuidelineIndex


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in corpus indexed in a session temp folder (a no-op sync once another module built it)."""
    path = tmp_path_factory.getbasetemp() / "guideline-index"
    GuidelineIndex(path).sync()
    return path
