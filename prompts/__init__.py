"""Prompt texts, kept as Markdown files beside this module."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def load_prompt(name: str) -> str:
    """The text of ``prompts/<name>.md``; ``KeyError`` naming the known prompts when absent."""
    path = _DIR / f"{name}.md"
    if not path.is_file() or path.parent != _DIR:
        known = ", ".join(sorted(p.stem for p in _DIR.glob("*.md")))
        raise KeyError(f"unknown prompt {name!r}; known: {known}")
    return path.read_text(encoding="utf-8")
