"""`memhound run` options for native allocations (docs/native.md).

Kept out of cli.py so that the command's own code stays about running the
program: cli.py calls add_run_arguments() on the run parser and merges
start_arguments() into memhound.start()'s keywords.
"""

from __future__ import annotations

import argparse


def add_run_arguments(run: argparse.ArgumentParser) -> None:
    """Add --native and --native-only to the `run` subcommand."""
    group = run.add_argument_group("native allocations")
    group.add_argument(
        "--native",
        action="store_true",
        help="also trace what C extensions, shared libraries and ctypes "
        "allocate with malloc (domain DOMAIN_NATIVE), attributed to the "
        "Python line that called them",
    )
    group.add_argument(
        "--native-only",
        action="store_true",
        help="trace native allocations only, not Python's own allocators "
        "(cheaper; implies --native)",
    )


def start_arguments(options: argparse.Namespace) -> dict:
    """memhound.start() keywords for the parsed options."""
    if getattr(options, "native_only", False):
        return {"native": True, "python": False}
    if getattr(options, "native", False):
        return {"native": True}
    return {}
