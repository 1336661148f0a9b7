"""Load test: learners through MariaDB, Redis, two Celery worker processes and a fake provider.

Run from the repository root (MariaDB and Redis must answer, as for the integration tests)::

    python benchmarks/load.py [--learners 10000] [--provider credly|accredible|both] [--latency 0.05]

For each provider the script creates a database of its own, starts the fake provider in a
process of its own with a per-request latency, starts two ``celery worker`` processes, then sends
one COURSE_PASSING_STATUS_UPDATED event per learner through the plugin's real receivers
(openedx-events ``send_event``). The workers issue the badges. When every row is issued it
checks that each learner holds exactly one live badge and that the ledger agrees with the
fake, and prints badges per second, the time from event to issued (p50, p95), the peak
resident memory of each worker and the provider requests per badge. The exit status is 1
when the invariant does not hold or the run does not finish in time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.managers import BaseManager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
os.environ["BADGES_BRIDGE_TEST_DB"] = "mysql"
os.environ["BADGES_BRIDGE_TEST_CELERY"] = "worker"
os.environ.pop("BADGES_BRIDGE_TEST_SETTINGS", None)

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test import override_settings  # noqa: E402

from badges_bridge import api  # noqa: E402
from badges_bridge.conf import get_setting  # noqa: E402
from badges_bridge.models import BadgeIssuance, IssuanceState, IssuedBadge  # noqa: E402
from badges_bridge.providers.base import AwardState  # noqa: E402
from badges_bridge.testing.events import plugin_receivers_connected, send_passing_status  # noqa: E402
from badges_bridge.testing.harness import get_harness_class  # noqa: E402
from badges_bridge.testing.invariant import exactly_once_problems  # noqa: E402
from badges_bridge.testing.setup import make_account, make_course_badge, make_template  # noqa: E402
from tests.celery_app import app  # noqa: E402
from tests.integration.workers import WorkerProcess, launch_worker, node_name  # noqa: E402

COURSE = "course-v1:LoadOrg+Load101+2026"
WORKERS = 2
#: Provider operations counted apart in the requests per badge.
OPERATIONS = ("find", "issue")
USER_BATCH = 1000


@dataclass
class Result:
    """The figures of one run."""

    provider: str
    learners: int
    seconds: float = 0.0
    send_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    peak_rss_mib: list[float] = field(default_factory=list)
    requests: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    machine: list[tuple[str, str]] = field(default_factory=list)

    @property
    def badges_per_second(self) -> float:
        return self.learners / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        return percentile(self.latencies, fraction)

    def per_badge(self, operation: str) -> float:
        return self.requests[operation] / self.learners


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of the values lie (NaN when there is none)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


class StopRequestedError(Exception):
    """Ctrl-C or SIGTERM: the run stops and cleans up."""


_stop = threading.Event()


def _request_stop(signum, frame) -> None:
    _stop.set()


def check_stop() -> None:
    if _stop.is_set():
        raise StopRequestedError("stopped on request")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the fake provider, in a process of its own -------------------------------------------------------------------


class FakeHost:
    """Runs in the fake's process: one started fake provider, driven through a manager proxy."""

    def __init__(self, kind: str) -> None:
        self.harness = get_harness_class(kind)().start()

    def account_fields(self, account: str = "main") -> dict[str, str]:
        return self.harness.account_fields(account)

    def seed_template(self, name: str, **options) -> str:
        return self.harness.seed_template(name, **options)

    def set_latency(self, seconds: float) -> None:
        self.harness.server.latency = seconds

    def lift_rate_limit(self) -> None:
        """Turn off the fake's own rate limit, where it has one (the fake Accredible answers 429 as Accredible does)."""
        if hasattr(self.harness.server, "rate_limit"):
            self.harness.server.rate_limit = None

    def request_counts(self) -> dict[str, int]:
        counts = {"all": len(self.harness.server.journal)}
        for operation in OPERATIONS:
            counts[operation] = len(self.harness.requests_for(operation))
        return counts

    def live_award_ids_by_email(self, template_id: str, account: str = "main") -> dict[str, list[str]]:
        live = self.harness.live_awards_by_email(template_id, account)
        return {email: [self.harness.award_id(award) for award in awards] for email, awards in live.items()}

    def award_states(self, external_ids: list[str], account: str = "main") -> dict[str, str]:
        return {external_id: self.harness.award_state(external_id, account).value for external_id in external_ids}

    def stop(self) -> None:
        self.harness.stop()


class FakeManager(BaseManager):
    """Serves FakeHost objects from a separate process."""


