"""Shared fixtures: the real POCUS clips (skipped when absent) and generated clips."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

REPO = Path(__file__).resolve().parents[1]
POCUS = REPO.parent / "shared" / "data" / "pocus"


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Two cores are shared by everything here: keep torch to one thread in tests."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def pocus_dir() -> Path:
    """The real lung-ultrasound clips; tests using them skip when ../shared is absent."""
    if not (POCUS / "manifest.csv").is_file():
        pytest.skip(f"real POCUS clips not found at {POCUS} (../shared is absent)")
    return POCUS


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
