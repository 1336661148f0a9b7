"""Cost of the badges_bridge event receivers, per event: time and database queries.

Run from the repository root::

    python benchmarks/handler.py [--events N] [--backgrounds 0,100,1000]

The script sets Django up with the test settings (SQLite in memory, local-memory
cache), creates the tables, connects the plugin's receivers as the Open edX plugin
machinery does, and sends COURSE_PASSING_STATUS_UPDATED with openedx-events'
``send_event`` for:

* a bare receiver that does nothing (the plugin's receivers disconnected): the baseline;
* a course without badges;
* a course with 1 badge, and a course with 20 badges: every event is a first pass
  of a new learner, the costliest case (ledger rows and audit entries are written).

Each scenario runs with N other courses holding badges (0, 100, 1,000 by
default), to show the cost does not depend on them. Only the receiver path is
measured: ``badges_bridge.tasks.enqueue`` is replaced by a counter, so no task runs.
Times are CPU seconds of the benchmark's process, so that other programs on
the machine do not count. The course without badges and the baseline are timed
in alternation, ten rounds each, and the best round of each is kept; every timed
loop runs with the garbage collector off, as ``timeit`` does. Query counts are taken on separate
events, with the configuration cache warm. The exit status is 1 when a target
is missed: for a course without badges, 0 data queries and at most 1.25 times
the time of the bare receiver; for a course with badges, at most 4 data queries.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
for variable in ("BADGES_BRIDGE_TEST_DB", "BADGES_BRIDGE_TEST_CELERY"):  # always SQLite in memory and locmem
    os.environ.pop(variable, None)

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from opaque_keys.edx.keys import CourseKey  # noqa: E402
from openedx_events.learning import signals  # noqa: E402
from openedx_events.learning.data import CourseData, CoursePassingStatusData, UserData, UserPersonalData  # noqa: E402

from badges_bridge import config_cache, tasks  # noqa: E402
from badges_bridge.models import BadgeIssuance, BadgeTemplate, CourseBadge, ProviderAccount  # noqa: E402
from badges_bridge.testing.events import plugin_receivers_connected  # noqa: E402

SIGNAL = signals.COURSE_PASSING_STATUS_UPDATED
#: Statements that only delimit transactions (Django's atomic blocks), reported apart from data queries.
TRANSACTION_STATEMENTS = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", "BEGIN", "COMMIT")
#: Most data queries an event may cost for a course with badges.
MAX_QUERIES_WITH_BADGES = 4
#: Most time an event of a course without badges may take, as a multiple of the bare receiver's.
MAX_RATIO_WITHOUT_BADGES = 1.25
#: Alternating timed rounds of the course without badges and of the bare receiver; the best of each is kept.
ROUNDS = 10
TEMPLATES = 20
#: Events sent before each measurement.
WARM_UP_EVENTS = 50


@dataclass
class Result:
    scenario: str
    background: int | None
    events: int
    per_second: float
    data_queries: float | None = None
    transaction_statements: float | None = None
    target: str = ""
    ok: bool | None = None
    #: Time per event over the bare receiver's (set when the table is printed).
    ratio: float | None = None


# -- set-up ------------------------------------------------------------------------------------------------------


class EnqueueCounter:
    """Stands in for badges_bridge.tasks.enqueue: counts the work instead of queueing it."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, work, countdown=None) -> bool:
        self.calls += 1
        return True


def make_templates() -> list[BadgeTemplate]:
    account = ProviderAccount(provider="credly", name="bench", api_base_url="https://api.example.com/v1/")
    account.organization_id = "bench-org"
    account.set_token("bench-token")
    account.save()
    return BadgeTemplate.objects.bulk_create(
        BadgeTemplate(account=account, external_id=f"template-{index}", name=f"Template {index}")
        for index in range(TEMPLATES)
    )


def add_background_courses(templates: list[BadgeTemplate], start: int, stop: int) -> None:
    """Courses other than the measured ones, each with one badge."""
    CourseBadge.objects.bulk_create(
        CourseBadge(course_key=CourseKey.from_string(f"course-v1:Other+C{index}+2026"), template=templates[index % 20])
        for index in range(start, stop)
    )