FakeManager.register("FakeHost", FakeHost)


class RemoteHarness:
    """What the set-up helpers and the invariant check need of a harness, over a FakeHost proxy.

    The fake answers from its own process, so that serving the workers' requests does not
    compete for this process's interpreter with the events being sent.
    """

    def __init__(self, kind: str, host) -> None:
        self.kind = kind
        self.host = host
        self._states: dict[str, str] = {}

    def account_fields(self, account: str = "main") -> dict[str, str]:
        return self.host.account_fields(account)

    def seed_template(self, name: str, **options) -> str:
        return self.host.seed_template(name, **options)

    def live_awards_by_email(self, template_id: str, account: str = "main") -> dict[str, list[dict]]:
        live = self.host.live_award_ids_by_email(template_id, account)
        return {email: [{"id": external_id} for external_id in ids] for email, ids in live.items()}

    def award_id(self, award: dict) -> str:
        return award["id"]

    def prefetch_states(self, external_ids: list[str], account: str = "main") -> None:
        """Read the state of many badges in one call (the invariant asks for each)."""
        self._states = self.host.award_states(external_ids, account)

    def award_state(self, external_id: str, account: str = "main") -> AwardState:
        if external_id not in self._states:
            self._states.update(self.host.award_states([external_id], account))
        return AwardState(self._states[external_id])


# -- set-up -------------------------------------------------------------------------------------------------------


def create_database(name: str) -> str:
    """A fresh database for the run (Django's test-database machinery); returns its name."""
    connection.settings_dict["TEST"]["NAME"] = name
    return connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)


def create_learners(count: int, prefix: str = "load") -> list:
    """``count`` learners named ``<prefix><n>``, with an e-mail address (no password: bulk inserts)."""
    user_model = get_user_model()
    for start in range(0, count, USER_BATCH):
        user_model.objects.bulk_create(
            user_model(
                username=f"{prefix}{i}",
                email=f"{prefix}{i}@example.com",
                first_name=prefix.title(),
                last_name=f"L{i}",
                password="!",
            )
            for i in range(start, min(count, start + USER_BATCH))
        )
    return list(user_model.objects.filter(username__startswith=prefix).order_by("pk"))


def start_workers(
    database: str, queue: str, concurrency: int, log_dir: Path, overrides: dict | None = None, name: str = "load"
) -> list[WorkerProcess]:
    """Start the worker processes (settings ``overrides`` on top of the queue's) and wait until each answers."""
    overrides = {"BADGES_BRIDGE_CELERY_QUEUE": queue, "BADGES_BRIDGE_HTTP_TIMEOUT": [5, 30], **(overrides or {})}
    workers = [
        launch_worker(
            rootpath=ROOT,
            log_path=log_dir / f"{name}-worker-{index}.log",
            node=node_name(f"{name}{index}"),
            queue=queue,
            database=database,
            overrides=overrides,
            concurrency=concurrency,
            loglevel="WARNING",
        )
        for index in range(WORKERS)
    ]
    deadline = time.monotonic() + 60
    for worker in workers:
        while not app.control.ping(destination=[worker.node], timeout=0.5):
            worker.check_alive()
            if time.monotonic() > deadline:
                raise SystemExit(f"the worker {worker.node} did not answer within 60 s; log tail:\n{worker.tail()}")
    return workers


def purge(queue: str) -> None:
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)


# -- the run ------------------------------------------------------------------------------------------------------


class Progress(threading.Thread):
    """Prints how many events were sent and badges issued, every few seconds, until stopped."""

    def __init__(self, total: int, every: float) -> None:
        super().__init__(daemon=True)
        self.total = total
        self.every = every
        self.sent = 0
        self.done = threading.Event()

    def run(self) -> None:
        started, last_issued, last_time = time.monotonic(), 0, time.monotonic()
        try:
            while not self.done.wait(self.every):
                issued = BadgeIssuance.objects.filter(state=IssuanceState.ISSUED).count()
                now = time.monotonic()
                rate = (issued - last_issued) / (now - last_time)
                log(
                    f"{now - started:6.0f}s  events sent {self.sent}/{self.total}  issued {issued}/{self.total}  "
                    f"({rate:.1f} badges/s)"
                )
                last_issued, last_time = issued, now
        finally:
            connections.close_all()


