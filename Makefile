# memhound developer entry points.  Every target installs what it needs
# (a venv under .venv*, pip packages from requirements-dev.txt) so that a
# fresh clone needs only CPython, a C compiler and make.
#
#   make demo       build, then run memhound on the bundled leaky example
#   make test       unit + integration tests and the plain-C tests
#   make test-all   the suite on every CPython 3.10-3.13 found under pyenv
#   make sanitize   the suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make conformance  the stdlib's test_tracemalloc against memhound.tracemalloc
#   make fuzz       libFuzzer on the snapshot and capture readers (FUZZ_SECONDS)
#   make bench      the benchmark suite (writes bench/results-*.json)
#   make format / make lint

PYTHON ?= $(shell command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.memhound-installed
CORE := src/memhound/_core
CORE_SRCS := $(wildcard $(CORE)/*.c) $(wildcard $(CORE)/*.h) setup.py pyproject.toml
# Files of the core that do not include Python.h: plain-C tests and the
# fuzzer link against exactly these.
PYFREE_SRCS := $(CORE)/rawmem.c $(CORE)/snapdata.c $(CORE)/traces.c \
	$(CORE)/nativestack.c \
	$(CORE)/fnmatch.c $(CORE)/stats.c $(CORE)/bytes.c $(CORE)/crc32c.c \
	$(CORE)/utf8.c $(CORE)/snapfile_encode.c $(CORE)/snapfile_decode.c \
	$(CORE)/snapfile_io.c $(CORE)/gens.c $(CORE)/leaks.c \
	$(CORE)/heapgraph_dominators.c $(CORE)/capfile.c \
	$(CORE)/gcchurn.c $(CORE)/sigrelay.c
CC ?= cc
C_TEST_CFLAGS := -std=gnu11 -O1 -g -Wall -Wextra -Werror \
	-Wno-missing-field-initializers \
	-fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer -I$(CORE)
PYENV_ROOT ?= $(HOME)/.pyenv
SUPPORTED := 3.10 3.11 3.12 3.13
FUZZ_SECONDS ?= 60
TEST_ENV := PYTHONDEVMODE=1 PYTHONFAULTHANDLER=1
export MEMHOUND_STRICT := 1

.PHONY: all build demo test test-py ctest test-all sanitize conformance fuzz \
	bench format format-check lint clean print-pyfree-srcs

all: build

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) requirements-dev.txt $(CORE_SRCS)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-build-isolation -e .
	touch $(STAMP)

build: $(STAMP)

demo: build
	$(PY) -m memhound run examples/leaky_cache.py

test: ctest test-py

test-py: build
	$(TEST_ENV) $(PY) -m pytest -q tests

ctest:
	@mkdir -p tests/c/bin
	@set -e; for t in tests/c/test_*.c; do \
		[ -e "$$t" ] || continue; \
		bin=tests/c/bin/$$(basename $$t .c); \
		$(CC) $(C_TEST_CFLAGS) -o $$bin $$t $(filter %.c,$(wildcard $(PYFREE_SRCS))) -lm; \
		echo "ctest $$bin"; ./$$bin; \
	done

# One venv per interpreter: .venv-3.10 ... .venv-3.13.
test-all:
	@set -e; found=0; for v in $(SUPPORTED); do \
		py=$$(ls -d $(PYENV_ROOT)/versions/$$v.*/bin/python$$v 2>/dev/null | sort -V | tail -n 1); \
		if [ -z "$$py" ]; then echo "test-all: no CPython $$v under $(PYENV_ROOT)"; continue; fi; \
		found=$$((found + 1)); \
		echo "== CPython $$v ($$py)"; \
		$(MAKE) --no-print-directory test-py PYTHON=$$py VENV=.venv-$$v; \
	done; [ $$found -gt 0 ] || { echo "test-all: no supported CPython found"; exit 1; }

# ASan+UBSan build of the extension; PYTHONMALLOC=malloc so that ASan sees
# every block, the ASan runtime preloaded because python itself is not
# instrumented.  Leak detection is off: CPython keeps memory until exit.
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1 -g
sanitize:
	$(MAKE) --no-print-directory $(VENV)-asan/bin/python PYTHON=$(PYTHON) VENV=$(VENV)-asan
	$(VENV)-asan/bin/python -m pip install -q -r requirements-dev.txt
	# A regular (not editable) install into the venv: the instrumented .so
	# must not land in src/ where the normal builds live, and build/ must
	# not hand it objects compiled without the sanitizers.
	rm -rf build
	MEMHOUND_CFLAGS="$(SAN_FLAGS)" MEMHOUND_LDFLAGS="-fsanitize=address,undefined" \
		$(VENV)-asan/bin/python -m pip install -q --no-build-isolation --force-reinstall --no-deps .
	rm -rf build
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
		ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		PYTHONMALLOC=malloc $(TEST_ENV) MEMHOUND_TEST_INSTALLED=1 \
		$(VENV)-asan/bin/python -m pytest -q -p no:cacheprovider tests

$(VENV)-asan/bin/python:
	$(PYTHON) -m venv $(VENV)-asan
	$(VENV)-asan/bin/python -m pip install -q --upgrade pip

conformance: build
	$(PY) tests/conformance/run_stdlib_tracemalloc.py

# Two targets share FUZZ_SECONDS: the snapshot reader and the capture
# reader get half each.
FUZZ_TARGETS := snapfile capfile
fuzz:
	@command -v clang >/dev/null || { echo "fuzz: needs clang (apt-get install clang libclang-rt-14-dev)"; exit 1; }
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/bin/$$t fuzz/corpus-work/$$t; \
		corpus=fuzz/corpus; [ $$t = snapfile ] || corpus=fuzz/corpus-$$t; \
		echo "clang ... -o fuzz/bin/fuzz_$$t fuzz/fuzz_$$t.c"; \
		clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
			-I$(CORE) -o fuzz/bin/fuzz_$$t fuzz/fuzz_$$t.c $(filter %.c,$(wildcard $(PYFREE_SRCS))) -lm; \
		( cd fuzz/bin/$$t && ../fuzz_$$t -max_total_time=$$(( $(FUZZ_SECONDS) / 2 )) -rss_limit_mb=2048 \
			-max_len=65536 -print_final_stats=1 ../../corpus-work/$$t ../../../$$corpus > fuzz.log 2>&1 ) \
			|| { tail -n 60 fuzz/bin/$$t/fuzz.log; echo "fuzz: $$t failed; log in fuzz/bin/$$t/fuzz.log, crash input in fuzz/bin/$$t/"; exit 1; }; \
		echo "fuzz_$$t:"; grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" fuzz/bin/$$t/fuzz.log || tail -n 5 fuzz/bin/$$t/fuzz.log; \
	done

bench: build
	$(PY) bench/run.py

format: build
	$(VENV)/bin/clang-format -i $(CORE)/*.c $(CORE)/*.h tests/c/*.c tests/c/*.h fuzz/*.c
	$(VENV)/bin/ruff format src tests bench examples
	$(VENV)/bin/ruff check --fix src tests bench examples

format-check: build
	$(VENV)/bin/clang-format --dry-run -Werror $(CORE)/*.c $(CORE)/*.h tests/c/*.c tests/c/*.h fuzz/*.c
	$(VENV)/bin/ruff format --check src tests bench examples

lint: format-check
	$(VENV)/bin/ruff check src tests bench examples

# For hand-built C programs (bench/, fuzz/README.md): the Python-free sources.
print-pyfree-srcs:
	@echo $(filter %.c,$(wildcard $(PYFREE_SRCS)))

clean:
	rm -rf build dist src/*.egg-info tests/c/bin fuzz/bin fuzz/corpus-work
	find src -name '*.so' -delete
