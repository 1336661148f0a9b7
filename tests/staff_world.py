"""A site for the course staff API tests: two courses, their badges, and one user of each role."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone
from opaque_keys.edx.keys import CourseKey
from rest_framework.test import APIClient

from badges_bridge.models import (
    BackfillRun,
    BackfillRunState,
    BadgeIssuance,
    BadgeTemplate,
    CourseBadge,
    IssuanceState,
    StandaloneCourse,
    StandaloneCourseRole,
)
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Staff+2026")
OTHER = CourseKey.from_string("course-v1:Org+Other+2026")
API = "/api/badges_bridge/v1/"
#: Roles of the permission matrix.
ROLES = ("anonymous", "learner", "staff_of_another_course", "course_staff", "global_staff")


@dataclass
class World:
    """The courses' set-up and the users of each role."""

    badge: CourseBadge
    #: A badge of the course without awards (it may be deleted).
    fresh: CourseBadge
    spare: BadgeTemplate
    other_badge: CourseBadge
    issued: BadgeIssuance
    other_issued: BadgeIssuance
    users: dict

    def url(self, path: str, course: CourseKey = COURSE) -> str:
        """The staff API URL of ``path`` for the course (``{badge}``, ``{fresh}`` and ``{issued}`` filled in)."""
        path = path.format(badge=self.badge.pk, fresh=self.fresh.pk, issued=self.issued.pk)
        return f"{API}courses/{course}/{path}"

    def client(self, role: str) -> APIClient:
        """A client signed in (session) as the role's user; anonymous for "anonymous"."""
        client = APIClient()
        if self.users.get(role) is not None:
            client.force_login(self.users[role])
        return client


def build_world(credly, django_user_model) -> World:
    """Two courses of one organisation with a badge each, one issued award each, and a user of each role."""
    for key, name in ((COURSE, "Staff course"), (OTHER, "Other course")):
        StandaloneCourse.objects.create(course_key=key, display_name=name)
    account = make_account(credly)
    badge = make_course_badge(make_template(account, credly, "Course badge"), COURSE)
    fresh = make_course_badge(make_template(account, credly, "Fresh badge"), COURSE, requires_approval=True)
    spare = make_template(account, credly, "Spare")
    other_badge = make_course_badge(make_template(account, credly, "Other badge"), OTHER)
    users = {"anonymous": None}
    users["learner"] = django_user_model.objects.create_user("ada", "ada@example.com", first_name="Ada")
    users["staff_of_another_course"] = django_user_model.objects.create_user("otto", "otto@example.com")
    users["course_staff"] = django_user_model.objects.create_user("carla", "carla@example.com")
    users["global_staff"] = django_user_model.objects.create_user("root", "root@example.com", is_staff=True)
    StandaloneCourseRole.objects.create(user=users["staff_of_another_course"], course_key=OTHER)
    StandaloneCourseRole.objects.create(user=users["course_staff"], course_key=COURSE, role="instructor")
    now = timezone.now()
    issued = BadgeIssuance.objects.create(
        user=users["learner"], course_badge=badge, state=IssuanceState.ISSUED, qualified_at=now, issued_at=now
    )
    other_issued = BadgeIssuance.objects.create(
        user=users["learner"], course_badge=other_badge, state=IssuanceState.ISSUED, qualified_at=now
    )
    BackfillRun.objects.create(course_badge=badge, state=BackfillRunState.DONE, total=0, finished_at=now)
    return World(badge, fresh, spare, other_badge, issued, other_issued, users)
