"""Time and memory of the preview of who already qualifies for a course badge, outside edx-platform.

Run from the repository root::

    python benchmarks/preview.py [--learners 10000,100000]

The script sets Django up with the test settings (SQLite in memory), then, for each
number of learners N, records N learners in a course as the plugin would have (a
"passed" course badge with one ledger row each, nine in ten of them met) and the
progress of each learner in a two-course series, and previews a new course badge of
the course and a new series badge over the two courses: the fallback path, which reads
what the plugin recorded, a chunk of learners at a time. It prints, per preview, the
learners read, those who qualify, the wall time and the tracemalloc peak of the
preview (measured in a second run, as tracemalloc slows Python down). Memory must not
grow with N: the exit status is 1 when the peak at the largest N is more than twice the
peak at the smallest.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
for variable in ("BADGES_BRIDGE_TEST_DB", "BADGES_BRIDGE_TEST_CELERY"):  # always SQLite in memory and locmem
    os.environ.pop(variable, None)

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from opaque_keys.edx.keys import CourseKey  # noqa: E402

from badges_bridge import api  # noqa: E402
from badges_bridge.models import (  # noqa: E402
    BadgeIssuance,
    BadgeTemplate,
    CourseBadge,
    IssuanceState,
    ProviderAccount,
    RevokePolicy,
    SeriesProgress,
)

COURSE = CourseKey.from_string("course-v1:Bench+Preview+2026")
OTHER = CourseKey.from_string("course-v1:Bench+Exam+2026")
HOME = CourseKey.from_string("course-v1:Bench+Programme+2026")
MOMENT = datetime(2026, 6, 1, tzinfo=UTC)
BATCH = 5000
#: Most growth of the preview's memory peak from the smallest to the largest number of learners.
MAX_PEAK_RATIO = 2.0


def _templates() -> list[BadgeTemplate]:
    account = ProviderAccount(
        provider="credly", name="bench", api_base_url="https://credly.example", organization_id="o"
    )
    account.set_token("token")
    account.save()
    return [BadgeTemplate.objects.create(account=account, external_id=f"t{n}", name=f"Template {n}") for n in range(4)]


def _reset() -> None:
    SeriesProgress.objects.all().delete()
    BadgeIssuance.objects.all().delete()
    CourseBadge.objects.all().delete()
    get_user_model().objects.all().delete()


def seed(learners: int, templates: list[BadgeTemplate]) -> tuple[CourseBadge, CourseBadge]:
    """Record ``learners`` learners; returns (a new badge of the course, a new series badge)."""
    _reset()
    recorded = CourseBadge.objects.create(
        course_key=COURSE, template=templates[0], revoke_policy=RevokePolicy.CRITERION_UNMET
    )
    series = [{"course_key": str(key), "criterion": "passed"} for key in (COURSE, OTHER)]
    progress_badge = CourseBadge.objects.create(
        course_key=HOME, template=templates[1], criterion="series", series=series
    )
    user_model = get_user_model()
    for start in range(0, learners, BATCH):
        numbers = range(start, min(start + BATCH, learners))
        users = user_model.objects.bulk_create(
            [user_model(username=f"learner{n}", email=f"learner{n}@example.com", password="!") for n in numbers]
        )
        BadgeIssuance.objects.bulk_create(
            [
                BadgeIssuance(
                    user_id=user.pk,
                    course_badge=recorded,
                    state=IssuanceState.ISSUED if n % 10 else IssuanceState.NOT_MET,
                    state_changed_at=MOMENT,
                    event_time=MOMENT,
                )
                for n, user in zip(numbers, users, strict=True)
            ]
        )
        SeriesProgress.objects.bulk_create(
            [
                SeriesProgress(
                    user_id=user.pk, course_badge=progress_badge, course_key=key, met=bool(n % 3), event_time=MOMENT
                )
                for n, user in zip(numbers, users, strict=True)
                for key in (COURSE, OTHER)
            ]
        )
    new = CourseBadge.objects.create(course_key=COURSE, template=templates[2])
    new_series = CourseBadge.objects.create(course_key=HOME, template=templates[3], criterion="series", series=series)
    return new, new_series


def measure(badge_id: int) -> tuple[api.QualifierPreview, float, int]:
    """(preview, seconds, tracemalloc peak in bytes)."""
    start = time.perf_counter()
    preview = api.preview_course_badge(badge_id)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    api.preview_course_badge(badge_id)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return preview, seconds, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", default="10000,100000", help="numbers of learners, comma separated")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    templates = _templates()
    print(f"{'learners':>9} {'badge':<8} {'read':>8} {'qualify':>8} {'source':<9} {'seconds':>8} {'peak KiB':>9}")
    peaks: dict[str, list[int]] = {"course": [], "series": []}
    for learners in [int(text) for text in args.learners.split(",")]:
        badges = dict(zip(("course", "series"), seed(learners, templates), strict=True))
        for kind, badge in badges.items():
            preview, seconds, peak = measure(badge.pk)
            peaks[kind].append(peak)
            print(
                f"{learners:>9} {kind:<8} {preview.learners_read:>8} {preview.qualify:>8} {preview.source:<9} "
                f"{seconds:>8.2f} {peak / 1024:>9.0f}"
            )
    grew = [kind for kind, values in peaks.items() if len(values) > 1 and values[-1] > MAX_PEAK_RATIO * values[0]]
    if grew:
        print(f"FAIL: the memory peak grew more than {MAX_PEAK_RATIO}x with the learners: {', '.join(grew)}")
        return 1
    print(f"OK: the memory peak grew at most {MAX_PEAK_RATIO}x from the fewest to the most learners")
    return 0


if __name__ == "__main__":
    sys.exit(main())
