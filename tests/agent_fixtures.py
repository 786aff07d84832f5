"""Shared pieces for the agent tests: tiny checkpoints, one guideline index per process, case folders.

``from agent_fixtures import ...`` (pytest puts ``tests/`` on ``sys.path``). The checkpoints and the
index are made once per test process and removed at exit.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from model_fixtures import make_tiny_checkpoint
from synthetic import synthetic_clip, write_frame_folder, write_image, write_video

LUNG = ("covid19", "bacterial_pneumonia", "normal")
CLINICAL = {"chief_complaint": "Fever and dry cough for five days.",
            "physical_exam": "SpO2 93% on room air, bibasal crackles.",
            "additional_info": "Household contact with COVID-19."}


@lru_cache(maxsize=None)
def _scratch() -> Path:
    path = Path(tempfile.mkdtemp(prefix="autous-agent-tests-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@lru_cache(maxsize=None)
def tiny_checkpoint(abstain: bool = False) -> Path:
    """A random-init lung CTU-Net; ``abstain=True`` sets a threshold no prediction reaches."""
    name = "abstain.pt" if abstain else "confident.pt"
    return make_tiny_checkpoint(_scratch() / name, classes=LUNG, abstain_threshold=0.99 if abstain else 0.0)


def index_dir() -> Path:
    """One guideline index folder per process (built by the search tool on first use)."""
    return _scratch() / "index"


def make_case(folder: Path, clip: str | None = "mp4", **fields: Any) -> Path:
    """A case folder: ``clip`` is mp4, gif, png, frames, broken or None; ``fields`` override case.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = synthetic_clip("b_lines", n_frames=12, size=64)
    if clip in ("mp4", "gif"):
        write_video(folder / f"clip.{clip}", frames)
    elif clip == "png":
        write_image(folder / "still.png", frames[0])
    elif clip == "frames":
        write_frame_folder(folder / "frames", frames, ext=".png")
    elif clip == "broken":
        (folder / "clip.mp4").write_bytes(b"\x00\x01 this is not a video" * 20)
    data = {**CLINICAL, **fields}
    (folder / "case.yaml").write_text(yaml.safe_dump({k: v for k, v in data.items() if v is not None}), encoding="utf-8")
    return folder


def make_graph(abstain: bool = False, backend: Any = None, checkpointer: Any = None):
    """The real diagnosis graph over the real tools with a tiny checkpoint and the test index."""
    from agent.graph import build_graph
    from tools import get_tools

    tools = get_tools(checkpoint=tiny_checkpoint(abstain), index_dir=index_dir())
    return build_graph(tools, backend=backend, checkpointer=checkpointer)
