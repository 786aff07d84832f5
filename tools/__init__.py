"""The three Auto-US LangChain tools; ``get_tools()`` returns them ready to use.

    from tools import get_tools
    tools = get_tools()  # classify_ultrasound_video, retrieve_key_frames, search_guidelines

The tool classes import torch, chromadb and langchain; they load on first use so that
``tools.cli`` (and with it ``autous --help``) starts fast.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

_TOOL_CLASSES = {
    "ClassifyUltrasoundVideoTool": "tools.classify",
    "RetrieveKeyFramesTool": "tools.key_frames",
    "SearchGuidelinesTool": "tools.guidelines",
}

__all__ = [*_TOOL_CLASSES, "get_tools"]


def __getattr__(name: str) -> Any:
    if name in _TOOL_CLASSES:
        return getattr(importlib.import_module(_TOOL_CLASSES[name]), name)
    raise AttributeError(f"module 'tools' has no attribute {name!r}")


def get_tools(checkpoint: str | Path | None = None, index_dir: str | Path | None = None,
              out_dir: str | Path | None = None) -> list[BaseTool]:
    """``[classify_ultrasound_video, retrieve_key_frames, search_guidelines]``.

    ``checkpoint``: classifier checkpoint (default: the bundled one); ``index_dir``: guideline
    index folder (default: see ``knowledge.index``); ``out_dir``: where key frames are written
    when a call names no folder (default: under the system temp). Nothing loads until first use.
    """
    from tools.classify import ClassifyUltrasoundVideoTool
    from tools.guidelines import SearchGuidelinesTool
    from tools.key_frames import RetrieveKeyFramesTool

    return [
        ClassifyUltrasoundVideoTool(checkpoint=checkpoint),
        RetrieveKeyFramesTool(checkpoint=checkpoint, out_dir=out_dir),
        SearchGuidelinesTool(index_dir=index_dir),
    ]
