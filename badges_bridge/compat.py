"""Every touch point with edx-platform, imported lazily with fallbacks.

The plugin runs inside the LMS and Studio, but its tests and the demo run
without edx-platform; each function here degrades to a sensible default then.

The user retirement signals are module attributes, so that the plugin machinery
can connect receivers to them by dotted path (``badges_bridge.compat.USER_RETIRE_*``):
the platform's own signals inside the LMS, stand-in signals elsewhere (tests send
those).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.dispatch import Signal
from opaque_keys.edx.keys import CourseKey

log = logging.getLogger(__name__)


def _retirement_signal(name: str) -> Signal:
    """The platform's retirement signal ``name``, or a stand-in Signal outside edx-platform."""
    try:
        from openedx.core.djangoapps.user_api.accounts import signals
    except ImportError:
        return Signal()
    return getattr(signals, name, None) or Signal()


#: Sent with ``user=`` by the LMS retirement endpoint ``retire_misc`` (before the critical step).
USER_RETIRE_LMS_MISC = _retirement_signal("USER_RETIRE_LMS_MISC")
#: Sent with ``user=`` by the LMS retirement endpoint ``retire`` (the username and e-mail are still the originals).
USER_RETIRE_LMS_CRITICAL = _retirement_signal("USER_RETIRE_LMS_CRITICAL")


def badge_signal(kind: str):
    """openedx-events' BADGE_AWARDED ("awarded") or BADGE_REVOKED ("revoked"); None when this version lacks it."""
    try:
        from openedx_events.learning import signals
    except ImportError:
        return None
    signal = getattr(signals, f"BADGE_{kind.upper()}", None)
    if signal is None:
        log.info("badges_bridge: this openedx-events version has no BADGE_%s signal", kind.upper())
    return signal


def course_display_name(course_key: CourseKey) -> str:
    """The course title from the platform's CourseOverview, or the course key."""
    try:
        from openedx.core.djangoapps.content.course_overviews.models import CourseOverview
    except ImportError:
        return str(course_key)
    try:
        return CourseOverview.get_from_id(course_key).display_name_with_default
    except Exception:  # noqa: BLE001 - any lookup failure falls back to the key
        log.info("badges_bridge: no course overview for %s", course_key)
        return str(course_key)


def course_about_url(course_key: CourseKey | str) -> str:
    """Public URL of the course in the LMS ('' when LMS_ROOT_URL is not set)."""
    root = getattr(settings, "LMS_ROOT_URL", "")
    return f"{root.rstrip('/')}/courses/{course_key}/about" if root else ""


def learner_full_name(user) -> str:
    """The learner's full name: the Open edX profile name, else the Django user's name."""
    profile = getattr(user, "profile", None)
    name = getattr(profile, "name", "") if profile is not None else ""
    return (name or user.get_full_name() or "").strip()
