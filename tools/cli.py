"""``autous index build|rebuild|add PATH...|stats``: manage the guideline index (see agent/cli.py)."""
from __future__ import annotations

import argparse
from typing import Any


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``autous index`` and its subcommands to the root parser."""
    index = sub.add_parser("index", help="build, inspect or extend the guideline index (Chroma)",
                           description="Manage the guideline index that search_guidelines searches.")
    actions = index.add_subparsers(dest="index_command", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--index-dir", metavar="DIR", default=None,
                            help="index folder (default: $AUTOUS_INDEX_DIR or ~/.cache/autous/index)")
        return parser

    action("build", "embed new or changed guideline documents, drop deleted ones").set_defaults(
        handler=_build, rebuild=False)
    action("rebuild", "re-embed every document from scratch (keeps user documents)").set_defaults(
        handler=_build, rebuild=True)
    add = action("add", "add your own guidelines (Markdown or plain text; files or folders)")
    add.add_argument("paths", nargs="+", metavar="PATH", help=".md/.txt files or folders holding them")
    add.set_defaults(handler=_add)
    stats = action("stats", "documents, chunks, coverage per organ and class, index location")
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON")
    stats.set_defaults(handler=_stats)
    search = action("search", "search the guidelines as the agent's search_guidelines tool does")
    search.add_argument("query", help="what to look up, e.g. 'BI-RADS 4B management'")
    search.add_argument("-k", type=int, default=5, help="number of passages (1-20, default 5)")
    search.add_argument("--class", dest="classes", action="append", metavar="CLASS",
                        help="only passages for this class id (repeatable)")
    search.add_argument("--organ", help="only passages about this organ (breast, gallbladder, lung)")
    search.add_argument("--json", action="store_true", help="print the tool's JSON result")
    search.set_defaults(handler=_search)


def _index(args: argparse.Namespace) -> Any:
    from knowledge.index import GuidelineIndex

    return GuidelineIndex(args.index_dir)


def _print_report(report: Any, console: Any) -> None:
    for msg in report.messages:
        console.print(f"[yellow]warning:[/] {msg}", highlight=False)
    changed = [("added", report.added), ("updated", report.updated), ("removed", report.removed)]
    for label, slugs in changed:
        if slugs:
            console.print(f"{label}: {', '.join(slugs)}", highlight=False)
    console.print(f"{len(report.unchanged)} unchanged, {report.chunks_embedded} chunks embedded "
                  f"in {report.seconds:.1f} s", highlight=False)


def _build(args: argparse.Namespace) -> int:
    from rich.console import Console

    index = _index(args)
    console = Console()
    _print_report(index.sync(rebuild=args.rebuild), console)
    console.print(f"index: {index.location}", highlight=False)
    return 0


def _add(args: argparse.Namespace) -> int:
    from rich.console import Console

    index = _index(args)
    docs, report = index.add_files(args.paths)
    console = Console()
    for doc in docs:
        console.print(f"added {doc.path} as [bold]{doc.slug}[/] ({doc.title}; source: {doc.source})",
                      highlight=False)
    _print_report(report, console)
    return 0


def _stats(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    stats = _index(args).stats()
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    console = Console()
    console.print(f"index dir: {stats['index_dir']}\nstore: {stats['store']}\n"
                  f"embedding model: {stats['embedding_model']}\n"
                  f"documents: {stats['documents']} ({len(stats['user_documents'])} user), "
                  f"chunks: {stats['chunks']}", highlight=False)
    for key, label in (("per_organ", "organ"), ("per_class", "class")):
        table = Table(label, "documents", title=f"documents per {label}", title_justify="left")
        for name, count in stats[key].items():
            table.add_row(name, str(count))
        console.print(table)
    table = Table("id", "chunks", "title", title="documents", title_justify="left")
    for slug, doc in stats["by_document"].items():
        table.add_row(slug, str(doc["chunks"]), doc["title"])
    console.print(table)
    return 0


def _search(args: argparse.Namespace) -> int:
    import json
    import time

    from rich.console import Console
    from rich.markup import escape

    from knowledge.embeddings import get_model
    from knowledge.index import get_index
    from models.errors import UserError
    from tools.guidelines import search_guidelines

    index = get_index(args.index_dir)
    index.ensure()  # first use builds the index and
    get_model()  # loads the embedding model: neither is part of the query time
    start = time.perf_counter()
    result = search_guidelines(args.query, k=args.k, classes=args.classes, organ=args.organ,
                               index_dir=args.index_dir)
    elapsed = time.perf_counter() - start
    if "error" in result:
        raise UserError(f"{index.index_dir}: {result['error']}")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    console = Console()
    for passage in result["passages"]:
        head = escape(f"[{passage['id']}]")
        console.print(f"[bold]{head}[/] score {passage['score']:.3f}  "
                      + escape(f"{passage['title']} > {passage['section']}\n  source: {passage['source']}\n"
                               f"  {passage['text'][:300]}...\n"), highlight=False)
    console.print(f"{len(result['passages'])} passages in {elapsed * 1000:.0f} ms", highlight=False)
    return 0
