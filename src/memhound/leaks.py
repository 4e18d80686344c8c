"""Leak analysis: generations, checkpoints and the leak report.

    with memhound.LeakCheck() as check:
        for request in requests:
            handle(request)
            check.checkpoint()
    report = check.report()

The tracer stamps every block with the generation it was allocated in; a
checkpoint begins the next generation and records each site's live size.
The verdict (which sites leak, with what confidence, how fast) is computed
in C (`_core.gens_analyze`, src/memhound/_core/leaks.c); this module only
decides when generations begin and shapes the result into the report dict
of docs/report-schema.md.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import time

from memhound import _core, _native_cli, churn

# Generations every explicit checkpoint gets before they are rate-limited
# (an iteration loop may checkpoint millions of times; generation numbers
# are 16-bit and every scan walks the live table).
_FREE_GENERATIONS = 64
# Scans of the live table may cost at most ~1/SCAN_BUDGET of the run: the
# next one waits SCAN_BUDGET times as long as the last one took (here and
# in memhound.runner's clock).
SCAN_BUDGET = 20.0
DEFAULT_MIN_CONFIDENCE = 0.5


def _memhound_work(method):
    """Run method with this thread's tracing suspended: what memhound's own
    bookkeeping allocates (and, on 3.10, the frames of the functions it
    calls) is not the program's and must not show up as its sites."""

    @functools.wraps(method)
    def untraced(*args, **kwargs):
        _core._suspend_thread()
        try:
            return method(*args, **kwargs)
        finally:
            _core._resume_thread()

    return untraced


def _memhound_work_313(method):
    """_memhound_work from CPython 3.13, where a block reused from a free
    list is re-traced at its reuse.  Before 3.13 a block memhound allocated
    untraced and freed into a free list would hide the program's object
    that reuses it, so the per-iteration path stays traced there."""
    return _memhound_work(method) if sys.version_info >= (3, 13) else method


class GenerationPolicy:
    """When to begin a generation and when to scan the live table.

    Explicit checkpoints (iterations, LeakCheck.checkpoint) each begin a
    generation until _FREE_GENERATIONS of them, then at most one per
    1/_FREE_GENERATIONS of the elapsed time, so a run of any length keeps a
    useful number.  A scan is skipped while the last one's cost, times
    SCAN_BUDGET, has not elapsed since."""

    def __init__(self) -> None:
        self.generations = 0
        self.last_generation_t = 0.0
        self.last_scan_t = -1e9
        self.last_scan_cost = 0.0
        self.started = time.monotonic()

    def want_generation(self, forced: bool) -> bool:
        if forced or self.generations < _FREE_GENERATIONS:
            return True
        elapsed = time.monotonic() - self.started
        return elapsed - self.last_generation_t >= elapsed / _FREE_GENERATIONS

    def want_scan(self) -> bool:
        now = time.monotonic() - self.started
        return now - self.last_scan_t >= self.last_scan_cost * SCAN_BUDGET

    def checkpoint(self, iteration: int = -1, forced: bool = False) -> bool:
        """Begin a generation if the policy says so; True when it did."""
        if not self.want_generation(forced):
            return False
        scan = forced or self.want_scan()
        # Positional: a keyword dict freed here would go to the dict free
        # list, and before 3.13 the program's next dict from it would be
        # charged to this line.
        _generation, cost = _core.gens_checkpoint(iteration, scan)
        now = time.monotonic() - self.started
        self.generations += 1
        self.last_generation_t = now
        if scan:
            self.last_scan_t = now
            self.last_scan_cost = cost
        return True


def _series(entries):
    return [
        {"generation": g, "t": round(t, 6), "live_bytes": b, "live_blocks": n}
        for g, t, b, n in entries
    ]


def _survivors(entries):
    return [{"generation": g, "bytes": b, "blocks": n} for g, b, n in entries]


_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _is_runner_frame(frame: dict) -> bool:
    filename = frame["filename"]
    return (
        filename.startswith(_HERE)
        or filename == "<frozen runpy>"
        or filename.endswith(os.sep + "runpy.py")
    )


