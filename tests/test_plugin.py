"""The app loads the way edx-platform loads plugins: through edx-django-utils and the entry points."""

import sys
import types
import weakref
from datetime import timedelta

import pytest
from celery import Celery
from celery.beat import Scheduler
from django.urls import get_resolver, resolve, reverse
from edx_django_utils.plugins import get_plugin_apps, get_plugin_url_patterns
from edx_django_utils.plugins.plugin_settings import add_plugins
from openedx_events.learning import signals

from badges_bridge import compat
from badges_bridge.apps import RECEIVERS, RETIREMENT_RECEIVERS
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


REDRIVE = "badges_bridge.tasks.redrive"
DRIFT = "badges_bridge.tasks.check_drift"
SAML = {"task": "saml", "schedule": timedelta(hours=24)}


def _apply(module_name: str, settings_type: str, module: types.ModuleType) -> None:
    """Run the plugins' settings of one type on a settings module, as edx-platform's add_plugins call does."""
    sys.modules[module_name] = module
    try:
        add_plugins(module_name, "lms.djangoapp", settings_type)
    finally:
        del sys.modules[module_name]


def platform_schedule(operator: dict | None = None, settings_type: str = "production") -> dict:
    """The CELERYBEAT_SCHEDULE an LMS ends with, with settings applied in the platform's order.

    ``lms.envs.common`` defines the schedule and runs the plugins' common settings before any operator value
    is known; ``lms.envs.production`` starts with ``from .common import *``, then copies the operator's YAML
    into its namespace, then runs the plugins' production settings (``lms.envs.test`` runs the test settings).
    """
    common = types.ModuleType("fake_lms_common")
    common.CELERYBEAT_SCHEDULE = {}
    _apply("fake_lms_common", "common", common)
    final = types.ModuleType("fake_lms_final")
    final.__dict__.update({name: value for name, value in vars(common).items() if not name.startswith("_")})
    for name, value in (operator or {}).items():
        setattr(final, name, value)
    final.CELERYBEAT_SCHEDULE["refresh-saml-metadata"] = SAML  # the platform's own entry, added after the YAML
    _apply("fake_lms_final", settings_type, final)
    return final.CELERYBEAT_SCHEDULE


def test_without_operator_values_both_periodic_tasks_run_at_their_default_period():
    assert platform_schedule() == {
        "refresh-saml-metadata": SAML,
        REDRIVE: {"task": REDRIVE, "schedule": 300.0},
        DRIFT: {"task": DRIFT, "schedule": 86400.0},
    }


def test_operator_intervals_of_zero_remove_the_entries_of_the_common_pass():
    operator = {
        "BADGES_BRIDGE_REDRIVE_INTERVAL_SECONDS": 0,
        "BADGES_BRIDGE_DRIFT_INTERVAL_SECONDS": 0,
        "BADGES_BRIDGE_CELERY_QUEUE": "badges",
    }
    assert platform_schedule(operator) == {"refresh-saml-metadata": SAML}


def test_operator_interval_and_queue_replace_the_entries_of_the_common_pass():
    operator = {"BADGES_BRIDGE_REDRIVE_INTERVAL_SECONDS": 60, "BADGES_BRIDGE_CELERY_QUEUE": "badges"}
    schedule = platform_schedule(operator)
    assert schedule[REDRIVE] == {"task": REDRIVE, "schedule": 60.0, "options": {"queue": "badges"}}
    assert schedule[DRIFT] == {"task": DRIFT, "schedule": 86400.0, "options": {"queue": "badges"}}


def test_the_platforms_test_settings_schedule_no_periodic_task():
    assert set(platform_schedule(settings_type="test")) == {"refresh-saml-metadata"}


@pytest.mark.parametrize("interval", [0, 60])
def test_an_entry_the_operator_wrote_under_the_plugins_name_is_never_touched(interval):
    own = {"task": REDRIVE, "schedule": 120.0, "options": {"queue": "ops", "expires": 100}}
    operator = {"CELERYBEAT_SCHEDULE": {REDRIVE: own}, "BADGES_BRIDGE_REDRIVE_INTERVAL_SECONDS": interval}
    schedule = platform_schedule(operator)
    assert schedule[REDRIVE] == own
    assert schedule[DRIFT] == {"task": DRIFT, "schedule": 86400.0}


