"""Fixtures for the provider tests: one fake provider per test module, emptied around each test.

A module names the harness of the provider it tests in ``HARNESS_CLASS``; a module that
defines its own ``harness`` fixture (the conformance suite) uses that one instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from badges_bridge.testing.harness import ProviderHarness
from badges_bridge.testing.server import FakeServer


@pytest.fixture(scope="module")
def harness(request: pytest.FixtureRequest) -> Iterator[ProviderHarness]:
    """The module's fake provider (``HARNESS_CLASS``), started once for the module."""
    with request.module.HARNESS_CLASS() as running:
        yield running


@pytest.fixture
def fake(harness: ProviderHarness) -> Iterator[FakeServer]:
    """The fake provider's server, emptied before and after the test."""
    harness.reset()
    yield harness.server
    harness.reset()
