"""get_tools(): the three tools as plain LangChain tools, sync and async, and inside a LangGraph app.

The README snippet (fenced block after ``<!-- snippet: tools-in-langgraph -->``, or
``docs/snippets/tools_in_langgraph.py`` until README carries it) is executed here.
"""
from __future__ import annotations

import asyncio
import json
import re
import runpy
from pathlib import Path

import pytest
from langchain_core.tools import BaseTool
from model_fixtures import make_tiny_checkpoint
from synthetic import synthetic_clip, write_video

from tools import get_tools

NAMES = ["classify_ultrasound_video", "retrieve_key_frames", "search_guidelines"]
MARKER = "<!-- snippet: tools-in-langgraph -->"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    """One guideline index for this module (built on the first search)."""
    return tmp_path_factory.mktemp("index")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("lc") / "clip.mp4", synthetic_clip("b_lines", 16, 64, seed=7))


def test_get_tools_returns_configured_langchain_tools(tmp_path):
    tools = get_tools(checkpoint=tmp_path / "m.pt", index_dir=tmp_path / "idx", out_dir=tmp_path / "kf")
    assert [t.name for t in tools] == NAMES
    for tool in tools:
        assert isinstance(tool, BaseTool) and len(tool.description) > 80
        schema = tool.tool_call_schema.model_json_schema()
        assert schema["required"] and all(p.get("description") for p in schema["properties"].values())
    classify, key_frames, search = tools
    assert classify.checkpoint == key_frames.checkpoint == tmp_path / "m.pt"
    assert key_frames.out_dir == tmp_path / "kf" and search.index_dir == str(tmp_path / "idx")
    assert [t.name for t in get_tools()] == NAMES  # defaults: nothing loads until first use


def test_every_tool_sync_and_async(tmp_path, clip, index_dir):
    ckpt = make_tiny_checkpoint(tmp_path / "tiny.pt", ["covid19", "bacterial_pneumonia", "normal"])
    classify, key_frames, search = get_tools(checkpoint=ckpt, index_dir=index_dir, out_dir=tmp_path / "kf")
    cases = [
        (classify, {"video_path": str(clip)}, "label"),
        (key_frames, {"video_path": str(clip), "k": 2}, "frames"),
        (search, {"query": "B-lines subpleural consolidation COVID", "k": 3}, "passages"),
    ]

    async def run_async() -> list[dict]:
        return list(await asyncio.gather(*(tool.ainvoke(args) for tool, args, _ in cases)))

    sync = [tool.invoke(args) for tool, args, _ in cases]
    for result, (_, _, key) in zip(sync, cases):
        assert "error" not in result and result[key]
    assert asyncio.run(run_async()) == sync
    assert len(sync[1]["frames"]) == 2 and len(sync[2]["passages"]) == 3


def _snippet(repo_root: Path) -> str:
    """The README's tools-in-LangGraph block when README has it, else the snippet file."""
    readme = repo_root / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if MARKER in text:
        block = re.search(r"```python\n(.*?)```", text.split(MARKER, 1)[1], re.S)
        assert block, f"no ```python block after {MARKER} in README.md"
        return block.group(1)
    return (repo_root / "docs" / "snippets" / "tools_in_langgraph.py").read_text(encoding="utf-8")


def test_readme_snippet_runs_the_tools_in_a_langgraph_app(repo_root, tmp_path, index_dir, monkeypatch, capsys):
    write_video(tmp_path / "clip.mp4", synthetic_clip("a_lines", 16, 64, seed=8))
    (tmp_path / "snippet.py").write_text(_snippet(repo_root), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOUS_INDEX_DIR", str(index_dir))
    namespace = runpy.run_path(str(tmp_path / "snippet.py"), run_name="__main__")
    replies = namespace["result"]["messages"][1:]
    assert [m.name for m in replies] == NAMES and all(m.status == "success" for m in replies)
    classified, frames, passages = (json.loads(m.content) for m in replies)
    assert classified["label"] in classified["checkpoint"]["classes"]
    assert len(frames["frames"]) == 4 and Path(frames["contact_sheet"]).is_file()
    assert Path(frames["contact_sheet"]).parent == tmp_path / "key_frames"
    assert len(passages["passages"]) == 2 and all(p["id"] and p["source"] for p in passages["passages"])
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed] == NAMES
