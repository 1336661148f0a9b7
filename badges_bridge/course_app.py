"""The Badges app of Studio's Pages & Resources (entry point ``openedx.course_app``).

Its switch turns the course's badges on or off: off stops new issuance in the course and leaves every
badge already issued as it is. Its link leads to the course team's page (urls_cms.py). Outside
edx-platform the class subclasses a local base with the same interface, so this module always imports.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, compat, course_setup
from badges_bridge.apps import STUDIO_URL_PREFIX


class BadgesCourseApp(compat.course_app_base()):
    """Digital badges (Credly, Accredible) for learners who meet the criteria the course team sets."""

    app_id = "badges_bridge"
    name = _("Badges")
    description = _(
        "Award Credly or Accredible badges to learners who pass the course, reach a grade, earn a certificate or "
        "complete a series of courses; preview who qualifies, backfill, approve and award by hand."
    )
    #: Read by newer platforms; the page itself explains every option, so no external link is given.
    documentation_links: dict[str, str] = {}

    @classmethod
    def is_available(cls, course_key: CourseKey) -> bool:
        """Offered to every course of the site."""
        return True

    @classmethod
    def is_enabled(cls, course_key: CourseKey) -> bool:
        """Whether the course's badges are on (a course with no choice recorded has them on)."""
        return api.course_badges_enabled(course_key)

    @classmethod
    def set_enabled(cls, course_key: CourseKey, enabled: bool, user) -> bool:
        """Turn the course's badges on or off, recording who did it; returns the new state."""
        api.set_course_badges_enabled(course_key, enabled, user)
        return api.course_badges_enabled(course_key)

    @classmethod
    def get_allowed_operations(cls, course_key: CourseKey, user=None) -> dict[str, bool]:
        """The course team (Studio write access) may switch the app and configure the badges."""
        allowed = course_setup.can_manage(user, course_key)
        return {"enable": allowed, "configure": allowed}

    @classmethod
    def legacy_link(cls, course_key: CourseKey) -> str:
        """The course team's badges page in Studio."""
        return f"{compat.studio_root_url()}/{STUDIO_URL_PREFIX}{course_key}/"
