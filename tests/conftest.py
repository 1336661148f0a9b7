"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest
from django.core.cache import cache

import tests.celery_app  # noqa: F401 - makes the test Celery app the default one


@pytest.fixture(autouse=True)
def _clear_cache():
    """Each test starts with an empty cache (the per-course configuration lives there)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def credly_server():
    """The fake Credly, served once per session."""
    from badges_bridge.testing.fake_credly import CredlyHarness

    harness = CredlyHarness().start()
    yield harness
    harness.stop()


@pytest.fixture
def credly(credly_server):
    """The fake Credly, emptied for this test."""
    credly_server.reset()
    return credly_server


@pytest.fixture
def receivers():
    """Connect the plugin's receivers to the openedx-events signals, as the plugin machinery does."""
    from badges_bridge.testing.events import plugin_receivers_connected

    with plugin_receivers_connected():
        yield


@pytest.fixture
def learner(django_user_model):
    """A learner with a name and an e-mail address."""
    return django_user_model.objects.create_user(
        username="ada", email="ada@example.com", first_name="Ada", last_name="Lovelace", password="x"
    )
