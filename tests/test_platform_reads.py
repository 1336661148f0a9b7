"""The preview and backfill reads inside the LMS: enrollments by keyset, grades and certificates per chunk.

edx-platform is not installed here: its three models are stood in for by in-memory tables
that answer the few queryset calls compat.py makes, installed under the platform's module paths.
"""

from __future__ import annotations

import sys
import types
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, compat
from badges_bridge.data import CourseCertificate, CourseGrade, CourseStanding
from badges_bridge.models import BadgeIssuance, Lane
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Platform+2026")
OTHER = CourseKey.from_string("course-v1:Org+Elsewhere+2026")
PASSED_AT = datetime(2026, 4, 1, tzinfo=UTC)


class Table:
    """The rows of one platform model, with the queryset calls compat.py uses; counts the reads."""

    def __init__(self, rows: list[dict], reads: list[str], name: str):
        self.rows, self.reads, self.name = rows, reads, name

    def _match(self, row: dict, key: str, value) -> bool:
        field, _sep, lookup = key.partition("__")
        if lookup == "in":
            return row[field] in value
        if lookup == "gt":
            return row[field] > value
        return row[field] == value

    def filter(self, **conditions) -> Table:
        rows = [row for row in self.rows if all(self._match(row, k, v) for k, v in conditions.items())]
        return Table(rows, self.reads, self.name)

    def order_by(self, field: str) -> Table:
        return Table(sorted(self.rows, key=lambda row: row[field]), self.reads, self.name)

    def values_list(self, *fields: str, flat: bool = False) -> list:
        self.reads.append(self.name)
        return [row[fields[0]] if flat else tuple(row[field] for field in fields) for row in self.rows]


@pytest.fixture
def platform(monkeypatch):
    """Install stand-ins of CourseEnrollment, PersistentCourseGrade and GeneratedCertificate; returns their rows."""
    tables: dict[str, list[dict]] = {"enrollments": [], "grades": [], "certificates": []}
    reads: list[str] = []
    models = {
        "common.djangoapps.student.models": ("CourseEnrollment", "enrollments"),
        "lms.djangoapps.grades.models": ("PersistentCourseGrade", "grades"),
        "lms.djangoapps.certificates.models": ("GeneratedCertificate", "certificates"),
    }
    for path, (model, table) in models.items():
        parts = path.split(".")
        for depth in range(1, len(parts)):
            monkeypatch.setitem(sys.modules, ".".join(parts[:depth]), types.ModuleType(".".join(parts[:depth])))
        module = types.ModuleType(path)
        setattr(module, model, types.SimpleNamespace(objects=Table(tables[table], reads, table)))
        monkeypatch.setitem(sys.modules, path, module)
    tables["reads"] = reads
    return tables


def enroll(platform, course: CourseKey, *user_ids: int, active: bool = True) -> None:
    platform["enrollments"] += [{"course_id": course, "user_id": u, "is_active": active} for u in user_ids]


def test_enrollments_are_read_by_keyset_a_chunk_at_a_time(platform):
    enroll(platform, COURSE, 5, 1, 3, 9, 7)
    enroll(platform, COURSE, 4, active=False)
    enroll(platform, OTHER, 2)
    assert compat.reads_platform()
    assert list(compat.iter_enrolled_user_ids(COURSE, 2)) == [[1, 3], [5, 7], [9]]
    assert platform["reads"] == ["enrollments"] * 3
    platform["reads"].clear()
    assert list(compat.iter_enrolled_user_ids(COURSE, 5)) == [[1, 3, 5, 7, 9]]
    assert list(compat.iter_enrolled_user_ids(CourseKey.from_string("course-v1:Org+Empty+2026"), 5)) == []


def test_standings_are_read_for_a_chunk_in_two_queries(platform):
    platform["grades"] += [
        {"course_id": COURSE, "user_id": 1, "percent_grade": 0.855, "passed_timestamp": PASSED_AT},
        {"course_id": COURSE, "user_id": 2, "percent_grade": 0.2, "passed_timestamp": None},
        {"course_id": OTHER, "user_id": 3, "percent_grade": 1.0, "passed_timestamp": PASSED_AT},
    ]
    platform["certificates"] += [{"course_id": COURSE, "user_id": 3, "mode": "verified", "status": "downloadable"}]
    standings = compat.course_standings(COURSE, [1, 2, 3, 4])
    assert standings == {
        1: CourseStanding(CourseGrade(Decimal("85.50"), True)),
        2: CourseStanding(CourseGrade(Decimal("20.00"), False)),
        3: CourseStanding(None, CourseCertificate("verified", "downloadable")),
    }
    assert platform["reads"] == ["grades", "certificates"]


@pytest.mark.django_db
def test_preview_and_backfill_read_the_platform(platform, credly, django_user_model):
    users = [django_user_model.objects.create_user(username=f"u{n}", email=f"u{n}@example.com") for n in range(3)]
    ids = [user.pk for user in users]
    enroll(platform, COURSE, *ids)
    platform["grades"] += [
        {"course_id": COURSE, "user_id": ids[0], "percent_grade": 0.9, "passed_timestamp": PASSED_AT},
        {"course_id": COURSE, "user_id": ids[1], "percent_grade": 0.4, "passed_timestamp": None},
    ]
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE)
    preview = api.preview_course_badge(badge.pk)
    assert (preview.source, preview.learners_read, preview.qualify, preview.sample) == ("platform", 3, 1, [ids[0]])
    result = api.backfill_course_badge(str(COURSE), badge_ids=[badge.pk])
    assert (result.learners, result.recorded, result.not_met) == (3, 1, 2)
    assert list(BadgeIssuance.objects.values_list("user_id", "lane")) == [(ids[0], Lane.BACKFILL)]
