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
    from openedx_events.learning import signals

    from badges_bridge.apps import RECEIVERS
    from badges_bridge.signals import handlers

    connected = []
    for receiver_name, signal_name in RECEIVERS:
        signal = getattr(signals, signal_name)
        uid = f"badges_bridge.{receiver_name}.{signal_name.lower()}"
        signal.connect(getattr(handlers, receiver_name), dispatch_uid=uid)
        connected.append((signal, uid))
    yield
    for signal, uid in connected:
        signal.disconnect(dispatch_uid=uid)


@pytest.fixture
def learner(django_user_model):
    """A learner with a name and an e-mail address."""
    return django_user_model.objects.create_user(
        username="ada", email="ada@example.com", first_name="Ada", last_name="Lovelace", password="x"
    )