def make_learners(count: int) -> list[int]:
    """Learner ids (users exist, as in the LMS)."""
    user_model = get_user_model()
    first = user_model.objects.count()
    user_model.objects.bulk_create(
        user_model(username=f"learner{first + index}", email=f"learner{first + index}@example.com")
        for index in range(count)
    )
    return list(user_model.objects.order_by("-id").values_list("id", flat=True)[:count])[::-1]


def payloads(course_key: CourseKey, user_ids: list[int]) -> list[CoursePassingStatusData]:
    """Passing-status payloads built ahead of the measurement."""
    course = CourseData(course_key=course_key)
    return [
        CoursePassingStatusData(
            is_passing=True,
            course=course,
            user=UserData(
                id=user_id,
                is_active=True,
                pii=UserPersonalData(username=f"u{user_id}", email=f"u{user_id}@example.com", name="A Learner"),
            ),
        )
        for user_id in user_ids
    ]


# -- measurement ---------------------------------------------------------------------------------------------------


def send_all(batch: list[CoursePassingStatusData]) -> float:
    """Send every event, the garbage collector off; return the CPU seconds this process spent."""
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        for data in batch:
            SIGNAL.send_event(course_passing_status=data)
        return time.process_time() - start
    finally:
        gc.enable()


def bare_receiver(sender=None, signal=None, **kwargs):
    """The baseline: a receiver that does nothing."""
    return


def count_queries(batch: list[CoursePassingStatusData]) -> tuple[float, float]:
    """(data queries, transaction statements) per event."""
    with CaptureQueriesContext(connection) as captured:
        send_all(batch)
    statements = [query["sql"].lstrip().upper() for query in captured.captured_queries]
    control = sum(1 for sql in statements if sql.startswith(TRANSACTION_STATEMENTS))
    return (len(statements) - control) / len(batch), control / len(batch)


def measure(
    scenario: str,
    course_key: CourseKey,
    background: int,
    events: int,
    query_events: int,
    max_queries: int,
) -> Result:
    """A course with badges: every timed event is the first pass of a new learner (plugin receivers connected)."""
    warm, timed, counted = (
        make_learners(WARM_UP_EVENTS),
        make_learners(events),
        make_learners(query_events),
    )
    send_all(payloads(course_key, warm))  # fills the configuration caches, warms the code paths
    elapsed = send_all(payloads(course_key, timed))
    data_queries, control = count_queries(payloads(course_key, counted))
    return Result(
        scenario,
        background,
        events,
        events / elapsed,
        data_queries,
        control,
        f"<= {max_queries} queries",
        data_queries <= max_queries,
    )


def measure_without_badges(course_key: CourseKey, background: int, events: int) -> tuple[Result, Result]:
    """The course without badges and the bare receiver, timed in alternation: (plugin result, baseline result).

    The plugin's receivers are connected only for the plugin rounds, the bare receiver only for the others.
    """
    batch = payloads(course_key, list(range(1, events + 1)))
    best_plugin = best_baseline = float("inf")
    for _ in range(ROUNDS):
        with plugin_receivers_connected():
            send_all(batch[:WARM_UP_EVENTS])  # loads this process's snapshot of the courses with badges
            best_plugin = min(best_plugin, send_all(batch))
        SIGNAL.connect(bare_receiver, dispatch_uid="benchmark.bare_receiver")
        try:
            send_all(batch[:WARM_UP_EVENTS])
            best_baseline = min(best_baseline, send_all(batch))
        finally:
            SIGNAL.disconnect(dispatch_uid="benchmark.bare_receiver")
    with plugin_receivers_connected():
        data_queries, control = count_queries(batch[: max(10, min(100, events))])
    baseline = Result("bare no-op receiver (baseline)", background, events, events / best_baseline, target="-")
    plugin = Result(
        "course without badges",
        background,
        events,
        events / best_plugin,
        data_queries,
        control,
        f"0 queries, <= {MAX_RATIO_WITHOUT_BADGES}x",
    )
    plugin.ratio = best_plugin / best_baseline
    plugin.ok = data_queries == 0 and plugin.ratio <= MAX_RATIO_WITHOUT_BADGES
    return plugin, baseline