def _trim_runner(frames: list) -> list:
    """The traceback without memhound's own runner at its outer end
    (`memhound run` calls the program from cli.py, under runpy)."""
    end = len(frames)
    while end > 1 and _is_runner_frame(frames[end - 1]):
        end -= 1
    return frames[:end]


def _shape_site(raw: dict, with_confidence: bool) -> dict:
    """A site from _core.gens_analyze as a LEAK or SITE of the report."""
    per_iteration = raw["growth_bytes_per_iteration"]
    site = {
        "kind": "native" if raw["native"] else "python",
        "live_bytes": raw["live_bytes"],
        "live_blocks": raw["live_blocks"],
        "growth_bytes": raw["growth_bytes"],
        "growth_bytes_per_s": round(raw["growth_bytes_per_s"], 3),
        "growth_bytes_per_iteration": (
            round(per_iteration, 3) if per_iteration >= 0 else None
        ),
        "first_generation": raw["first_generation"],
        "generations_with_survivors": raw["generations_with_survivors"],
        "generations_observed": raw["generations_observed"],
        "traceback": _trim_runner(raw["traceback"]),
        "series": _series(raw["series"]),
        "survivors": _survivors(raw["survivors"]),
        "types": [],
        "retention_path": None,
        "retained_bytes": None,
        # In-process only (the traceback index); write_json drops it.
        "site": raw["site"],
    }
    stack = raw.get("native_stack")  # only with native stacks recorded
    if stack is not None:
        blocks, _bytes, frames = stack
        site["native_frames"] = _native_cli.frame_dicts(frames)
        site["native_frames_blocks"] = blocks
    if with_confidence:
        site = {"confidence": round(raw["confidence"], 4), **site}
    else:
        site["leaking"] = raw["leaking"]
    return site


def _classify_cycles(leaks: list) -> None:
    """Kind `cycle`: with the collector disabled, a leak whose blocks are
    mostly unreachable garbage (found by the heap graph, memhound.heap,
    without collecting).  Uses the heap-graph fields when annotate_report
    filled them, else asks for the garbage by site."""
    if gc.isenabled() or not leaks:
        return
    from memhound import heap

    unreachable = None
    for leak in leaks:
        if leak["kind"] != "python":
            continue
        garbage_bytes = leak.get("unreachable_bytes")
        if garbage_bytes is None:
            if unreachable is None:
                unreachable = heap.unreachable_by_site()
            traceback_index = leak["site"] >> 1  # site = traceback << 1 | native
            garbage_bytes = unreachable.get(traceback_index, (0, 0))[0]
        if garbage_bytes * 2 >= leak["live_bytes"]:
            leak["kind"] = "cycle"


def _annotate_with_heap_graph(report: dict, baseline) -> None:
    """Who holds each leak: types, retention path, retained size
    (memhound.heap, docs/heap.md).  A failure there costs the report
    those fields, never the report."""
    from memhound import heap

    _core._suspend_thread()
    try:
        heap.annotate_report(report, baseline=baseline)
    except Exception as error:  # noqa: BLE001 - the report must survive
        report["warnings"].append(f"heap-graph analysis failed: {error!r}")
    finally:
        _core._resume_thread()


def _clear_interpreter_caches() -> None:
    """Empty the caches of the interpreter and the standard library that
    keep references to objects the program made (as CPython's own leak
    hunter, regrtest -R, does): what they hold is bounded and is not the
    program's leak.  Only modules already imported are touched; clearing
    costs the program nothing but a refill.  The type attribute cache, for
    one, holds the name string of every getattr() until the entry is
    reused, which looks like steady growth in a short run.  What the
    cleaning itself allocates is memhound's, so it is not traced."""
    _core._suspend_thread()
    try:
        _clear_caches(sys.modules)
    finally:
        _core._resume_thread()


