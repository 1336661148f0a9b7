"""The app loads the way edx-platform loads plugins: through edx-django-utils and the entry points."""

import sys
import types
import weakref

import pytest
from django.urls import resolve, reverse
from edx_django_utils.plugins import get_plugin_apps, get_plugin_url_patterns
from edx_django_utils.plugins.plugin_settings import add_plugins
from openedx_events.learning import signals

from badges_bridge.apps import RECEIVERS
from badges_bridge.signals import handlers
from badges_bridge.testing.events import plugin_receivers_connected


@pytest.mark.parametrize("project", ["lms.djangoapp", "cms.djangoapp"])
def test_entry_points_register_the_app(project):
    assert "badges_bridge.apps.BadgesBridgeConfig" in get_plugin_apps(project)


@pytest.mark.parametrize("settings_type", ["common", "production", "test"])
def test_plugin_settings_apply(settings_type):
    module = types.ModuleType("fake_platform_settings")
    module.CELERYBEAT_SCHEDULE = {"other": {"task": "x", "schedule": 1.0}}
    sys.modules["fake_platform_settings"] = module
    try:
        add_plugins("fake_platform_settings", "lms.djangoapp", settings_type)
    finally:
        del sys.modules["fake_platform_settings"]
    assert "other" in module.CELERYBEAT_SCHEDULE
    if settings_type == "test":
        assert "badges_bridge.tasks.redrive" not in module.CELERYBEAT_SCHEDULE
    else:
        assert module.CELERYBEAT_SCHEDULE["badges_bridge.tasks.redrive"]["schedule"] == 300.0


def test_receivers_connect_through_the_plugin_machinery():
    with plugin_receivers_connected():  # connects through edx-django-utils' connect_plugin_receivers
        for receiver_name, signal_name in RECEIVERS:
            signal = getattr(signals, signal_name)
            refs = [entry[1] for entry in signal.receivers]
            receivers = [ref() if isinstance(ref, weakref.ReferenceType) else ref for ref in refs]
            assert getattr(handlers, receiver_name) in receivers, signal_name
    assert not any(signal.has_listeners() for signal in {getattr(signals, name) for _r, name in RECEIVERS})


def test_lms_urls_are_mounted():
    patterns = get_plugin_url_patterns("lms.djangoapp")
    [mount] = [pattern for pattern in patterns if getattr(pattern, "namespace", "") == "badges_bridge"]
    assert str(mount.pattern) == "^"  # the site's root: the API and the learner page have their own prefixes
    assert reverse("badges_bridge:learner-badges") == "/api/badges_bridge/v1/badges/"
    assert resolve("/api/badges_bridge/v1/badges/").url_name == "learner-badges"
    assert reverse("badges_bridge:learner-page") == "/badges_bridge/my-badges/"
    assert resolve("/api/badges_bridge/v1/schema/").url_name == "learner-api-schema"
