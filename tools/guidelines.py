"""``search_guidelines``: semantic search over the guideline corpus (Chroma + all-MiniLM-L6-v2)."""
from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

from knowledge.index import MAX_K, get_index
from models.errors import UserError


class SearchGuidelinesInput(BaseModel):
    """Arguments of ``search_guidelines``."""

    query: str = Field(description="What to look up, in plain words, e.g. 'BI-RADS 4B management' or "
                                   "'B-lines and subpleural consolidations in COVID-19'.")
    k: int = Field(default=5, description=f"How many passages to return (1 to {MAX_K}).")
    classes: list[str] | None = Field(
        default=None,
        description="Only passages for any of these diagnostic classes, e.g. ['covid19'] or "
                    "['breast_malignant', 'breast_benign'] (ids: breast_benign, breast_malignant, "
                    "gallbladder_disease, covid19, bacterial_pneumonia, viral_pneumonia, normal).")
    organ: str | None = Field(default=None, description="Only passages about this organ: breast, gallbladder or lung.")


def search_guidelines(query: str, k: int = 5, classes: list[str] | None = None, organ: str | None = None,
                      index_dir: str | None = None) -> dict:
    """Search the guideline index; returns ``{query, passages}`` or ``{"error": ...}`` (never raises)."""
    if not isinstance(query, str) or not query.strip():
        return {"error": "empty query: say what to look up"}
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        return {"error": f"k must be an integer between 1 and {MAX_K}, got {k!r}"}
    if isinstance(classes, str):
        classes = [classes]
    try:
        passages = get_index(index_dir).search(query, k=k, classes=classes or None, organ=organ or None)
    except (ValueError, UserError) as exc:
        return {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 (an agent loop must get data, not a traceback)
        return {"error": f"guideline search failed: {type(exc).__name__}: {exc}"}
    return {"query": query.strip(), "passages": passages}


class SearchGuidelinesTool(BaseTool):
    """LangChain tool over :func:`search_guidelines`; ``index_dir`` picks the index (default: see knowledge.index)."""

    name: str = "search_guidelines"
    description: str = (
        "Search clinical ultrasound guidelines (breast BI-RADS, gallbladder Tokyo Guidelines 2018 and "
        "GB-RADS, polyps, lung ultrasound: BLUE protocol, COVID-19 patterns and LUS score, pneumonia, "
        "normal lung, pleural effusion, limits of AI-assisted classification). Returns passages with a "
        "citation id (cite it as [id]), title, section, source and a relevance score (higher is closer). "
        "Use it to justify a finding, a category or a follow-up recommendation; filter by class ids "
        "or organ when known."
    )
    args_schema: type[BaseModel] = SearchGuidelinesInput
    index_dir: str | None = None

    def __init__(self, index_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(index_dir=None if index_dir is None else str(index_dir), **kwargs)

    def _run(self, query: str, k: int = 5, classes: list[str] | None = None, organ: str | None = None,
             **_: Any) -> dict:
        return search_guidelines(query, k=k, classes=classes, organ=organ, index_dir=self.index_dir)

    async def _arun(self, query: str, k: int = 5, classes: list[str] | None = None, organ: str | None = None,
                    **_: Any) -> dict:
        return await asyncio.to_thread(self._run, query, k, classes, organ)