def _clear_caches(modules) -> None:
    sys._clear_type_cache()
    cleaners = [
        ("re", "purge"),
        ("linecache", "clearcache"),
        ("urllib.parse", "clear_cache"),
        ("struct", "_clearcache"),
        ("fnmatch", "_compile_pattern.cache_clear"),
        ("filecmp", "clear_cache"),
        ("_strptime", "_regex_cache.clear"),
        ("inspect", "_filesbymodname.clear"),
        ("tokenize", "_compile.cache_clear"),
        ("ipaddress", "_IPAddressBase._ip_int_from_prefix.cache_clear"),
    ]
    for module_name, path in cleaners:
        module = modules.get(module_name)
        if module is None:
            continue
        target = module
        try:
            for part in path.split("."):
                target = getattr(target, part)
            target()
        except Exception:  # a cache that moved in this version: leave it
            pass
    typing = modules.get("typing")
    for cleanup in getattr(typing, "_cleanups", ()) if typing else ():
        try:
            cleanup()
        except Exception:
            pass


def build_report(
    *,
    iteration: int = -1,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    min_generations: int = 3,
    largest: int = 10,
    argv: list | None = None,
    collect: bool = True,
    graph: bool | str = "leaks",
    baseline=None,
) -> dict:
    """Analyse the live blocks against the generations so far and return
    the report dict (docs/report-schema.md).  Runs a full collection first
    when the collector is enabled, so garbage that it would free is not
    taken for a leak, and empties the interpreter's and the standard
    library's caches first (_clear_interpreter_caches).  `graph`: fill the
    heap-graph fields (types, retention_path, retained_bytes, ...) always
    (True), only when there are leaks ("leaks"), or never (False);
    `baseline`, a memhound.heap.Census taken at the start, adds "types
    that grew".  RuntimeError when not tracing."""
    from memhound import __version__

    if collect:
        _clear_interpreter_caches()
        if gc.isenabled():
            churn.collect()
    _core._suspend_thread()  # memhound's own objects are not the program's
    try:
        raw = _core.gens_analyze(
            iteration=iteration,
            min_confidence=min_confidence,
            min_generations=min_generations,
            largest=largest,
        )
    finally:
        _core._resume_thread()
    stats = _core.get_stats()
    leaks = [_shape_site(site, True) for site in raw["leaks"]]
    leaking_sites = {leak["site"] for leak in leaks}
    biggest = [_shape_site(site, False) for site in raw["largest"]]
    for site in biggest:
        site["leaking"] = site["site"] in leaking_sites
    native_frames = [
        f for site in leaks + biggest for f in site.get("native_frames", ())
    ]
    if native_frames:
        _core._suspend_thread()  # addr2line's pipes are memhound's, not the program's
        try:
            _native_cli.add_source_lines(native_frames)
        finally:
            _core._resume_thread()
    generations = raw["generations"]
    iterations = generations[-1]["iteration"] if iteration < 0 else iteration
    warnings = []
    if stats["dropped_blocks"] or stats["lost_tracebacks"]:
        warnings.append(
            f"{stats['dropped_blocks']} blocks were not traced and "
            f"{stats['lost_tracebacks']} tracebacks were lost (memhound ran "
            "out of memory for its tables): totals are lower bounds"
        )
    if stats["sample_mean"]:
        warnings.append(
            "sampling: sizes are estimates, and small leaks need longer runs to be seen"
        )
    if raw["lost_scans"]:
        warnings.append(
            f"{raw['lost_scans']} scans of the live table were dropped (memhound "
            "ran out of memory for them): growth checks rest on fewer points"
        )
    if raw["saturated"]:
        warnings.append(
            "the run outlived memhound's 65535 generations: the last one "
            "covers the rest of the run"
        )
    if len(generations) - 1 < min_generations + 1:
        warnings.append(
            f"only {len(generations) - 1} generations: too few to judge "
            "leaks (run longer, or checkpoint more often)"
        )
    report = {
        "format": "memhound-report",
        "version": 1,
        "memhound": __version__,
        "python": ".".join(map(str, sys.version_info[:3])),
        "argv": list(sys.argv if argv is None else argv),
        "pid": os.getpid(),
        "duration_s": round(raw["elapsed"], 3),
        "settings": {
            "depth": stats["depth"],
            "sample": stats["sample_mean"],
            "min_confidence": min_confidence,
        },
        "generations": [
            {
                "generation": g["generation"],
                "t": round(g["t"], 6),
                "iteration": g["iteration"] if g["iteration"] >= 0 else None,
            }
            for g in generations
        ],
        "leaks": leaks,
        "largest": biggest,
        "timeline": [
            {
                "t": round(g["t"], 6),
                "traced_bytes": g["traced_bytes"],
                "rss_bytes": g["rss_bytes"],
            }
            for g in generations
        ],
        "summary": {
            "traced_bytes": stats["traced_bytes"],
            "traced_blocks": stats["traced_blocks"],
            "peak_bytes": stats["peak_bytes"],
            "dropped_blocks": stats["dropped_blocks"],
            "lost_tracebacks": stats["lost_tracebacks"],
            "sites": raw["sites"],
            "generations": len(generations) - 1,
            "iterations": iterations
            if iterations is not None and iterations >= 0
            else None,
        },
        "children": [],
        "warnings": warnings,
    }
    report["cycle_churn"], report["gc"] = churn.report_fields(raw["elapsed"])
    del raw, generations, biggest  # not the program's: out of the graph
    if graph is True or (graph == "leaks" and leaks):
        _annotate_with_heap_graph(report, baseline)
    _classify_cycles(leaks)
    return report