def test_a_task_the_operator_scheduled_under_another_name_is_not_scheduled_twice():
    nightly = {"task": DRIFT, "schedule": 3600.0, "args": ()}
    operator = {"CELERYBEAT_SCHEDULE": {"nightly-drift": nightly}}
    schedule = platform_schedule(operator)
    assert schedule == {
        "nightly-drift": nightly,
        "refresh-saml-metadata": SAML,
        REDRIVE: {"task": REDRIVE, "schedule": 300.0},
    }


def test_an_operator_entry_with_another_task_under_the_plugins_name_is_kept():
    other = {"task": "ops.tasks.cleanup", "schedule": 30.0}
    schedule = platform_schedule({"CELERYBEAT_SCHEDULE": {REDRIVE: other}, "BADGES_BRIDGE_CELERY_QUEUE": "q"})
    assert schedule[REDRIVE] == other
    assert schedule[DRIFT] == {"task": DRIFT, "schedule": 86400.0, "options": {"queue": "q"}}


def test_celery_beat_reads_the_plugins_entries():
    app = Celery("beat-check", set_as_current=False)
    app.conf.beat_schedule = platform_schedule({"BADGES_BRIDGE_CELERY_QUEUE": "badges"})
    entries = Scheduler(app).schedule
    assert entries[REDRIVE].task == REDRIVE
    assert entries[REDRIVE].options == {"queue": "badges"}
    assert entries[DRIFT].schedule.run_every == timedelta(days=1)


def test_receivers_connect_through_the_plugin_machinery():
    with plugin_receivers_connected():  # connects through edx-django-utils' connect_plugin_receivers
        for receiver_name, signal_name in RECEIVERS:
            signal = getattr(signals, signal_name)
            refs = [entry[1] for entry in signal.receivers]
            receivers = [ref() if isinstance(ref, weakref.ReferenceType) else ref for ref in refs]
            assert getattr(handlers, receiver_name) in receivers, signal_name
    assert not any(signal.has_listeners() for signal in {getattr(signals, name) for _r, name in RECEIVERS})


def test_retirement_receivers_connect_through_the_plugin_machinery():
    retirement_signals = [getattr(compat, name) for _receiver, name in RETIREMENT_RECEIVERS]
    with plugin_receivers_connected():
        for signal in retirement_signals:
            refs = [entry[1] for entry in signal.receivers]
            receivers = [ref() if isinstance(ref, weakref.ReferenceType) else ref for ref in refs]
            assert handlers.on_user_retired in receivers
    assert not any(signal.has_listeners() for signal in retirement_signals)
    assert {name for _receiver, name in RETIREMENT_RECEIVERS} == {"USER_RETIRE_LMS_MISC", "USER_RETIRE_LMS_CRITICAL"}


def test_lms_urls_are_mounted():
    patterns = get_plugin_url_patterns("lms.djangoapp")
    [mount] = [pattern for pattern in patterns if getattr(pattern, "namespace", "") == "badges_bridge"]
    assert str(mount.pattern) == "^"  # the site's root: the API and the learner page have their own prefixes
    assert reverse("badges_bridge:learner-badges") == "/api/badges_bridge/v1/badges/"
    assert resolve("/api/badges_bridge/v1/badges/").url_name == "learner-badges"
    assert resolve("/api/badges_bridge/webhooks/abc/").url_name == "provider-webhook"
    assert reverse("badges_bridge:learner-page") == "/badges_bridge/my-badges/"
    assert resolve("/api/badges_bridge/v1/schema/").url_name == "learner-api-schema"


def test_studio_urls_are_mounted():
    patterns = get_plugin_url_patterns("cms.djangoapp")
    [mount] = [pattern for pattern in patterns if getattr(pattern, "namespace", "") == "badges_bridge"]
    assert str(mount.pattern) == "^"
    assert mount.urlconf_module.__name__ == "badges_bridge.urls_cms"
    course = "course-v1:OrgX+CS101+2026"
    page = f"/badges_bridge/studio/{course}/"
    assert reverse("badges_bridge:studio-course", args=[course]) == page
    assert resolve(page).url_name == "studio-course"
    assert resolve(f"{page}badges/7/edit/").url_name == "studio-badge-edit"
    assert resolve(f"{page}badges/7/issuances/9/revoke/").kwargs == {
        "course_id": course,
        "badge_id": 7,
        "issuance_id": 9,
    }
    studio = get_resolver("badges_bridge.urls_cms")  # Studio alone: its page and the course staff API
    assert studio.resolve(f"/api/badges_bridge/v1/courses/{course}/badges/").url_name == "staff-badges"
    assert studio.resolve("/api/badges_bridge/v1/schema/staff/").url_name == "staff-api-schema"
    assert studio.resolve(page).url_name == "studio-course"
