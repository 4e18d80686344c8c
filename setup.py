"""Build the memhound._core extension.

Everything except the version-gated frame reader compiles on every supported
CPython; frames_<major><minor>.c is the one file that knows the interpreter's
frame layout, and a new CPython means one new file there.
"""

import os
import sys

from setuptools import Extension, setup

CORE = "src/memhound/_core"
FRAME_READERS = {
    (3, 10): "frames_310.c",
    (3, 11): "frames_311.c",
    (3, 12): "frames_312.c",
    (3, 13): "frames_313.c",
}

version = sys.version_info[:2]
if version not in FRAME_READERS:
    sys.exit(
        f"memhound supports CPython 3.10 to 3.13; this is {sys.version.split()[0]}"
    )

sources = [
    "module.c",
    "snapshot_type.c",
    "snapshot_from_traces.c",
    "rawmem.c",
    "hooks.c",
    "hooks_native.c",
    "hooks_nursery.c",
    "native.c",
    "nativestack.c",
    "nativestack_binding.c",
    "tracebacks.c",
    "frames_common.c",
    "frames_gc.c",
    "traces.c",
    "snapdata.c",
    "snapshot.c",
    "fnmatch.c",
    "stats.c",
    "bytes.c",
    "crc32c.c",
    "utf8.c",
    "snapfile_encode.c",
    "snapfile_decode.c",
    "snapfile_io.c",
    "capfile.c",
    "gens.c",
    "leaks.c",
    "leaks_binding.c",
    "heap_binding.c",
    "heapgraph_build.c",
    "heapgraph_size.c",
    "heapgraph_sites.c",
    "heapgraph_shapes.c",
    "heapgraph_paths.c",
    "heapgraph_labels.c",
    "heapgraph_dominators.c",
    "heapgraph_census.c",
    "heapgraph_retained.c",
    "gcchurn.c",
    "gcchurn_binding.c",
    "sigrelay.c",
    FRAME_READERS[version],
]

extra_compile_args = [
    "-std=gnu11",
    "-Wall",
    "-Wextra",
    "-Wno-missing-field-initializers",
    # Calls between the core's files go direct, not through the PLT (the
    # native wrappers run on every malloc).  PyInit__core stays exported.
    "-fvisibility=hidden",
]
# MEMHOUND_STRICT=1 (the Makefile and CI set it) turns warnings into errors;
# a user's newer compiler must not break their pip install.
if os.environ.get("MEMHOUND_STRICT") == "1":
    extra_compile_args.append("-Werror")
extra_compile_args += os.environ.get("MEMHOUND_CFLAGS", "").split()
extra_link_args = os.environ.get("MEMHOUND_LDFLAGS", "").split()

setup(
    ext_modules=[
        Extension(
            "memhound._core",
            sources=[f"{CORE}/{name}" for name in sources],
            include_dirs=[CORE],
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
            libraries=["m", "dl"],
        )
    ]
)
