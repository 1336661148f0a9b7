"""Settings applied in every environment (LMS and Studio)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Periodic tasks added to Celery beat's schedule: (task name, interval setting, default seconds).
PERIODIC_TASKS = [
    ("badges_bridge.tasks.redrive", "BADGES_BRIDGE_REDRIVE_INTERVAL_SECONDS", 300),
    ("badges_bridge.tasks.check_drift", "BADGES_BRIDGE_DRIFT_INTERVAL_SECONDS", 86400),
]


class PluginBeatEntry(dict):
    """A Celery beat entry written by this plugin; to Celery it is a plain ``dict``.

    Its type is what tells the plugin's own entries from the operator's: a later settings pass replaces or
    removes entries of this type only, and never touches a plain ``dict`` (see ADR 0008).
    """


def plugin_settings(settings) -> None:
    """Keep the plugin's Celery beat entries in step with the settings known at this pass.

    edx-platform runs this twice: in its common settings, before the operator's values are read, then in
    its production (or test) settings. Every pass drops the entries an earlier pass wrote and writes them
    again from the current values, so the operator's interval and queue win; an interval of 0 leaves no
    entry. An entry the operator wrote (a plain ``dict``) is never changed, and a task the operator already
    schedules, under any name, is not scheduled a second time. Where no beat runs, run
    ``badges_bridge_redrive --check-drift`` from cron instead.
    """
    schedule = {
        name: entry
        for name, entry in (getattr(settings, "CELERYBEAT_SCHEDULE", None) or {}).items()
        if not isinstance(entry, PluginBeatEntry)
    }
    queue = getattr(settings, "BADGES_BRIDGE_CELERY_QUEUE", None)
    for task, setting, default in PERIODIC_TASKS:
        interval = getattr(settings, setting, default)
        if interval and not _scheduled_by_operator(schedule, task):
            schedule[task] = _entry(task, float(interval), queue)
    settings.CELERYBEAT_SCHEDULE = schedule


def _scheduled_by_operator(schedule: dict[str, Any], task: str) -> bool:
    """Whether an operator's entry already runs ``task`` or holds the name the plugin would use."""
    return task in schedule or any(isinstance(e, Mapping) and e.get("task") == task for e in schedule.values())


def _entry(task: str, interval: float, queue: str | None) -> PluginBeatEntry:
    """The plugin's beat entry for ``task``, on ``queue`` when one is set."""
    entry = PluginBeatEntry(task=task, schedule=interval)
    if queue:
        entry["options"] = {"queue": queue}
    return entry
