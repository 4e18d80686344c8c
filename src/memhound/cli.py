"""The memhound command line.

    memhound run [options] script.py [args...]
    memhound run [options] -m package.module [args...]
    memhound run [options] -c CODE [args...]

`run` executes the program exactly as `python` would (sys.argv, __main__,
exit status, uncaught exceptions printed as usual) with memhound tracing,
then prints where the memory that is still alive at exit was allocated.
The report goes to stderr so the program's own output stays clean.
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import sys
import traceback

USAGE_EXAMPLES = """\
examples:
  memhound run app.py --port 8080
  memhound run --depth 128 -m mypackage.worker
  memhound run --sample 65536 --dump exit.mhs service.py
"""


def _size_arg(text: str) -> int:
    """Parse a byte count such as 65536, 64k, 64KiB or 1M."""
    units = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024}
    units.update({"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20})
    units.update({"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30})
    raw = text.strip().lower()
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(number) :]
    try:
        value = int(float(number) * units[unit])
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(
            f"not a byte count: {text!r} (try 65536, 64KiB or 1M)"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the sampling mean must be positive")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memhound",
        description="Find memory leaks in Python programs.",
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from memhound import __version__

    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run a Python program under memhound and report at exit",
        description="Run a program exactly as python would, tracing every "
        "allocation, and report live memory by allocation site at exit.",
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--depth",
        type=int,
        default=None,
        help="frames kept per traceback (default %(default)s: memhound's default)",
    )
    run.add_argument(
        "--sample",
        type=_size_arg,
        default=None,
        metavar="BYTES",
        help="sample allocations, one per BYTES allocated on average "
        "(for long or production runs); default: trace every allocation",
    )
    run.add_argument(
        "--top", type=int, default=10, metavar="N", help="sites to show (default 10)"
    )
    run.add_argument(
        "--dump", metavar="FILE", help="also write the exit snapshot to FILE"
    )
    run.add_argument("--quiet", action="store_true", help="print no report")
    target = run.add_mutually_exclusive_group(required=True)
    target.add_argument("-m", dest="module", metavar="MODULE", help="run a module")
    target.add_argument("-c", dest="code", metavar="CODE", help="run code")
    target.add_argument("script", nargs="?", help="the script to run")
    run.add_argument("args", nargs=argparse.REMAINDER, help="the program's arguments")
    return parser


def _run_target(options) -> int:
    """Run the program as python would; return its exit status."""
    if options.module:
        sys.argv = [options.module, *options.args]
        sys.path.insert(0, os.getcwd())
        runner = lambda: runpy.run_module(  # noqa: E731
            options.module, run_name="__main__", alter_sys=True
        )
    elif options.code is not None:
        sys.argv = ["-c", *options.args]
        sys.path.insert(0, "")
        code = compile(options.code, "<string>", "exec")
        runner = lambda: exec(code, {"__name__": "__main__"})  # noqa: E731
    else:
        script = options.script
        if not os.path.exists(script):
            print(f"memhound: can't open file {script!r}", file=sys.stderr)
            return 2
        sys.argv = [script, *options.args]
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        runner = lambda: runpy.run_path(script, run_name="__main__")  # noqa: E731
    try:
        runner()
    except SystemExit as exit_:
        code = exit_.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        traceback.print_exc()
        return 130
    except BaseException:
        # As python does: the traceback on stderr, status 1.
        traceback.print_exc()
        return 1
    return 0


def _on_sigterm(signum, frame):
    # Turn SIGTERM into SystemExit so that the report is still printed.
    raise SystemExit(128 + signum)


def cmd_run(options) -> int:
    import memhound
    from memhound.report import print_exit_report

    start_args = {}
    if options.depth is not None:
        start_args["depth"] = options.depth
    if options.sample is not None:
        start_args["sample"] = options.sample
    try:
        memhound.start(**start_args)
    except (ValueError, TypeError) as error:
        print(f"memhound: {error}", file=sys.stderr)
        return 2
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    status = _run_target(options)
    snapshot = memhound.take_snapshot()
    stats = memhound.get_stats()
    memhound.stop()
    if options.dump:
        snapshot.dump(options.dump)
    if not options.quiet:
        print_exit_report(snapshot, stats, top=options.top, file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    options = parser.parse_args(argv)
    if options.command == "run":
        return cmd_run(options)
    parser.print_help()
    return 2
