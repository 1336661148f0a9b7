"""Provider limit benchmark: a backfill against a fake provider's rate limit, with learners passing meanwhile.

Run from the repository root (MariaDB and Redis must answer, as for the integration tests)::

    python benchmarks/provider_limit.py [--scenario credly accredible accredible-bulk] [--period 60]

For each scenario the script creates a database of its own, starts the fake provider in a
process of its own with its rate limit on (scaled down: ``--limit`` requests per ``--period``
seconds, counted in 30-second buckets as Accredible does, the fake Credly given the same kind
of limit), gives the provider account the same limit, and starts two ``celery worker``
processes. It then records a backfill of ``--backfill`` learners (``api.backfill_course_badge``,
the feeder issues them) and, while it runs, sends a COURSE_PASSING_STATUS_UPDATED event for a
new learner through the plugin's real receivers, at ``--interactive-share`` of the limit's
request rate (default 5 %, half the reserve the backfill leaves).

It prints, per scenario: the badges per second achieved in the full rate windows of the run
against the limit's theoretical maximum (limit / period x badges per request), the provider
requests per badge, the requests the fake refused (429), and the p50 / p95 time from event to
issued of the interactive learners, and checks that every learner holds exactly one live badge.
The exit status is 1 when the invariant does not hold or the run does not finish in time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load  # noqa: E402 - sets up Django for MariaDB, Redis and worker processes
from django.conf import settings  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.core.signals import setting_changed  # noqa: E402
from django.db import connection  # noqa: E402

from badges_bridge import api  # noqa: E402
from badges_bridge.data import CourseGrade, CourseStanding  # noqa: E402
from badges_bridge.models import BadgeIssuance, IssuanceState, IssuedBadge, Lane  # noqa: E402
from badges_bridge.testing.events import plugin_receivers_connected, send_passing_status  # noqa: E402
from badges_bridge.testing.invariant import exactly_once_problems  # noqa: E402
from badges_bridge.testing.server import FakeResponse  # noqa: E402
from badges_bridge.testing.setup import make_account, make_course_badge, make_template  # noqa: E402
from tests.integration.workers import WorkerProcess  # noqa: E402

COURSE = "course-v1:LimitOrg+Limit101+2026"
#: scenario: (fake provider, bulk creates on)
SCENARIOS = {"credly": ("credly", False), "accredible": ("accredible", False), "accredible-bulk": ("accredible", True)}
BUCKET_SECONDS = 30
BULK_SIZE = 30


class LimitedHost(load.FakeHost):
    """The fake provider with a rate limit of ``limit`` requests per ``period`` s, in wall-clock buckets."""

    def set_rate_limit(self, limit: int, period: int) -> None:
        from badges_bridge.testing.fake_accredible import _RateWindow

        server = self.harness.server
        self.throttled = 0
        window = _RateWindow(limit, period, BUCKET_SECONDS)
        if hasattr(server, "rate_limit"):  # the fake Accredible's own limit, on the same clock as the client's
            server.rate_limit, server.rate_bucket_seconds, server.clock = (limit, period), BUCKET_SECONDS, time.time
            server.v1_search_rate_limit = None
            window = None
        dispatch = server.dispatch

        def limited(request):
            if window is not None:
                with server.lock:
                    admitted = window.admit(time.time())
                if not admitted:
                    self.throttled += 1
                    return FakeResponse(429, {"message": "rate limit reached"})
            response = dispatch(request)
            self.throttled += response.status == 429
            return response

        server.dispatch = limited

    def refused(self) -> int:
        return self.throttled


class LimitManager(load.FakeManager):
    """Serves LimitedHost objects from a separate process."""


LimitManager.register("LimitedHost", LimitedHost)


@dataclass
class Result:
    """The figures of one scenario."""

    scenario: str
    limit: int
    period: int
    per_request: int
    backfill: int
    interactive: list[float] = field(default_factory=list)
    issued_at: list[float] = field(default_factory=list)
    started: float = 0.0
    requests: Counter = field(default_factory=Counter)
    refused: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def theoretical(self) -> float:
        return self.limit / self.period * self.per_request

    def windows(self) -> list[int]:
        """Badges issued in each full window of the run (a window starts on a bucket, as the limit counts)."""
        first = (int(self.started // BUCKET_SECONDS) + 1) * BUCKET_SECONDS
        last = max(self.issued_at, default=first)
        counts = []
        start = first
        while start + self.period <= last:
            counts.append(sum(1 for moment in self.issued_at if start <= moment < start + self.period))
            start += BUCKET_SECONDS
        return counts

    @property
    def achieved(self) -> float:
        windows = self.windows()
        return sum(windows) / len(windows) / self.period if windows else float("nan")

    @property
    def badges(self) -> int:
        return len(self.issued_at)

    def percentile(self, fraction: float) -> float:
        return load.percentile(self.interactive, fraction)


def set_setting(name: str, value) -> None:
    """Change a setting of this process, and tell the plugin (it keeps the values it read)."""
    setattr(settings, name, value)
    setting_changed.send(sender=None, setting=name, value=value, enter=True)


def record_backfill(learners: list) -> float:
    """Record the backfill (every learner passed, as the platform's grades would say); returns its seconds."""
    from badges_bridge import compat

    passed = CourseStanding(CourseGrade(percent=Decimal("80"), passed=True))
    original = compat.course_standings
    compat.course_standings = lambda key, user_ids: dict.fromkeys(user_ids, passed)
    started = time.monotonic()
    try:
        result = api.backfill_course_badge(COURSE, [learner.pk for learner in learners])
    finally:
        compat.course_standings = original
    load.log(result.describe())
    return time.monotonic() - started


def interactive_learners(newcomers: list, every: float, done: threading.Event, sent: dict) -> None:
    """Send a passing event for one newcomer every ``every`` seconds until the backfill is done."""
    from django.db import connections
    from opaque_keys.edx.keys import CourseKey

    key = CourseKey.from_string(COURSE)
    try:
        with plugin_receivers_connected():
            for learner in newcomers:
                if done.wait(every):
                    return
                sent[learner.pk] = time.time()
                send_passing_status(learner, key, True)
    finally:
        connections.close_all()


def wait_until_issued(total_backfill: int, workers: list[WorkerProcess], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    next_line = time.monotonic() + 10
    while True:
        load.check_stop()
        states = Counter(BadgeIssuance.objects.filter(lane=Lane.BACKFILL).values_list("state", flat=True).order_by())
        if states.get(IssuanceState.ISSUED, 0) >= total_backfill:
            return
        for worker in workers:
            worker.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the backfill did not finish within {timeout:.0f}s; rows by state: {dict(states)}")
        if time.monotonic() > next_line:
            load.log(f"backfill rows by state: {dict(states)}")
            next_line = time.monotonic() + 10
        time.sleep(1)


def run(scenario: str, args, log_dir: Path, manager: LimitManager) -> Result:
    provider, bulk = SCENARIOS[scenario]
    per_request = BULK_SIZE if bulk else 1
    result = Result(scenario, args.limit_bulk if bulk else args.limit, args.period, per_request, args.backfill)
    if bulk and args.backfill_bulk:
        result.backfill = args.backfill_bulk
    original_database = connection.settings_dict["NAME"]
    database = load.create_database(f"{args.database}_{scenario.replace('-', '_')}")
    queue = f"badges-bridge-limit-{os.getpid()}-{scenario}"
    set_setting("BADGES_BRIDGE_CELERY_QUEUE", queue)
    set_setting("BADGES_BRIDGE_BULK_MIN_ROWS", 2 if bulk else 0)
    load.purge(queue)
    cache.clear()  # the shared request counts of an earlier run's account (same id in a fresh database)
    host = manager.LimitedHost(provider)
    harness = load.RemoteHarness(provider, host)
    workers: list[WorkerProcess] = []
    done = threading.Event()
    try:
        host.set_latency(args.latency)
        host.set_rate_limit(result.limit, args.period)
        account = make_account(harness, rate_limit_requests=result.limit, rate_limit_period=args.period)
        badge = make_course_badge(make_template(account, harness, name="Limit badge"), COURSE)
        backfill_learners = load.create_learners(result.backfill, "backfill")
        newcomers = load.create_learners(args.max_interactive, "newcomer")
        load.log(f"{scenario}: {result.backfill} backfill learners in {database}; starting {load.WORKERS} workers")
        overrides = {
            "BADGES_BRIDGE_BULK_MIN_ROWS": 2 if bulk else 0,
            "BADGES_BRIDGE_BACKFILL_BUDGET_SHARE": args.share,
            "BADGES_BRIDGE_BACKFILL_FEED_SECONDS": args.feed_seconds,
        }
        workers = load.start_workers(database, queue, args.concurrency, log_dir, overrides, name="limit")
        recording = record_backfill(backfill_learners)
        result.started = time.time()
        load.log(f"{scenario}: backfill recorded in {recording:.1f}s; the feeder issues it")
        sent: dict[int, float] = {}
        every = args.period / (result.limit * args.interactive_share)
        sender = threading.Thread(target=interactive_learners, args=(newcomers, every, done, sent))
        sender.start()
        try:
            wait_until_issued(result.backfill, workers, args.timeout)
        finally:
            done.set()
            sender.join()
        deadline = time.monotonic() + args.period * 2
        while BadgeIssuance.objects.filter(user_id__in=sent, state=IssuanceState.ISSUED).count() < len(sent):
            if time.monotonic() > deadline:
                raise TimeoutError("an interactive learner's badge was not issued")
            time.sleep(0.5)
        rows = BadgeIssuance.objects.filter(state=IssuanceState.ISSUED).values_list("user_id", "confirmed_at")
        result.issued_at = [confirmed.timestamp() for _user, confirmed in rows]
        result.interactive = [confirmed.timestamp() - sent[user] for user, confirmed in rows if user in sent]
        result.requests.update(host.request_counts())
        result.refused = host.refused()
        harness.prefetch_states(list(IssuedBadge.objects.values_list("external_id", flat=True)))
        issued_newcomers = [learner for learner in newcomers if learner.pk in sent]
        others = [learner for learner in newcomers if learner.pk not in sent]
        result.problems = exactly_once_problems(harness, badge, backfill_learners + issued_newcomers, others)
    finally:
        done.set()
        for worker in workers:
            worker.stop()
        host.stop()
        load.purge(queue)
        connection.creation.destroy_test_db(original_database, verbosity=0)
    return result


def report(results: list[Result], args) -> None:
    print()
    for name, value in load.machine() if results else []:
        print(f"{name:8} {value}")
    print(
        f"command  python benchmarks/provider_limit.py --scenario {' '.join(args.scenario)} --period {args.period} "
        f"--limit {args.limit} --limit-bulk {args.limit_bulk} --backfill {args.backfill} "
        f"--backfill-bulk {args.backfill_bulk} --interactive-share {args.interactive_share} --share {args.share} "
        f"--latency {args.latency} --concurrency {args.concurrency}"
    )
    print()
    header = (
        f"{'scenario':16} {'limit':>9} {'badges':>6} {'max/s':>6} {'badges/s':>8} {'of max':>6} {'req/badge':>9} "
        f"{'429':>4} {'interactive':>11} {'p50 s':>6} {'p95 s':>6}  invariant"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        print(
            f"{result.scenario:16} {f'{result.limit}/{result.period}s':>9} {result.badges:>6} "
            f"{result.theoretical:>6.1f} {result.achieved:>8.1f} {result.achieved / result.theoretical:>6.0%} "
            f"{result.requests['all'] / max(1, result.badges):>9.3f} {result.refused:>4} "
            f"{len(result.interactive):>11} {result.percentile(0.5):>6.1f} {result.percentile(0.95):>6.1f}  "
            f"{'holds' if not result.problems else 'BROKEN'}"
        )
    for result in results:
        load.print_problems(result.scenario, result.problems)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--period", type=int, default=60, help="seconds of the rate window (60)")
    parser.add_argument("--limit", type=int, default=300, help="requests per window, single creates (300)")
    parser.add_argument("--limit-bulk", type=int, default=60, help="requests per window, bulk creates (60)")
    parser.add_argument("--backfill", type=int, default=800, help="backfill learners, single creates (800)")
    parser.add_argument("--backfill-bulk", type=int, default=10_000, help="backfill learners, bulk creates (10000)")
    parser.add_argument(
        "--interactive-share",
        type=float,
        default=0.05,
        help="learners passing during the backfill, as a share of the limit's request rate (0.05)",
    )
    parser.add_argument("--max-interactive", type=int, default=500, help="most passing learners (500)")
    parser.add_argument("--share", type=float, default=0.9, help="BADGES_BRIDGE_BACKFILL_BUDGET_SHARE (0.9)")
    parser.add_argument("--feed-seconds", type=float, default=5, help="BADGES_BRIDGE_BACKFILL_FEED_SECONDS (5)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake waits before each answer")
    parser.add_argument("--concurrency", type=int, default=8, help="threads of each of the 2 workers (8)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the backfill (1800)")
    default_database = f"{os.environ.get('BADGES_BRIDGE_MYSQL_TEST_NAME', 'test_badges_bridge')}_limit"
    parser.add_argument("--database", default=default_database, help=f"database name prefix ({default_database})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="badges-bridge-limit-"))
    load.log(f"worker logs in {log_dir}")
    manager = LimitManager(ctx=multiprocessing.get_context("fork"))
    return load.run_each(args.scenario, lambda scenario: run(scenario, args, log_dir, manager), manager, report, args)


if __name__ == "__main__":
    sys.exit(main())
