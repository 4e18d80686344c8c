"""Fixtures for the native tests: the leaky library and extension module,
built once per session (import them into the test module)."""

import os
import sys

import pytest

from .build import build_all


@pytest.fixture(scope="session")
def native_build(tmp_path_factory):
    """(libleaky.so path, directory holding the leakyext module)."""
    try:
        lib, ext = build_all(tmp_path_factory.mktemp("native-build"))
    except RuntimeError as error:
        pytest.skip(str(error))
    return lib, ext.parent


@pytest.fixture
def leakyext(native_build):
    directory = str(native_build[1])
    sys.path.insert(0, directory)
    try:
        import leakyext

        yield leakyext
    finally:
        sys.path.remove(directory)


def under_asan() -> bool:
    return "libasan" in os.environ.get("LD_PRELOAD", "")
