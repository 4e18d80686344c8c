"""The text report's tracebacks: where they end and what they hide."""

import os

import memhound
from memhound.report import format_text

PACKAGE = os.path.dirname(os.path.abspath(memhound.__file__))
USER = "/srv/app/service.py"


def frame(filename, lineno, function):
    return {"filename": filename, "lineno": lineno, "function": function}


def largest_report(traceback):
    site = {"live_bytes": 4096, "live_blocks": 2, "traceback": traceback}
    return {"summary": {}, "settings": {}, "leaks": [], "largest": [site]}


def test_traceback_ends_at_the_programs_entry_not_memhounds_runner():
    # Under `memhound run` the program runs inside memhound's cli.py, itself
    # under runpy (python -m memhound) or the console script.
    traceback = [
        frame(USER, 12, "handle"),
        frame(USER, 30, "<module>"),
        frame(os.path.join(PACKAGE, "cli.py"), 281, "_run_target"),
        frame(os.path.join(PACKAGE, "cli.py"), 332, "run"),
        frame(os.path.join(PACKAGE, "__main__.py"), 4, "<module>"),
        frame("<frozen runpy>", 88, "_run_code"),
        frame("/usr/lib/python3.11/runpy.py", 198, "_run_module_as_main"),
    ]
    text = format_text(largest_report(traceback))
    assert "service.py:12 in handle" in text
    assert "service.py:30 in <module>" in text
    assert "cli.py" not in text and "runpy" not in text
    assert "more frames" not in text


def test_memhound_frames_inside_the_program_are_kept():
    # Only the outermost run is the runner: a LeakCheck in the program, or
    # an allocation made by memhound's own code, keeps its frames.
    inner = frame(os.path.join(PACKAGE, "leaks.py"), 207, "report")
    text = format_text(largest_report([inner, frame(USER, 40, "main")]))
    assert "leaks.py:207 in report" in text and "service.py:40 in main" in text
    only_runner = [frame(os.path.join(PACKAGE, "cli.py"), 281, "_run_target")]
    assert "cli.py:281 in _run_target" in format_text(largest_report(only_runner))


def leak_held(paths):
    return {
        "kind": "python",
        "confidence": 1.0,
        "growth_bytes_per_s": 100.0,
        "live_bytes": 64000,
        "live_blocks": 1000,
        "growth_bytes": 64000,
        "first_generation": 1,
        "traceback": [frame(USER, 7, "handle")],
        "retention_path": paths[0]["steps"],
        "paths": paths,
    }


def way(holder, objects):
    return {"steps": [{"via": "module global", "object": holder}], "objects": objects}


def test_held_by_says_how_many_objects_the_path_stands_for():
    leak = leak_held([way("app.TABLES[0][1].buf", 990), way("app.i", 10)])
    text = format_text({"summary": {}, "settings": {}, "leaks": [leak]})
    assert (
        "held by: app.TABLES[0][1].buf (990 objects held this way; 1 other way)" in text
    )
    alone = leak_held([way("app.ONE", 1)])
    text = format_text({"summary": {}, "settings": {}, "leaks": [alone]})
    assert "held by: app.ONE\n" in text


def test_long_paths_keep_their_root_and_their_end():
    # Cut in the middle: the module global it starts from and the step that
    # holds the object are what the reader acts on.
    holder = "service.REGISTRY" + ".children[0]" * 40 + ".payload"
    leak = leak_held([way(holder, 1000)])
    retainer = {
        "retained_bytes": 4096,
        "retention_path": [{"via": "", "object": holder}],
    }
    report = {"summary": {}, "settings": {}, "leaks": [leak]}
    report["largest_retainers"] = [retainer]
    lines = format_text(report).splitlines()
    held = [line for line in lines if "held by:" in line]
    assert len(held) == 1
    assert "held by: service.REGISTRY" in held[0] and ".payload (" in held[0]
    assert "..." in held[0] and len(held[0]) < len(holder)
    kept = [line for line in lines if "service.REGISTRY" in line and "held" not in line]
    assert len(kept) == 1 and kept[0].rstrip().endswith(".payload")
