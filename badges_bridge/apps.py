"""The Django application and its Open edX plugin wiring."""

from __future__ import annotations

from django.apps import AppConfig

LMS = "lms.djangoapp"
CMS = "cms.djangoapp"
_EVENTS = "openedx_events.learning.signals."
_COMPAT = "badges_bridge.compat."

#: (receiver in signals.handlers, openedx-events signal) pairs connected in the LMS.
RECEIVERS = [
    ("on_course_passing_status", "COURSE_PASSING_STATUS_UPDATED"),
    ("on_course_passing_status", "CCX_COURSE_PASSING_STATUS_UPDATED"),
    ("on_grade_summary_changed", "PERSISTENT_GRADE_SUMMARY_CHANGED"),
    ("on_certificate_awarded", "CERTIFICATE_CREATED"),
    ("on_certificate_awarded", "CERTIFICATE_CHANGED"),
    ("on_certificate_revoked", "CERTIFICATE_REVOKED"),
]
#: (receiver, user retirement signal) pairs connected in the LMS; the signals come through compat.py, which
#: gives the platform's own signals inside the LMS and stand-ins elsewhere.
RETIREMENT_RECEIVERS = [
    ("on_user_retired", "USER_RETIRE_LMS_MISC"),
    ("on_user_retired", "USER_RETIRE_LMS_CRITICAL"),
]
#: Where the plugin's APIs live: the learner API and webhooks (LMS), the course staff API (LMS and Studio).
LMS_URL_PREFIX = "api/badges_bridge/"
#: Where the course team's page lives in Studio (see urls_cms.py), followed by the course id.
STUDIO_URL_PREFIX = "badges_bridge/studio/"


class BadgesBridgeConfig(AppConfig):
    """Awards Credly and Accredible badges from Open edX learning events."""

    name = "badges_bridge"
    verbose_name = "Badges bridge"
    default_auto_field = "django.db.models.BigAutoField"

    plugin_app = {
        "url_config": {
            # Mounted at the root: urls.py serves the learner API under api/badges_bridge/ and the learner
            # page under badges_bridge/ (one url_config entry per service is all the machinery allows).
            LMS: {"namespace": "badges_bridge", "regex": r"^", "relative_path": "urls"},
            # Studio: urls_cms.py serves the course team's page under badges_bridge/studio/<course id>/, and the
            # course staff API under api/badges_bridge/v1/.
            CMS: {"namespace": "badges_bridge", "regex": r"^", "relative_path": "urls_cms"},
        },
        "settings_config": {
            project: {kind: {"relative_path": f"settings.{kind}"} for kind in ("common", "production", "test")}
            for project in (LMS, CMS)
        },
        "signals_config": {
            LMS: {
                "relative_path": "signals.handlers",
                "receivers": [
                    {
                        "receiver_func_name": receiver,
                        "signal_path": module + signal,
                        "dispatch_uid": f"badges_bridge.{receiver}.{signal.lower()}",
                    }
                    for module, pairs in ((_EVENTS, RECEIVERS), (_COMPAT, RETIREMENT_RECEIVERS))
                    for receiver, signal in pairs
                ],
            },
        },
    }

    def ready(self) -> None:
        """Connect the cache invalidation receivers and register the system checks."""
        from django.db.models.signals import post_delete, post_save, pre_save

        from badges_bridge import checks, config_cache  # noqa: F401 - checks register themselves
        from badges_bridge.models import BadgeTemplate, CourseBadge, CourseSettings, ProviderAccount

        for model, receiver in (
            (CourseBadge, config_cache.invalidate_for_course_badge),
            (BadgeTemplate, config_cache.invalidate_for_template),
            (ProviderAccount, config_cache.invalidate_for_account),
            (CourseSettings, config_cache.invalidate_for_course_settings),
        ):
            post_save.connect(receiver, sender=model, dispatch_uid=f"badges_bridge.cache.save.{model.__name__}")
            post_delete.connect(receiver, sender=model, dispatch_uid=f"badges_bridge.cache.delete.{model.__name__}")
        pre_save.connect(
            config_cache.invalidate_before_course_badge_change,
            sender=CourseBadge,
            dispatch_uid="badges_bridge.cache.before_save.CourseBadge",
        )