def send_events(learners: list, course_key, progress: Progress, rate: float, senders: int) -> float:
    """Send one passing event per learner through the receivers, from ``senders`` threads (as several LMS
    processes would); returns the seconds it took. ``rate`` paces the events (per second, all threads)."""
    lock = threading.Lock()
    errors: list[BaseException] = []
    started = time.monotonic()

    def send(chunk: list) -> None:
        try:
            for learner in chunk:
                check_stop()
                send_passing_status(learner, course_key, True)
                with lock:
                    progress.sent += 1
                    ahead = started + progress.sent / rate - time.monotonic() if rate else 0
                if ahead > 0:
                    time.sleep(ahead)
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(learners[index::senders],)) for index in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.monotonic() - started


def wait_until_issued(total: int, workers: list[WorkerProcess], timeout: float) -> None:
    """Wait until every row is issued, checking the workers and redriving as the periodic task would."""
    deadline = time.monotonic() + timeout
    redrive_every = get_setting("REDRIVE_INTERVAL_SECONDS") or 300
    next_redrive = time.monotonic() + redrive_every
    while BadgeIssuance.objects.filter(state=IssuanceState.ISSUED).count() < total:
        check_stop()
        for worker in workers:
            worker.check_alive()
        if time.monotonic() > deadline:
            states = Counter(BadgeIssuance.objects.values_list("state", flat=True))
            raise TimeoutError(f"not every badge was issued within {timeout:.0f}s; rows by state: {dict(states)}")
        if time.monotonic() > next_redrive:
            queued = len(api.redrive().ids)
            log(f"periodic redrive queued {queued} row(s)")
            next_redrive = time.monotonic() + redrive_every
        time.sleep(0.5)


def measure(result: Result, started_at, harness: RemoteHarness) -> None:
    """Fill the figures from the ledger and the fake's journal."""
    rows = BadgeIssuance.objects.values_list("qualified_at", "confirmed_at")
    result.latencies = [(confirmed - qualified).total_seconds() for qualified, confirmed in rows if confirmed]
    last = max(confirmed for _qualified, confirmed in rows if confirmed)
    result.seconds = (last - started_at).total_seconds()
    result.requests.update(harness.host.request_counts())


def run(provider: str, args: argparse.Namespace, log_dir: Path, manager: FakeManager) -> Result:
    """One load run against one fake provider."""
    from django.utils import timezone
    from opaque_keys.edx.keys import CourseKey

    result = Result(provider, args.learners)
    original_database = connection.settings_dict["NAME"]
    database = create_database(f"{args.database}_{provider}")
    queue = f"badges-bridge-load-{os.getpid()}-{provider}"
    # Through override_settings, so that the plugin reads the setting afresh (it keeps the values it read).
    queue_setting = override_settings(BADGES_BRIDGE_CELERY_QUEUE=queue)
    queue_setting.enable()
    purge(queue)
    host = manager.FakeHost(provider)
    harness = RemoteHarness(provider, host)
    workers: list[WorkerProcess] = []
    try:
        host.set_latency(args.latency)
        account = make_account(harness)
        if not args.keep_rate_limit:
            # The provider's rate limit (Accredible: 2000 requests per 5 minutes, enforced by the fake and by
            # the client) would measure the limit, not the stack: lift both for this run.
            host.lift_rate_limit()
            account.rate_limit_requests, account.rate_limit_period = 1_000_000, 1
            account.save()
        badge = make_course_badge(make_template(account, harness, name="Load badge"), COURSE)
        learners = create_learners(args.learners)
        log(f"{provider}: {len(learners)} learners in {database}; starting {WORKERS} workers")
        workers = start_workers(database, queue, args.concurrency, log_dir)
        progress = Progress(args.learners, args.progress)
        progress.start()
        started_at = timezone.now()
        with plugin_receivers_connected():
            result.send_seconds = send_events(
                learners, CourseKey.from_string(COURSE), progress, args.rate, args.senders
            )
        log(f"{provider}: {args.learners} events sent in {result.send_seconds:.1f}s")
        try:
            wait_until_issued(args.learners, workers, args.timeout)
        finally:
            progress.done.set()
            progress.join()
        result.peak_rss_mib = [(worker.peak_rss_kib() or 0) / 1024 for worker in workers]
        measure(result, started_at, harness)
        harness.prefetch_states(list(IssuedBadge.objects.values_list("external_id", flat=True)))
        result.problems = exactly_once_problems(harness, badge, learners)
        result.machine = machine()
    finally:
        for worker in workers:
            worker.stop()
        host.stop()
        purge(queue)
        queue_setting.disable()
        connection.creation.destroy_test_db(original_database, verbosity=0)
    return result


# -- report -------------------------------------------------------------------------------------------------------


