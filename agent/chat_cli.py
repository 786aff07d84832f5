"""``autous chat``: the interactive terminal conversation (see agent/chat.py)."""
from __future__ import annotations

import argparse


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``autous chat`` to the root parser."""
    p = sub.add_parser(
        "chat",
        help="talk about a case with an LLM that can use the tools (slash commands work without one)",
        description="Interactive conversation: /load a case (runs the diagnosis pipeline), ask follow-up "
        "questions (answered by the LLM with the guideline, classifier and key-frame tools), /report, "
        "/frames, /help, /quit. Conversations persist in SQLite; --thread ID resumes one. Input is read "
        "from stdin, so a session can be scripted by piping lines.",
    )
    p.add_argument("case_dir", nargs="?", metavar="CASE_DIR", help="a case folder to load at the start")
    p.add_argument("--llm", metavar="SPEC", default=None,
                   help="none, openai[:MODEL] (AUTOUS_LLM_BASE_URL, AUTOUS_LLM_API_KEY) or local:PATH "
                   "(default: AUTOUS_LLM, else openai when AUTOUS_LLM_BASE_URL is set, else none)")
    p.add_argument("--thread", metavar="ID", default=None, help="resume this conversation (printed at start)")
    p.add_argument("--db", metavar="PATH", default="runs/chat.sqlite",
                   help="SQLite file that keeps the conversations (default: runs/chat.sqlite)")
    p.add_argument("--out", metavar="DIR", default="runs/chat",
                   help="where reports of loaded cases are written (default: runs/chat)")
    p.add_argument("--checkpoint", metavar="PATH", default=None,
                   help="classifier checkpoint for the tools (default: the bundled one)")
    p.add_argument("--index-dir", metavar="DIR", default=None,
                   help="guideline index folder (default: AUTOUS_INDEX_DIR or ~/.cache/autous/index)")
    p.set_defaults(handler=_chat)


def _chat(args: argparse.Namespace) -> int:
    from agent.chat import run_chat

    return run_chat(case_dir=args.case_dir, llm=args.llm, thread_id=args.thread, db_path=args.db,
                    out_dir=args.out, checkpoint=args.checkpoint, index_dir=args.index_dir)
