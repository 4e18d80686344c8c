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
        "--native-stack",
        action="store_true",
        help="also record the C call stack of each native block and list "
        "the largest native stacks in the report (implies --native)",
    )
    group.add_argument(
        "--native-only",
        action="store_true",
        help="trace native allocations only, not Python's own allocators "
        "(cheaper; implies --native)",
    )


def start_arguments(options: argparse.Namespace) -> dict:
    """memhound.start() keywords for the parsed options."""
    args = {}
    if getattr(options, "native", False):
        args["native"] = True
    if getattr(options, "native_only", False):
        args.update(native=True, python=False)
    if getattr(options, "native_stack", False):
        args.update(native=True, native_stack=True)
    return args


def extend_report(report: dict, options: argparse.Namespace) -> None:
    """With --native-stack, add "native_stacks" (memhound.native_stacks())
    to the report; call while still tracing."""
    import memhound

    if getattr(options, "native_stack", False) and memhound.is_tracing():
        report["native_stacks"] = memhound.native_stacks(getattr(options, "top", 10))


def format_native_stacks(report: dict, frames: int = 8) -> str:
    """The report's native stacks as text ("" when there are none)."""
    groups = report.get("native_stacks") or []
    if not groups:
        return ""
    lines = ["Largest live native allocation stacks:"]
    for number, group in enumerate(groups, 1):
        lines.append(f"#{number} {group['size']:,} B in {group['count']:,} blocks")
        for frame in group["frames"][:frames]:
            lines.append(
                f"     {frame['function']} ({frame['library']}+{frame['offset']:#x})"
            )
        if len(group["frames"]) > frames:
            lines.append(f"     ... {len(group['frames']) - frames} outer frames")
    return "\n".join(lines)
