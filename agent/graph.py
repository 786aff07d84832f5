"""The diagnosis graph: intake → classify → key_frames → retrieve → compose → check → done.

``build_graph()`` returns a compiled LangGraph ``StateGraph`` (usable from LangGraph tooling);
``diagnose_case()`` runs it on one case folder and returns the written ``Report``.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph

from agent import nodes
from agent.case import CaseError, load_case
from agent.report import Report
from agent.state import DiagnosisState

TOOL_NAMES = ("classify_ultrasound_video", "retrieve_key_frames", "search_guidelines")


def route_after_intake(state: DiagnosisState) -> Literal["classify", "retrieve", "__end__"]:
    """Stop on a bad case; skip the classifier when the case gives its classification."""
    if "case_id" not in state:
        return END
    return "retrieve" if state.get("classification") else "classify"


def route_after_classify(state: DiagnosisState) -> Literal["key_frames", "retrieve"]:
    """Key frames only make sense when the clip was classified."""
    return "key_frames" if state.get("classification") else "retrieve"


def route_after_check(state: DiagnosisState) -> Literal["done", "compose", "fallback"]:
    return nodes.route_after_check(state)  # type: ignore[return-value]


def resolve_backend(llm: Any) -> Any:
    """"none" → no LLM; ``None`` → ``agent.llm.make_backend()``'s default (``AUTOUS_LLM`` env or none);
    a spec string → ``make_backend(spec)``; a backend object as is. A backend describing itself as
    "none" means no LLM (the rules write the report)."""
    if isinstance(llm, str) and llm.strip().lower() == "none":
        return None
    if llm is None or isinstance(llm, str):
        from agent.llm import make_backend

        llm = make_backend(llm or None)
    return None if (llm.describe() or {}).get("backend") == "none" else llm


def build_graph(tools: Sequence[BaseTool] | None = None, backend: Any = None, checkpointer: Any = None):
    """Compile the diagnosis graph over the three tools (default ``tools.get_tools()``) and an LLM backend.

    ``backend`` is an LLM backend object or spec (None: the no-LLM rules write the report);
    ``checkpointer`` is any LangGraph checkpointer (e.g. SQLite) or None.
    """
    if tools is None:
        from tools import get_tools

        tools = get_tools()
    by_name = {t.name: t for t in tools}
    missing = [n for n in TOOL_NAMES if n not in by_name]
    if missing:
        raise ValueError(f"build_graph needs the tools {', '.join(missing)}")
    backend = resolve_backend(backend)
    g = StateGraph(DiagnosisState)
    guard = nodes.guarded
    g.add_node("intake", guard("intake", nodes.intake, {}))
    g.add_node("classify", guard("classify", nodes.make_classify(by_name["classify_ultrasound_video"]), {"classification": None}))
    g.add_node("key_frames", guard("key_frames", nodes.make_key_frames(by_name["retrieve_key_frames"]), {"key_frames": []}))
    g.add_node("retrieve", guard("retrieve", nodes.make_retrieve(by_name["search_guidelines"]), {"passages": []}))
    g.add_node("compose", guard("compose", nodes.make_compose(backend),
                                {"draft": None, "draft_by": "rules" if backend is None else "llm", "problems": ["compose failed"]}))
    g.add_node("check", guard("check", nodes.check, {"draft": None, "problems": ["check failed"]}))
    g.add_node("fallback", guard("fallback", nodes.fallback, {"draft": None, "draft_by": "rules"}))
    g.add_node("done", nodes.make_done(backend))
    g.add_edge(START, "intake")
    g.add_conditional_edges("intake", route_after_intake)
    g.add_conditional_edges("classify", route_after_classify)
    g.add_edge("key_frames", "retrieve")
    g.add_edge("retrieve", "compose")
    g.add_edge("compose", "check")
    g.add_conditional_edges("check", route_after_check)
    g.add_edge("fallback", "check")
    g.add_edge("done", END)
    return g.compile(checkpointer=checkpointer, name="auto-us-diagnosis")


def run_graph(graph: Any, case_dir: str | Path, out_dir: str | Path,
              on_update: Callable[[str, dict[str, Any]], None] | None = None) -> Report:
    """Stream one case through a compiled graph (``stream_mode="updates"``), calling ``on_update(node, update)``."""
    config = {"configurable": {"thread_id": f"diagnose-{uuid.uuid4().hex}"}}
    inputs: DiagnosisState = {"case_dir": str(case_dir), "out_dir": str(out_dir), "errors": [], "notes": []}
    report: dict[str, Any] | None = None
    intake_error = None
    for chunk in graph.stream(inputs, config, stream_mode="updates"):
        for node, update in chunk.items():
            update = update or {}
            if on_update:
                on_update(node, update)
            if node == "intake" and update.get("errors"):
                intake_error = update["errors"][0]["message"]
            if update.get("report"):
                report = update["report"]
    if intake_error:
        raise CaseError(intake_error)
    if report is None:  # pragma: no cover - the graph always ends in done after intake
        raise RuntimeError(f"{case_dir}: the graph ended without a report")
    return Report.model_validate(report)


def diagnose_case(case_dir: str | Path, out_dir: str | Path | None = None, llm: Any = None,
                  checkpoint: str | Path | None = None, index_dir: str | Path | None = None, *,
                  graph: Any = None, on_update: Callable[[str, dict[str, Any]], None] | None = None) -> Report:
    """Diagnose one case folder and write report.json/.md/.html to ``out_dir`` (default ``runs/<case_id>``).

    ``llm`` is a backend spec ("none", "openai:MODEL", "local:PATH") or a backend object; ``checkpoint`` the
    classifier checkpoint, ``index_dir`` the guideline index; all three are ignored when a compiled ``graph``
    is given. Raises ``CaseError`` for an unusable case; every later failure is recorded in the report's ``errors``.
    """
    loaded = load_case(case_dir)
    out = Path(out_dir) if out_dir is not None else Path("runs") / loaded.id
    if graph is None:
        from tools import get_tools

        graph = build_graph(get_tools(checkpoint=checkpoint, index_dir=index_dir), backend=llm)
    return run_graph(graph, case_dir, out, on_update)
