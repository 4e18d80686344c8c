"""The memhound command line.

    memhound run [options] script.py [args...]
    memhound run [options] -m package.module [args...]
    memhound run [options] -c CODE [args...]

`run` executes the program exactly as `python` would (sys.argv, __main__,
exit status, uncaught exceptions printed as usual) with memhound tracing
and generations on a clock (memhound.runner), then prints the leak report:
which allocation sites leak, how fast, with their tracebacks, and the
largest live sites.  The report goes to stderr so the program's own output
stays clean.
"""

from __future__ import annotations

import argparse
import builtins
import os
import runpy
import signal
import sys
import traceback
import types

from memhound import _native_cli

USAGE_EXAMPLES = """\
examples:
  memhound run app.py --port 8080
  memhound run --json leaks.json --fail-on-leak -m mypackage.worker
  memhound run --sample 64KiB --interval 5 service.py
  memhound run --follow-fork server.py
  memhound run --output run.mhc --html report.html app.py
  memhound report run.mhc --tree
  memhound diff before.mhs after.mhs --by traceback
"""

# Exit status of `memhound run --fail-on-leak` when a leak was reported.
LEAK_EXIT_STATUS = 3


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


def _interval_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.001 <= value <= 3600:
        raise argparse.ArgumentTypeError("the interval must be in [0.001; 3600] s")
    return value


def _confidence_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a confidence: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("the confidence must be in [0, 1]")
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
        "--interval",
        type=_interval_arg,
        default=None,
        metavar="SECONDS",
        help="begin a generation every SECONDS (default: adaptive, 0.1 s at "
        "first, then about 1/40 of the elapsed time)",
    )
    run.add_argument(
        "--json", metavar="FILE", help="write the report as JSON to FILE ('-': stdout)"
    )
    run.add_argument(
        "--fail-on-leak",
        action="store_true",
        help=f"exit with status {LEAK_EXIT_STATUS} when a leak is reported (for CI)",
    )
    run.add_argument(
        "--min-confidence",
        type=_confidence_arg,
        default=None,
        metavar="C",
        help="report leaks with confidence >= C, in [0, 1] (default 0.5)",
    )
    run.add_argument(
        "--follow-fork",
        action="store_true",
        help="trace child processes made by fork() (pre-fork servers, "
        "multiprocessing) or multiprocessing's spawn, and report their leaks",
    )
    run.add_argument(
        "--no-graph",
        action="store_true",
        help="skip the heap-graph analysis (types, retention paths, retained "
        "sizes) at exit: for huge heaps",
    )
    run.add_argument(
        "--top", type=int, default=10, metavar="N", help="sites to show (default 10)"
    )
    run.add_argument(
        "--dump", metavar="FILE", help="also write the exit snapshot to FILE"
    )
    run.add_argument(
        "--quiet", action="store_true", help="print no report and no status line"
    )
    run.add_argument(
        "--output", metavar="FILE", help="write a capture file (.mhc) at exit"
    )
    run.add_argument("--html", metavar="FILE", help="write the HTML report at exit")
    _native_cli.add_run_arguments(run)
    # The target and its arguments are split off by _split_run_argv before
    # argparse sees them (everything after the target is the program's, as
    # with python); these entries are for --help.
    run.add_argument("-m", dest="module", metavar="MODULE", help="run a module")
    run.add_argument("-c", dest="code", metavar="CODE", help="run code")
    run.add_argument("script", nargs="?", help="the script to run")
    run.add_argument("args", nargs="*", help="the program's arguments")
    # memhound report / memhound diff (cli_report.py).
    from memhound.cli_report import add_parsers

    add_parsers(commands)
    return parser


# memhound run's own options that take a value (as the separate next word).
_RUN_OPTIONS_WITH_VALUE = {
    "--depth",
    "--sample",
    "--top",
    "--dump",
    "--output",
    "--html",
    "--interval",
    "--json",
    "--min-confidence",
}


def _split_run_argv(words):
    """Split `memhound run`'s words into memhound's options and the target:
    (options, kind, target, program_args), kind being "module", "code",
    "script" or None when no target was given."""
    options = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("-m", "-c"):
            if i + 1 >= len(words):
                return options + [word], None, None, []
            kind = "module" if word == "-m" else "code"
            return options, kind, words[i + 1], words[i + 2 :]
        if word == "--":
            i += 1
            break
        if not word.startswith("-") or word == "-":
            break
        options.append(word)
        if word in _RUN_OPTIONS_WITH_VALUE and i + 1 < len(words):
            options.append(words[i + 1])
            i += 1
        i += 1
    if i < len(words):
        return options, "script", words[i], words[i + 1 :]
    return options, None, None, []


def _main_module(**attributes):
    """A fresh __main__ module, installed in sys.modules as python does.

    Its namespace stays alive after the program ends (also when it raised),
    so the exit report sees module-level data as python's own exit would.
    """
    module = types.ModuleType("__main__")
    module.__dict__.update(
        __builtins__=builtins, __cached__=None, __loader__=None, __spec__=None
    )
    module.__dict__.update(attributes)
    sys.modules["__main__"] = module
    return module


