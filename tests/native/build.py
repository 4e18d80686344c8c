"""Build tests/native's leaky library and extension module with the system
compiler (cc), once per interpreter, into a cache directory.

    python tests/native/build.py DIR   # prints DIR's two paths

Tests import build_all(); subprocess scenarios get the paths as arguments.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _cc() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _compile(args: list[str]) -> None:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr}")


def build_all(directory: Path) -> tuple[Path, Path]:
    """(libleaky.so, leakyext extension) built in directory; RuntimeError
    when there is no compiler or the build fails."""
    cc = _cc()
    if cc is None:
        raise RuntimeError("no C compiler (cc) found")
    directory.mkdir(parents=True, exist_ok=True)
    lib = directory / "libleaky.so"
    ext = directory / ("leakyext" + sysconfig.get_config_var("EXT_SUFFIX"))
    common = ["-shared", "-fPIC", "-O1", "-g", "-Wall"]
    if not lib.exists():
        _compile([cc, *common, "-o", str(lib), str(HERE / "leaky.c"), "-lpthread"])
    if not ext.exists():
        include = sysconfig.get_paths()["include"]
        _compile(
            [cc, *common, f"-I{include}", "-o", str(ext), str(HERE / "leakyext.c")]
        )
    return lib, ext


if __name__ == "__main__":
    for path in build_all(Path(sys.argv[1])):
        print(path)
