"""Receivers of openedx-events learning signals and of the platform's user retirement signals.

They are thin: drop the event at once when its course has no enabled badge
(this process's snapshot of the configuration, see :mod:`badges_bridge.config_cache`),
otherwise parse the payload and let :func:`badges_bridge.api.record_learner_event`
update the ledger in the sender's transaction (work is queued after commit).
They never raise. An event that cannot be used is logged with its event id and
recorded as a RejectedEvent: an invalid payload for operators only, a valid
event whose processing failed (a database or cache error, say) with what a
replay needs, so that the redrive processes it again.

A payload is only validated when its course has badges: an invalid payload of a
course without badges could not change anything, and is dropped unrecorded.
"""

from __future__ import annotations

import logging
from typing import Any

from badges_bridge import api, config_cache, events
from badges_bridge.conf import get_setting
from badges_bridge.data import LearnerEvent
from badges_bridge.exceptions import InvalidEventError

log = logging.getLogger(__name__)


def _receive(parser: events.Parser, payload: str, signal: Any, kwargs: dict[str, Any]) -> None:
    if not get_setting("ENABLED") or _without_badges(kwargs.get(payload)):
        return
    kwargs = {"signal": signal, **kwargs}
    event = None
    try:
        event = parser(kwargs)
        api.record_learner_event(event)
    except InvalidEventError as err:
        event_id, event_type = events.event_identity(kwargs)
        log.warning("badges_bridge: ignored event %s (%s): %s", event_id, event_type, err)
        _record(kwargs, f"invalid payload: {err}")
    except Exception as err:  # noqa: BLE001 - a receiver must never break the sender
        event_id, event_type = events.event_identity(kwargs)
        log.exception("badges_bridge: could not process event %s (%s)", event_id, event_type)
        _record(kwargs, f"processing error: {type(err).__name__}: {err}", event)


def _without_badges(payload: Any) -> bool:
    """Whether the payload's course certainly has no enabled badge, judged from its course key alone.

    When the course key cannot be read that way, or the snapshot cannot be read, the full path decides.
    """
    try:
        course = events.configured_course(payload)
        return course is not None and not config_cache.course_has_badges(course)
    except Exception:  # noqa: BLE001 - a receiver must never break the sender; the full path decides
        log.exception("badges_bridge: could not read which courses have badges")
        return False


def _record(kwargs: dict[str, Any], reason: str, event: LearnerEvent | None = None) -> None:
    """Record a rejected event in its own savepoint; with the parsed ``event``, for a replay."""
    event_id, event_type = events.event_identity(kwargs)
    try:
        api.record_rejected_event(event_id, event_type, reason, *events.event_subject(kwargs), event=event)
    except Exception:  # noqa: BLE001 - the sender's transaction may be unusable; the log line remains
        log.exception("badges_bridge: could not record rejected event %s", event_id)


def on_course_passing_status(sender: Any = None, signal: Any = None, **kwargs: Any) -> None:
    """COURSE_PASSING_STATUS_UPDATED and CCX_COURSE_PASSING_STATUS_UPDATED."""
    _receive(events.parse_passing_status, "course_passing_status", signal, kwargs)


def on_grade_summary_changed(sender: Any = None, signal: Any = None, **kwargs: Any) -> None:
    """PERSISTENT_GRADE_SUMMARY_CHANGED."""
    _receive(events.parse_grade_summary, "grade", signal, kwargs)


def on_certificate_awarded(sender: Any = None, signal: Any = None, **kwargs: Any) -> None:
    """CERTIFICATE_CREATED and CERTIFICATE_CHANGED."""
    _receive(events.parse_certificate, "certificate", signal, kwargs)


def on_certificate_revoked(sender: Any = None, signal: Any = None, **kwargs: Any) -> None:
    """CERTIFICATE_REVOKED."""
    _receive(events.parse_certificate_revoked, "certificate", signal, kwargs)


def on_user_retired(sender: Any = None, signal: Any = None, **kwargs: Any) -> None:
    """USER_RETIRE_LMS_MISC and USER_RETIRE_LMS_CRITICAL: erase the learner's data, clean up their badges.

    Runs whatever BADGES_BRIDGE_ENABLED says. Never raises: when the erasure fails here,
    it is queued as a task (and logged) so that the retirement step of the platform goes on.
    """
    user = kwargs.get("user")
    user_id = getattr(user, "pk", None)
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        log.warning("badges_bridge: a retirement signal came without a user; ignored")
        return
    try:
        api.retire_learner(user_id)
    except Exception:  # noqa: BLE001 - a receiver must never break the sender
        log.exception("badges_bridge: could not erase a retiring learner's data here; queuing it as a task")
        _queue_retirement(user_id)


def _queue_retirement(user_id: int) -> None:
    from badges_bridge.tasks import retire_learner, send

    send(retire_learner, (user_id,), "the erasure of a retiring learner's data")