# -- report --------------------------------------------------------------------------------------------------------


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def print_table(results: list[Result], baselines: dict[int, Result]) -> None:
    """One line per scenario; each is compared with the baseline timed alongside the same number of courses."""
    header = (
        "scenario",
        "other courses",
        "events",
        "events/s",
        "us/event over baseline",
        "x baseline",
        "data queries/event",
        "tx statements/event",
        "target",
        "",
    )
    rows = []
    for result in results:
        baseline = baselines[result.background]
        is_baseline = result is baseline
        overhead = None if is_baseline else (1e6 / result.per_second - 1e6 / baseline.per_second)
        ratio = result.ratio if result.ratio is not None else baseline.per_second / result.per_second
        rows.append(
            (
                result.scenario,
                f"{result.background:,}",
                f"{result.events:,}",
                f"{result.per_second:,.0f}",
                _fmt(overhead, ",.1f"),
                "1.00" if is_baseline else f"{ratio:.2f}",
                _fmt(result.data_queries, ".2f"),
                _fmt(result.transaction_statements, ".2f"),
                result.target,
                "" if result.ok is None else ("ok" if result.ok else "MISSED"),
            )
        )
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * width for width in widths)
    print("  ".join(str(cell).ljust(width) for cell, width in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="timed events per scenario (default 1000)")
    parser.add_argument(
        "--backgrounds",
        default="0,100,1000",
        help="numbers of other courses with badges, comma separated (default 0,100,1000)",
    )
    options = parser.parse_args(argv)
    backgrounds = sorted(int(value) for value in options.backgrounds.split(","))
    events, query_events = options.events, max(10, min(100, options.events))

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    assert connection.vendor == "sqlite", "the benchmark runs on SQLite in memory"
    cache.clear()
    counter = EnqueueCounter()
    tasks.enqueue = counter  # measure the receiver path only: no task is queued or run

    templates = make_templates()
    no_badge = CourseKey.from_string("course-v1:Bench+NoBadge+2026")
    one_badge = CourseKey.from_string("course-v1:Bench+OneBadge+2026")
    many_badges = CourseKey.from_string("course-v1:Bench+TwentyBadges+2026")
    CourseBadge.objects.create(course_key=one_badge, template=templates[0])
    for template in templates:
        CourseBadge.objects.create(course_key=many_badges, template=template)

    results = []
    baselines = {}
    existing = 0
    for background in backgrounds:
        add_background_courses(templates, existing, background)
        existing = max(existing, background)
        cache.clear()  # bulk changes send no signal: start from a cold cache and snapshot, warmed by each scenario
        config_cache.snapshot.forget()
        without, baselines[background] = measure_without_badges(no_badge, background, events)
        results += [baselines[background], without]
        with plugin_receivers_connected():
            results.append(
                measure("course with 1 badge", one_badge, background, events, query_events, MAX_QUERIES_WITH_BADGES)
            )
            results.append(
                measure(
                    "course with 20 badges",
                    many_badges,
                    background,
                    events // 2,
                    query_events,
                    MAX_QUERIES_WITH_BADGES,
                )
            )

    print(
        f"badges_bridge receiver benchmark: SQLite in memory, local-memory cache, "
        f"COURSE_PASSING_STATUS_UPDATED via send_event, Django {django.get_version()}"
    )
    print()
    print_table(results, baselines)
    print()
    print(
        f"{BadgeIssuance.objects.count():,} ledger rows written, {counter.calls:,} tasks that would have been "
        f"queued; 'tx statements' are SAVEPOINT/RELEASE/BEGIN/COMMIT, not counted as data queries."
    )
    print(
        f"Targets: for a course without badges 0 data queries and at most {MAX_RATIO_WITHOUT_BADGES}x the time of "
        f"the bare receiver (best of {ROUNDS} alternating rounds each); for a course with badges at most "
        f"{MAX_QUERIES_WITH_BADGES} data queries, whatever the number of badges in it and in other courses. "
        f"Run time {time.perf_counter() - started:.1f}s."
    )
    missed = [result for result in results if result.ok is False]
    if missed:
        print(f"MISSED: {', '.join(f'{r.scenario} ({r.background} other courses)' for r in missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
