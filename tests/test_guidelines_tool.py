"""``search_guidelines`` through LangChain's tool interface: invoke, ainvoke, tool calls, errors as data."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool

from guideline_fixtures import index_dir  # noqa: F401 (shared fixture)
from tools.guidelines import SearchGuidelinesTool, search_guidelines


@pytest.fixture(scope="module")
def tool(index_dir: Path) -> SearchGuidelinesTool:
    return SearchGuidelinesTool(index_dir=str(index_dir))


def test_is_a_langchain_tool_with_a_schema(tool: SearchGuidelinesTool) -> None:
    assert isinstance(tool, BaseTool) and tool.name == "search_guidelines"
    assert set(tool.args) == {"query", "k", "classes", "organ"}
    assert "cite" in tool.description and "BI-RADS" in tool.description


def test_invoke_returns_cited_passages(tool: SearchGuidelinesTool) -> None:
    result = tool.invoke({"query": "BI-RADS 4B biopsy", "k": 3})
    assert result["query"] == "BI-RADS 4B biopsy" and len(result["passages"]) == 3
    top = result["passages"][0]
    assert top["document"] == "breast-birads-assessment" and "ACR BI-RADS Atlas" in top["source"]
    assert top["id"].startswith("breast-birads-assessment#") and top["text"]
    json.dumps(result)


def test_filters_through_the_tool(tool: SearchGuidelinesTool) -> None:
    result = tool.invoke({"query": "consolidation", "k": 4, "classes": ["bacterial_pneumonia"], "organ": "lung"})
    assert result["passages"] and all("bacterial_pneumonia" in p["classes"] for p in result["passages"])


@pytest.mark.parametrize("args,message", [
    ({"query": ""}, "empty query"),
    ({"query": "B-lines", "k": 0}, "k must be"),
    ({"query": "B-lines", "k": 21}, "k must be"),
    ({"query": "B-lines", "classes": ["thyroid_nodule"]}, "unknown class 'thyroid_nodule'; known: breast_benign"),
    ({"query": "B-lines", "organ": "kidney"}, "unknown organ 'kidney'; known: breast, gallbladder, lung"),
])
def test_errors_are_returned_as_data(tool: SearchGuidelinesTool, args: dict, message: str) -> None:
    result = tool.invoke(args)
    assert set(result) == {"error"} and message in result["error"]


def test_ainvoke_matches_invoke(tool: SearchGuidelinesTool) -> None:
    args = {"query": "dynamic air bronchogram", "k": 3}
    assert asyncio.run(tool.ainvoke(args)) == tool.invoke(args)


def test_tool_call_yields_a_tool_message(tool: SearchGuidelinesTool) -> None:
    call = {"type": "tool_call", "id": "call-1", "name": "search_guidelines",
            "args": {"query": "LUS score", "k": 2, "classes": ["covid19"]}}
    message = tool.invoke(call)
    assert isinstance(message, ToolMessage) and message.tool_call_id == "call-1"
    assert "lung-covid19-patterns#" in str(message.content)


def test_function_without_tool_uses_the_given_index(index_dir: Path) -> None:
    result = search_guidelines("Tokyo Guidelines grade II", k=3, index_dir=str(index_dir))
    assert result["passages"][0]["document"] == "gallbladder-tokyo-guidelines-2018"
    assert search_guidelines("x", k=True, index_dir=str(index_dir)) == {
        "error": "k must be an integer between 1 and 20, got True"}
