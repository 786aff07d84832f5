"""The ``autous`` command line: one root parser, subcommands registered by each package.

Each package's ``register(subparsers)`` only declares arguments; handlers import
their heavy modules (torch, chromadb, langgraph) when they run, so ``autous --help``
starts fast. A handler returns an exit status. Errors meant for the user are raised
as :class:`models.errors.UserError` and printed as one line, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from models.errors import UserError

# Offline by design: nothing may reach a model hub or send telemetry at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

_REGISTRARS = ("models.cli", "models.data_cli", "tools.cli", "agent.commands", "agent.chat_cli", "benchmarks.cli")


def build_parser() -> argparse.ArgumentParser:
    """The root parser with every package's subcommands."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="autous",
        description="Auto-US: ultrasound-video classification (CTU-Net) and guideline-grounded "
        "diagnostic reports. An assistant for clinicians and researchers; it does not diagnose.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _REGISTRARS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``autous`` console script."""
    args = build_parser().parse_args(argv)
    try:
        status = args.handler(args)
    except UserError as exc:
        print(f"autous: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autous: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
