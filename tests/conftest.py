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
