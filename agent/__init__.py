"""The Auto-US agent: case files, the LangGraph diagnosis graph, reports and the CLI.

    from agent import diagnose_case
    report = diagnose_case("examples/cases/covid19_case", "runs/x")

Importing ``agent`` stays light: ``build_graph`` and ``diagnose_case`` load LangGraph on first use.
"""
from __future__ import annotations

from typing import Any

__all__ = ["build_graph", "diagnose_case"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from agent import graph

        return getattr(graph, name)
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