def _prepare_target(options):
    """(code object, __main__ module) for the program, as python would run
    it; raises OSError or ImportError when it can't be found."""
    if options.module:
        sys.argv = [options.module, *options.args]
        sys.path.insert(0, os.getcwd())
        # runpy's own lookup, as `python -m` uses it.
        name, spec, code = runpy._get_module_details(options.module)
        sys.argv[0] = spec.origin or options.module
        module = _main_module(
            __file__=spec.origin,
            __spec__=spec,
            __loader__=spec.loader,
            __package__=spec.parent,
        )
        return code, module
    if options.code is not None:
        sys.argv = ["-c", *options.args]
        sys.path.insert(0, "")
        return compile(options.code, "<string>", "exec"), _main_module()
    script = options.script
    with open(script, "rb") as source:
        code = compile(source.read(), script, "exec")
    sys.argv = [script, *options.args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    return code, _main_module(__file__=script)


def _run_target(options) -> tuple[int, object]:
    """Run the program as python would; return its exit status and its
    __main__ module (to keep alive until the report is taken)."""
    from memhound import _core

    _core._suspend_thread()  # finding and compiling the program is memhound's
    try:
        code, module = _prepare_target(options)
    except (OSError, ImportError, SyntaxError) as error:
        target = options.module or options.script or "-c"
        if isinstance(error, SyntaxError):
            traceback.print_exc()
            return 1, None
        print(f"memhound: can't run {target!r}: {error}", file=sys.stderr)
        return 2, None
    finally:
        _core._resume_thread()
    try:
        exec(code, module.__dict__)
    except SystemExit as exit_:
        status = exit_.code
        if status is None:
            return 0, module
        if isinstance(status, int):
            return status, module
        print(status, file=sys.stderr)
        return 1, module
    except KeyboardInterrupt:
        traceback.print_exc()
        return 130, module
    except BaseException:
        # As python does: the traceback on stderr, status 1.
        traceback.print_exc()
        return 1, module
    return 0, module


def cmd_run(options) -> int:
    from memhound.cli_report import RunOutputs  # --output / --html
    from memhound.report import format_text, write_json
    from memhound.runner import Session
    from memhound.runner import on_sigterm as runner_sigterm

    settings = {
        "depth": options.depth,
        "sample": options.sample,
        "interval": options.interval,
        "follow_fork": options.follow_fork,
        "graph": not options.no_graph,
        "status": not options.quiet and _stderr_is_tty(),
    }
    if options.min_confidence is not None:
        settings["min_confidence"] = options.min_confidence
    settings["start_options"] = _native_cli.start_arguments(options)
    session = Session(**settings)
    outputs = RunOutputs.from_options(options)
    try:
        session.start()
    except (ValueError, TypeError) as error:
        print(f"memhound: {error}", file=sys.stderr)
        return 2
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, runner_sigterm)
    if outputs is not None:
        outputs.start()
    status, main_module = _run_target(options)
    # The program is done: from here on the work (and what it allocates)
    # is memhound's.  Frees are still followed.
    from memhound import _core

    _core._suspend_thread()
    argv = list(sys.argv)
    # The exit snapshot comes before the report is built, so that it holds
    # the program's memory, not the report's.
    want_snapshot = options.dump or outputs is not None
    snapshot = _core_snapshot() if want_snapshot else None
    report = session.finish(argv=argv)
    if report is None:  # a forked child that is not followed
        return status
    _native_cli.extend_report(report, options)
    if outputs is not None and outputs.finish(snapshot, report) and status == 0:
        status = 1
    import memhound

    memhound.stop()
    del main_module
    if options.dump:
        snapshot.dump(options.dump)
    if options.json:
        try:
            write_json(report, options.json)
        except OSError as error:
            print(f"memhound: can't write {options.json}: {error}", file=sys.stderr)
            return 2
    if not options.quiet:
        print(
            format_text(report, color=_stderr_is_tty(), top=options.top),
            file=sys.stderr,
        )
        if report.get("native_stacks"):
            print(_native_cli.format_native_stacks(report), file=sys.stderr)
    if options.fail_on_leak and report["leaks"] and status == 0:
        return LEAK_EXIT_STATUS
    return status


def _core_snapshot():
    import memhound

    return memhound.take_snapshot()


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        own, kind, target, program_args = _split_run_argv(argv[1:])
        options = parser.parse_args(["run", *own])
        if kind is None:
            print(
                "usage: memhound run [options] script.py | -m MODULE | -c CODE "
                "[args...]\nmemhound run: error: nothing to run (see "
                "memhound run --help)",
                file=sys.stderr,
            )
            return 2
        options.module = target if kind == "module" else None
        options.code = target if kind == "code" else None
        options.script = target if kind == "script" else None
        options.args = program_args
        return cmd_run(options)
    options = parser.parse_args(argv)
    if options.command in ("report", "diff"):
        from memhound import cli_report

        return getattr(cli_report, f"cmd_{options.command}")(options)
    parser.print_help()
    return 2
