"""Shared fixtures: every test starts and ends with tracing off."""

import pytest


@pytest.fixture(autouse=True)
def _tracing_off():
    from memhound import _core

    _core.stop()
    _core._inject_alloc_failures(-1)
    yield
    _core._inject_alloc_failures(-1)
    _core.stop()