def machine() -> list[tuple[str, str]]:
    """What the run ran on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown",
    )
    memory_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        (database_version,) = cursor.fetchone()
    redis_version = redis.Redis.from_url(settings.CELERY_BROKER_URL).info("server")["redis_version"]
    return [
        ("CPU", cpu),
        ("cores", str(os.cpu_count())),
        ("RAM", f"{memory_kib / 1024 / 1024:.1f} GiB"),
        ("Python", platform.python_version()),
        ("MariaDB", database_version),
        ("Redis", redis_version),
    ]


def report(results: list[Result], args: argparse.Namespace) -> None:
    print()
    for name, value in results[0].machine if results else []:
        print(f"{name:8} {value}")
    print(
        f"command  python benchmarks/load.py --learners {args.learners} --provider {args.provider} "
        f"--latency {args.latency} --concurrency {args.concurrency} --senders {args.senders}"
        + (f" --rate {args.rate}" if args.rate else "")
        + (" --keep-rate-limit" if args.keep_rate_limit else "")
    )
    print()
    header = (
        f"{'provider':11} {'learners':>8} {'badges/s':>9} {'p50 s':>7} {'p95 s':>7} {'send s':>7} "
        f"{'peak RSS MiB (per worker)':>26} {'req/badge':>9} {'find':>5} {'issue':>5}  invariant"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        rss = " / ".join(f"{value:.0f}" for value in result.peak_rss_mib)
        print(
            f"{result.provider:11} {result.learners:>8} {result.badges_per_second:>9.1f} "
            f"{result.percentile(0.5):>7.1f} {result.percentile(0.95):>7.1f} {result.send_seconds:>7.1f} "
            f"{rss:>26} {result.per_badge('all'):>9.2f} {result.per_badge('find'):>5.2f} "
            f"{result.per_badge('issue'):>5.2f}  {'holds' if not result.problems else 'BROKEN'}"
        )
    for result in results:
        print_problems(result.provider, result.problems)


def print_problems(name: str, problems: list[str]) -> None:
    """Where a run broke exactly once: the first 20 problems."""
    if problems:
        print(f"\n{name}: exactly once is broken ({len(problems)} problem(s)):")
        for problem in problems[:20]:
            print(f"  {problem}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=10_000, help="learners, one passing event each (10000)")
    parser.add_argument("--provider", choices=("credly", "accredible", "both"), default="both", help="fake provider")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake waits before each answer (0.05)")
    parser.add_argument("--concurrency", type=int, default=8, help="threads of each of the 2 workers (8)")
    parser.add_argument("--senders", type=int, default=4, help="threads sending the events (4)")
    parser.add_argument("--rate", type=float, default=0, help="events sent per second; 0: as fast as possible")
    parser.add_argument(
        "--keep-rate-limit",
        action="store_true",
        help="keep the provider's rate limit, at the fake and in the client (Accredible: 2000 requests per 5 minutes)",
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for every badge (3600)")
    parser.add_argument("--progress", type=float, default=10, help="seconds between progress lines (10)")
    default_database = f"{os.environ.get('BADGES_BRIDGE_MYSQL_TEST_NAME', 'test_badges_bridge')}_load"
    parser.add_argument("--database", default=default_database, help=f"database name prefix ({default_database})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    providers = ("credly", "accredible") if args.provider == "both" else (args.provider,)
    log_dir = Path(tempfile.mkdtemp(prefix="badges-bridge-load-"))
    log(f"worker logs in {log_dir}")
    # Forked before this process opens any database connection; the fakes run there.
    manager = FakeManager(ctx=multiprocessing.get_context("fork"))
    return run_each(providers, lambda provider: run(provider, args, log_dir, manager), manager, report, args)


def run_each(names, run_one, manager: BaseManager, report_results, args: argparse.Namespace) -> int:
    """Run each named run in turn and report it, then all of them; the exit status (1: a run failed or broke).

    Ctrl-C (or SIGTERM) stops the current run in this process, which then stops its workers and drops its
    database; the fakes' process (``manager``, started here) ignores SIGINT and is shut down at the end.
    """
    manager.start(signal.signal, (signal.SIGINT, signal.SIG_IGN))
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _request_stop)
    results = []
    try:
        for name in names:
            try:
                results.append(run_one(name))
            except (TimeoutError, StopRequestedError) as err:
                log(f"{name}: {err}")
                report_results(results, args)
                return 1
            report_results(results[-1:], args)
    finally:
        manager.shutdown()
    if len(results) > 1:
        report_results(results, args)
    return 1 if any(result.problems for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