def checkpoint() -> int:
    """Begin a new generation now (and record every site's live size):
    mark a phase of the program, such as the end of a batch.  Returns the
    new generation's number.  RuntimeError when not tracing."""
    from memhound import runner

    session = runner.current_session()
    iteration = session.iteration_or_unknown() if session is not None else -1
    generation, _cost = _core.gens_checkpoint(iteration)
    return generation


class LeakCheck:
    """Find what leaks in a block of code.

        with memhound.LeakCheck() as check:
            for item in work:
                process(item)
                check.checkpoint()
        print(memhound.report.format_text(check.report()))

    Starts tracing if it was off (and stops it on exit); each checkpoint()
    begins a generation.  report() returns the report dict; inside the
    block it analyses now, after the block it returns the report taken on
    exit (the one report() made inside, when no checkpoint came after it).
    `collect`: run gc.collect() at every checkpoint (slower, but a
    collectable cycle then never looks like survivors).  `graph`: annotate
    the report with the heap graph (who holds each leak) only when it has
    leaks ("leaks", the default), always (True) or never (False: cheaper
    for many short checks).  `native`: when LeakCheck starts tracing, also
    trace native allocations (memhound.start(native=True), docs/native.md),
    so that memory a C extension or a ctypes call leaks is reported with
    kind "native"; it changes nothing when tracing was already on.

    Not available under `memhound run`, whose generations belong to the
    whole run: there, use iterations() or checkpoint()."""

    def __init__(
        self,
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        min_generations: int = 3,
        collect: bool = False,
        depth: int | None = None,
        graph: bool | str = "leaks",
        native: bool = False,
    ) -> None:
        if graph not in (True, False, "leaks"):
            raise ValueError('graph must be True, False or "leaks"')
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError("min_confidence must be in [0, 1]")
        if min_generations < 1:
            raise ValueError("min_generations must be at least 1")
        self.min_confidence = min_confidence
        self.min_generations = min_generations
        self.collect = collect
        self.graph = graph
        self._depth = depth
        self._native = bool(native)
        self._inner_report = None  # report() made inside, still current
        self._started_tracing = False
        self._policy = None
        self._iterations = 0
        self._report = None
        self._active = False

    @_memhound_work
    def __enter__(self) -> LeakCheck:
        import memhound
        from memhound import runner

        if runner.current_session() is not None:
            raise RuntimeError(
                "memhound.LeakCheck can't run under `memhound run`, whose "
                "generations belong to the whole run: use "
                "memhound.iterations() or memhound.checkpoint() there"
            )
        if not _core.is_tracing():
            settings = {"native": self._native}
            if self._depth is not None:
                settings["depth"] = self._depth
            memhound.start(**settings)
            self._started_tracing = True
        if gc.isenabled():
            churn.collect()
        _core.gens_restart(iteration=0)
        self._policy = GenerationPolicy()
        self._iterations = 0
        self._report = None
        self._inner_report = None
        self._active = True
        return self

    @_memhound_work_313
    def checkpoint(self, *, force: bool = False) -> None:
        """End an iteration: begin the next generation (always, while
        there are few, or with `force`; rate-limited after that).  `force`
        also scans every site's live size, whatever it costs (the pytest
        plugin's rounds do: they are few)."""
        if not self._active:
            raise RuntimeError("LeakCheck.checkpoint() outside its with block")
        self._iterations += 1
        self._inner_report = None
        if self.collect and gc.isenabled():
            churn.collect()
        self._policy.checkpoint(self._iterations, forced=force)

    @property
    def iterations(self) -> int:
        return self._iterations

    @_memhound_work
    def report(self) -> dict:
        """The report dict (docs/report-schema.md)."""
        if self._active:
            self._inner_report = self._analyse()
            return self._inner_report
        if self._report is None:
            raise RuntimeError("LeakCheck.report() before the with block ran")
        return self._report

    def _analyse(self) -> dict:
        return build_report(
            iteration=self._iterations,
            min_confidence=self.min_confidence,
            min_generations=self.min_generations,
            graph=self.graph,
        )

    @_memhound_work
    def __exit__(self, *exc_info) -> None:
        try:
            if self._inner_report is not None:
                self._report = self._inner_report
            elif _core.is_tracing():
                self._report = self._analyse()
        finally:
            self._active = False
            if self._started_tracing:
                _core.stop()
                self._started_tracing = False


