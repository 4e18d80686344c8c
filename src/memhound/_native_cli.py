"""`memhound run` options for native allocations, and native frames in
reports (docs/native.md).

Kept out of cli.py so that the command's own code stays about running the
program: cli.py calls add_run_arguments() on the run parser and merges
start_arguments() into memhound.start()'s keywords.  frame_dicts() and
add_source_lines() shape the native frames of memhound.native_stacks()
and of leak entries ("native_frames").
"""

from __future__ import annotations

import os

# memhound itself imports this module: typing (which imports re) and
# argparse stay out of `import memhound`.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

# addr2line gets this long for all the libraries of one report.
_ADDR2LINE_TIMEOUT_S = 10.0


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


def frame_dicts(frames) -> list[dict]:
    """Report frames (docs/report-schema.md, FRAME with "native": True) for
    _core's native frames, tuples (library, function, offset, pc)
    innermost first; library or function None when dladdr did not say."""
    return [
        {
            "filename": library or "??",
            "lineno": 0,
            "function": function or "??",
            "native": True,
            "library": library or "??",
            "offset": offset,
        }
        for library, function, offset, _pc in frames
    ]


def add_source_lines(frames: list[dict]) -> None:
    """Fill filename/lineno (and function, when the dynamic symbols did not
    name it: static functions) of native frames from the libraries' debug
    information, with binutils' addr2line when it is installed: one call
    per library.  Frames it can't place stay as they are; nothing raises."""
    import shutil
    import subprocess
    import time

    tool = shutil.which("addr2line")
    if tool is None or not frames:
        return
    by_library: dict[str, list[dict]] = {}
    for frame in frames:
        library = frame.get("library", "??")
        if library != "??" and os.path.isabs(library) and frame["offset"] > 0:
            by_library.setdefault(library, []).append(frame)
    deadline = time.monotonic() + _ADDR2LINE_TIMEOUT_S
    for library, group in by_library.items():
        # A return address: the call is the instruction before it.
        offsets = sorted({frame["offset"] - 1 for frame in group})
        try:
            proc = subprocess.run(
                [tool, "-f", "-e", library, *(f"{o:#x}" for o in offsets)],
                capture_output=True,
                text=True,
                errors="replace",
                timeout=max(deadline - time.monotonic(), 0.1),
            )
        except (OSError, subprocess.SubprocessError):
            return
        lines = proc.stdout.splitlines()
        if proc.returncode != 0 or len(lines) != 2 * len(offsets):
            continue
        places = {}
        for k, offset in enumerate(offsets):
            function, where = lines[2 * k], lines[2 * k + 1]
            filename, _, lineno = where.rpartition(":")
            lineno = lineno.split(" ", 1)[0]  # "12 (discriminator 3)"
            places[offset] = (function, filename, lineno)
        for frame in group:
            function, filename, lineno = places[frame["offset"] - 1]
            if frame["function"] == "??" and function not in ("", "??"):
                frame["function"] = function
            if filename not in ("", "??") and lineno.isdigit() and lineno != "0":
                frame["filename"] = filename
                frame["lineno"] = int(lineno)


def allocated_by(site: dict) -> str:
    """The "allocated by" line of a native site with "native_frames" ("" for
    others): the innermost frame, where it is, and how many of the site's
    blocks share the stack."""
    frames = site.get("native_frames") or []
    if not frames:
        return ""
    frame = frames[0]
    library = os.path.basename(str(frame.get("library", "??")))
    text = f"allocated by {frame['function']} ({library}+{frame['offset']:#x})"
    if frame.get("lineno"):
        text += f" at {os.path.basename(str(frame['filename']))}:{frame['lineno']}"
    blocks = site.get("native_frames_blocks")
    if blocks is not None:
        text += f", {blocks:,} of {site['live_blocks']:,} blocks"
    return text
