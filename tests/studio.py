"""A site for the Studio page's tests: courses, a course team, templates, and the form data the page posts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opaque_keys.edx.keys import CourseKey

from badges_bridge.models import BadgeTemplate, StandaloneCourse, StandaloneCourseRole
from badges_bridge.testing.setup import make_account, make_template

COURSE = CourseKey.from_string("course-v1:OrgX+CS101+2026")
OTHER_COURSE = CourseKey.from_string("course-v1:OrgX+CS102+2026")
EXAM = CourseKey.from_string("course-v1:OrgX+CS101-EXAM+2026")
FOREIGN_COURSE = CourseKey.from_string("course-v1:OtherU+BIO1+2026")
#: A badge image (a small SVG), as providers serve them.
IMAGE = (
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 96 96'>"
    "<circle cx='48' cy='48' r='44' fill='%230a3055'/><circle cx='48' cy='48' r='30' fill='%23ffd24c'/></svg>"
)


@dataclass
class StudioSite:
    """Courses, people and templates of a test site without edx-platform."""

    users: dict[str, Any] = field(default_factory=dict)
    templates: dict[str, BadgeTemplate] = field(default_factory=dict)


def studio_site(harness, django_user_model) -> StudioSite:
    """OrgX's courses (and one of OtherU), a learner, staff of another course, the course's staff, global staff.

    Templates: "Data Skills" and "Python Basics" (active), "Old Badge" (archived) of an account open to every
    organisation, and "Biology Star" of an account only OtherU may use.
    """
    for key, name in (
        (COURSE, "Computer Science 101"),
        (OTHER_COURSE, "Computer Science 102"),
        (EXAM, "Computer Science 101: Final Exam"),
        (FOREIGN_COURSE, "Biology 1"),
    ):
        StandaloneCourse.objects.create(course_key=key, display_name=name)
    site = StudioSite()
    make = django_user_model.objects.create_user
    site.users["learner"] = make("learner", "learner@example.com", "pw")
    site.users["other_staff"] = make("other_staff", "other@example.com", "pw")
    site.users["course_staff"] = make("course_staff", "staff@example.com", "pw")
    site.users["global_staff"] = make("global_staff", "global@example.com", "pw", is_staff=True)
    StandaloneCourseRole.objects.create(user=site.users["other_staff"], course_key=OTHER_COURSE)
    StandaloneCourseRole.objects.create(user=site.users["course_staff"], course_key=COURSE, role="instructor")
    main = make_account(harness, name="Credly main")
    other_org = make_account(harness, name="Credly OtherU", allowed_course_orgs="OtherU")
    for name in ("Data Skills", "Python Basics"):
        site.templates[name] = make_template(main, harness, name)
    site.templates["Old Badge"] = make_template(main, harness, "Old Badge", state="archived")
    site.templates["Biology Star"] = make_template(other_org, harness, "Biology Star")
    BadgeTemplate.objects.update(image_url=IMAGE)
    return site


def badge_form(template: BadgeTemplate, series: list[dict[str, str]] | None = None, **fields: Any) -> dict[str, Any]:
    """What the add/edit form posts for a badge of ``template``; ``series`` rows and ``fields`` as typed."""
    rows = series or []
    data: dict[str, Any] = {
        "template": str(template.pk),
        "criterion": "passed",
        "grade_threshold": "",
        "certificate_modes": "",
        "series_quantity": "all",
        "series_required": "",
        "earned_after": "",
        "earned_before": "",
        "revoke_policy": "never",
        "expires_after_days": "",
        "evidence": ["grade", "course", "completion_date"],
        "series-TOTAL_FORMS": str(max(len(rows), 3)),
        "series-INITIAL_FORMS": "0",
        "series-MIN_NUM_FORMS": "0",
        "series-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        data.update({f"series-{index}-{name}": value for name, value in row.items()})
    data.update(fields)
    return data