class iterations:  # noqa: N801 - used like a builtin: for x in iterations(xs)
    """Iterate over `iterable`, one generation per item, and report leaks
    when the loop ends.

        for request in memhound.iterations(requests):
            handle(request)

    At the end of the loop the report is kept (`.report()`) and, with
    `print_report` (the default), printed to stderr when it found a leak.
    Under `memhound run` the run's own generations are used instead and
    the items only count iterations for the run's report."""

    def __init__(
        self,
        iterable,
        *,
        print_report: bool = True,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    ) -> None:
        self._iterable = iterable
        self._print_report = print_report
        self._min_confidence = min_confidence
        self._report = None
        self.count = 0

    def __iter__(self):
        from memhound import runner

        session = runner.current_session()
        if session is not None:
            for item in self._iterable:
                yield item
                self.count += 1
                session.count_iteration()
            return
        check = LeakCheck(min_confidence=self._min_confidence)
        with check:
            for item in self._iterable:
                yield item
                check.checkpoint()
                self.count += 1
        self._report = check.report()
        if self._print_report and self._report["leaks"]:
            from memhound.report import format_text

            print(
                format_text(self._report, color=sys.stderr.isatty()),
                file=sys.stderr,
            )

    def report(self) -> dict | None:
        """The report of the finished loop (None before it finished)."""
        return self._report


def assert_no_leaks(
    func,
    *args,
    iterations: int = 20,
    min_confidence: float = 0.8,
    **kwargs,
) -> dict:
    """Call func(*args, **kwargs) `iterations` times and raise
    AssertionError naming the leaking sites when memory that func allocates
    survives every call.  Returns the report when nothing leaks."""
    if iterations < 5:
        raise ValueError("assert_no_leaks needs at least 5 iterations")
    check = LeakCheck(min_confidence=min_confidence, collect=True)
    with check:
        for _ in range(iterations):
            func(*args, **kwargs)
            check.checkpoint()
    report = check.report()
    if report["leaks"]:
        from memhound.report import format_text

        raise AssertionError(
            f"{func.__qualname__} leaks:\n" + format_text(report, color=False)
        )
    return report
