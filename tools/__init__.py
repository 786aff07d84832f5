"""The three Auto-US LangChain tools; ``get_tools()`` returns them ready to use.

    from tools import get_tools
    tools = get_tools()  # classify_ultrasound_video, retrieve_key_frames, search_guidelines
"""
from __future__ import annotations

from pathlib import Path

from langchain_core.tools import BaseTool

from tools.classify import ClassifyUltrasoundVideoTool
from tools.guidelines import SearchGuidelinesTool
from tools.key_frames import RetrieveKeyFramesTool

__all__ = ["ClassifyUltrasoundVideoTool", "RetrieveKeyFramesTool", "SearchGuidelinesTool", "get_tools"]


def get_tools(checkpoint: str | Path | None = None, index_dir: str | Path | None = None,
              out_dir: str | Path | None = None) -> list[BaseTool]:
    """``[classify_ultrasound_video, retrieve_key_frames, search_guidelines]``.

    ``checkpoint``: classifier checkpoint (default: the bundled one); ``index_dir``: guideline
    index folder (default: see ``knowledge.index``); ``out_dir``: where key frames are written
    when a call names no folder (default: under the system temp). Nothing loads until first use.
    """
    return [
        ClassifyUltrasoundVideoTool(checkpoint=checkpoint),
        RetrieveKeyFramesTool(checkpoint=checkpoint, out_dir=out_dir),
        SearchGuidelinesTool(index_dir=index_dir),
    ]
