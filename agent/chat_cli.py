"""Subcommands of this package for the ``autous`` CLI (see agent/cli.py)."""
from __future__ import annotations

import argparse


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add this package's subcommands to the root parser."""
