"""Memory, time and provider requests of the drift check at scale.

Run from the repository root::

    python benchmarks/drift.py [--rows 100000] [--providers credly,accredible] [--db sqlite|mysql]

For each provider the script serves its fake in a separate process, seeded directly (no HTTP
create) with one badge per ledger row, and makes a small share of them drift: deleted, or revoked
(Credly) / expired (Accredible). It seeds a database with the matching issued rows, then runs the
drift check of the account in fresh processes, twice per approach: once for the wall time, the
provider requests and the RSS high-water mark, once under tracemalloc for the peak of the Python
heap. The approaches are ``streaming`` (``badges_bridge.drift``) and ``in-memory``, the check as it
was before it streamed, kept here only for comparison. The exit status is 1 when a check does not
change exactly the rows that drifted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APPROACHES = ("in-memory", "streaming")
#: Share of the badges that drift by default: half deleted, half revoked (Credly) or expired (Accredible).
DEFAULT_DRIFT = 0.002


# -- the fake provider, in its own process -----------------------------------------------------------------------


def serve_fake(kind: str, rows: int, templates: int, drift_share: float, conn: Any) -> None:
    """Seed a fake provider with ``rows`` badges, make some drift, serve it until told to stop.

    Sends back the account fields and, per row, (template id, badge id); then answers "requests"
    (counts of listing and direct-read requests since the last question) and "stop".
    """
    from badges_bridge.providers.base import AwardState
    from badges_bridge.testing.fake_accredible import AccredibleHarness
    from badges_bridge.testing.fake_credly import CredlyHarness

    harness = (CredlyHarness if kind == "credly" else AccredibleHarness)().start()
    if kind == "accredible":
        harness.server.rate_limit = None  # consecutive runs would add up; one run stays within 2,000 per 5 minutes
    template_ids = [harness.seed_template(f"Benchmark badge {number}") for number in range(templates)]
    seeded = []
    for index in range(rows):
        template_id = template_ids[index % templates]
        seeded.append((template_id, harness.seed_award(template_id, f"learner{index}@example.com")))
    step = max(1, round(1 / drift_share)) if drift_share > 0 else 0
    drifted = 0
    for number, index in enumerate(range(step // 2, rows, step) if step else ()):
        gone = number % 2 == 0
        closed = AwardState.REVOKED if kind == "credly" else AwardState.EXPIRED
        harness.set_award_state(seeded[index][1], AwardState.DELETED if gone else closed)
        drifted += 1
    harness.server.cache_listings()  # the store no longer changes: each listing query is computed once, not per page
    harness.server.journal.clear()
    conn.send({"fields": harness.account_fields(), "seeded": seeded, "drifted": drifted})
    while True:
        command = conn.recv()
        if command == "stop":
            harness.stop()
            return
        conn.send({"listing": len(harness.requests_for("find")), "direct": len(harness.requests_for("get"))})
        harness.server.journal.clear()


# -- Django ------------------------------------------------------------------------------------------------------


def mysql_name() -> str:
    """The benchmark's own MariaDB/MySQL database, named after the test database of this checkout."""
    return os.environ.get("BADGES_BRIDGE_MYSQL_TEST_NAME", "test_badges_bridge") + "_drift"


def mysql_server() -> dict[str, Any]:
    return {
        "HOST": os.environ.get("BADGES_BRIDGE_MYSQL_HOST", "127.0.0.1"),
        "PORT": os.environ.get("BADGES_BRIDGE_MYSQL_PORT", "3306"),
        "USER": os.environ.get("BADGES_BRIDGE_MYSQL_USER", "root"),
        "PASSWORD": os.environ.get("BADGES_BRIDGE_MYSQL_PASSWORD", ""),
    }


def configure(db: str, location: str) -> None:
    """Set Django up on the benchmark database (a SQLite file, or the MariaDB/MySQL database ``location``)."""
    import django
    from django.conf import settings

    if db == "mysql":
        database = {"ENGINE": "django.db.backends.mysql", "NAME": location, "OPTIONS": {"charset": "utf8mb4"}}
        database.update(mysql_server())
    else:
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": location}
    settings.configure(
        SECRET_KEY="benchmark-only-key",  # noqa: S106 - a throw-away database
        USE_TZ=True,
        TIME_ZONE="UTC",
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "badges_bridge"],
        DATABASES={"default": database},
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        BADGES_BRIDGE_HTTP_TIMEOUT=(5.0, 60.0),
    )
    django.setup()


def create_mysql_database(name: str, drop: bool = False) -> None:
    import MySQLdb

    server = mysql_server()
    connection = MySQLdb.connect(
        host=server["HOST"], port=int(server["PORT"]), user=server["USER"], password=server["PASSWORD"]
    )
    try:
        cursor = connection.cursor()
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        if not drop:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    finally:
        connection.close()


def account_name(kind: str) -> str:
    return f"benchmark-{kind}"


def seed_database(kind: str, fields: dict[str, str], seeded: list[tuple[str, str]]) -> None:
    """An account, its templates, a course badge per template, and an issued row (with its badge record) per badge."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from opaque_keys.edx.keys import CourseKey

    from badges_bridge.models import (
        BadgeIssuance,
        BadgeTemplate,
        CourseBadge,
        IssuanceState,
        IssuedBadge,
        ProviderAccount,
    )

    account = ProviderAccount(
        provider=kind,
        name=account_name(kind),
        api_base_url=fields["base_url"],
        organization_id=fields["organization_id"],
    )
    account.set_token(fields["token"])
    account.save()
    course_badges = {}
    for number, template_id in enumerate(dict.fromkeys(template for template, _ in seeded)):
        template = BadgeTemplate.objects.create(account=account, external_id=template_id, name=f"Badge {number}")
        course_key = CourseKey.from_string(f"course-v1:Bench+{kind}{number}+2026")
        course_badges[template_id] = CourseBadge.objects.create(course_key=course_key, template=template)
    user_model = get_user_model()
    user_model.objects.bulk_create(
        (user_model(username=f"{kind}{index}", email=f"learner{index}@example.com") for index in range(len(seeded))),
        batch_size=5000,
    )
    user_ids = list(user_model.objects.filter(username__startswith=kind).order_by("pk").values_list("pk", flat=True))
    now = timezone.now()
    BadgeIssuance.objects.bulk_create(
        (
            BadgeIssuance(
                user_id=user_id,
                course_badge=course_badges[template_id],
                state=IssuanceState.ISSUED,
                external_id=badge_id,
                issued_at=now,
                confirmed_at=now,
            )
            for user_id, (template_id, badge_id) in zip(user_ids, seeded, strict=True)
        ),
        batch_size=5000,
    )
    IssuedBadge.objects.bulk_create(
        (
            IssuedBadge(issuance_id=pk, external_id=external_id, number=1)
            for pk, external_id in BadgeIssuance.objects.filter(course_badge__template__account=account)
            .order_by("pk")
            .values_list("pk", "external_id")
            .iterator()
        ),
        batch_size=5000,
    )


def reset_ledger() -> None:
    """Undo what a drift check changed, so that every run starts from the same ledger."""
    from badges_bridge.models import AuditEntry, AwardStatus, BadgeIssuance, IssuanceState, IssuedBadge

    BadgeIssuance.objects.exclude(state=IssuanceState.ISSUED).update(
        state=IssuanceState.ISSUED, provider_state="", revoked_at=None, revoked_by=""
    )
    IssuedBadge.objects.exclude(status=AwardStatus.LIVE).update(status=AwardStatus.LIVE, provider_state="")
    AuditEntry.objects.all().delete()


# -- one measured run, in a fresh process ------------------------------------------------------------------------


def in_memory_check(account: Any) -> int:
    """The drift check before it streamed, for comparison: every issued row and every listed badge in memory."""
    from badges_bridge import drift
    from badges_bridge.accounts import provider_for
    from badges_bridge.models import BadgeIssuance, IssuanceState

    rows = (
        BadgeIssuance.objects.filter(state=IssuanceState.ISSUED, course_badge__template__account=account)
        .exclude(external_id="")
        .select_related("course_badge__template")
    )
    by_template = defaultdict(list)
    for row in rows:
        by_template[row.course_badge.template.external_id].append(row)
    if not by_template:
        return 0
    provider = provider_for(account)
    remote = {award.external_id: award for award in provider.iter_awards(sorted(by_template))}
    changed = 0
    for template_rows in by_template.values():
        for row in template_rows:
            award = remote.get(row.external_id)
            state = award.state if award is not None else drift.confirmed_state(provider, row.external_id)
            if not state.is_live:
                changed += drift.mark(drift.IssuedRow(row.pk, row.external_id, row.award_number), account.pk, state)
    return changed


def rss_bytes() -> tuple[int, int]:
    """(resident memory now, its high-water mark) of this process.

    Read from /proc/self/status where it exists (Linux); elsewhere both are ru_maxrss (KiB on Linux, bytes
    on macOS), which also counts the peak this process inherited from the parent it was forked from.
    """
    status = Path("/proc/self/status")
    if status.exists():
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak if sys.platform == "darwin" else peak * 1024
    return peak, peak


def reset_rss_peak() -> None:
    """Start the high-water mark afresh from the current resident memory (Linux; elsewhere it stays)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return


def child(options: argparse.Namespace) -> None:
    """Run one drift check and print its figures as JSON."""
    configure(options.db, options.location)
    from badges_bridge.drift import check_account_drift
    from badges_bridge.models import ProviderAccount

    account = ProviderAccount.objects.get(name=account_name(options.kind))
    check = check_account_drift if options.approach == "streaming" else in_memory_check
    reset_rss_peak()  # forget the parent's peak, inherited through fork
    rss_before = rss_bytes()[0]
    if options.heap:
        tracemalloc.start()
    started = time.perf_counter()
    changed = check(account)
    elapsed = time.perf_counter() - started
    result = {"changed": changed, "seconds": elapsed, "rss_peak": rss_bytes()[1], "rss_before": rss_before}
    if options.heap:
        result["heap_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(json.dumps(result))


# -- the whole benchmark -----------------------------------------------------------------------------------------


@dataclass
class Row:
    provider: str
    approach: str
    rows: int
    seconds: float
    listing: int
    direct: int
    changed: int
    expected: int
    heap_peak: int
    rss_peak: int
    rss_growth: int


def run_child(options: argparse.Namespace, location: str, kind: str, approach: str, heap: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", "--db", options.db, "--location", location, "--kind", kind]
    command += ["--approach", approach]
    if heap:
        command.append("--heap")
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"the {approach} run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_provider(options: argparse.Namespace, kind: str, location: str) -> list[Row]:
    """Serve and seed the fake of ``kind``, seed its account's rows, and measure each approach."""
    context = multiprocessing.get_context("spawn")
    parent, end = context.Pipe()
    fake = context.Process(
        target=serve_fake, args=(kind, options.rows, options.templates, options.drift, end), daemon=True
    )
    fake.start()
    try:
        seeded = parent.recv()
        seed_database(kind, seeded["fields"], seeded["seeded"])
        del seeded["seeded"]
        results = []
        for approach in options.approaches:
            figures = {}
            for heap in (False, True):
                reset_ledger()
                figures[heap] = run_child(options, location, kind, approach, heap)
                parent.send("requests")
                figures[heap].update(parent.recv())
            timed, traced = figures[False], figures[True]
            results.append(
                Row(
                    provider=kind,
                    approach=approach,
                    rows=options.rows,
                    seconds=timed["seconds"],
                    listing=timed["listing"],
                    direct=timed["direct"],
                    changed=timed["changed"],
                    expected=seeded["drifted"],
                    heap_peak=traced["heap_peak"],
                    rss_peak=timed["rss_peak"],
                    rss_growth=max(0, timed["rss_peak"] - timed["rss_before"]),
                )
            )
        return results
    finally:
        parent.send("stop")
        fake.join(timeout=10)


def mib(value: float) -> str:
    return f"{value / 2**20:,.1f}"


def print_table(results: list[Row], options: argparse.Namespace) -> None:
    header = (
        "provider",
        "approach",
        "rows",
        "wall s",
        "listing requests",
        "direct reads",
        "rows changed",
        "heap peak MiB",
        "RSS high-water MiB",
        "RSS growth MiB",
    )
    lines = [
        (
            row.provider,
            row.approach,
            f"{row.rows:,}",
            f"{row.seconds:,.1f}",
            f"{row.listing:,}",
            f"{row.direct:,}",
            f"{row.changed:,}" + ("" if row.changed == row.expected else f" (expected {row.expected:,})"),
            mib(row.heap_peak),
            mib(row.rss_peak),
            mib(row.rss_growth),
        )
        for row in results
    ]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]
    print("  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)))
    print("  ".join("-" * width for width in widths))
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="issued rows and provider badges (default 100000)")
    parser.add_argument("--providers", default="credly,accredible", help="fakes to run against (default both)")
    parser.add_argument("--approaches", default=",".join(APPROACHES), help="in-memory, streaming or both")
    parser.add_argument("--db", choices=("sqlite", "mysql"), default="sqlite", help="SQLite file (default) or MySQL")
    parser.add_argument("--templates", type=int, default=10, help="badge templates the rows spread over (default 10)")
    parser.add_argument("--drift", type=float, default=DEFAULT_DRIFT, help="share of badges that drift (0.002)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--heap", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--location", help=argparse.SUPPRESS)
    parser.add_argument("--approach", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        child(options)
        return 0
    options.approaches = [name for name in options.approaches.split(",") if name]
    unknown = set(options.approaches) - set(APPROACHES)
    if unknown:
        parser.error(f"unknown approach {', '.join(sorted(unknown))}; use {' or '.join(APPROACHES)}")

    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="badges-bridge-drift-"))
    location = mysql_name() if options.db == "mysql" else str(workdir / "drift.sqlite3")
    try:
        if options.db == "mysql":
            create_mysql_database(location)
        configure(options.db, location)
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        results = [row for kind in options.providers.split(",") for row in bench_provider(options, kind, location)]
        connection.close()
    finally:
        if options.db == "mysql":
            create_mysql_database(location, drop=True)
        shutil.rmtree(workdir, ignore_errors=True)

    import django

    where = f"MySQL database {mysql_name()}" if options.db == "mysql" else "a SQLite file"
    print(
        f"badges_bridge drift check benchmark: {options.rows:,} issued rows over {options.templates} templates, "
        f"{where}, Django {django.get_version()}, Python {sys.version.split()[0]}"
    )
    print()
    print_table(results, options)
    print()
    print(
        "heap peak: tracemalloc peak of the Python heap during the check (a separate run); RSS high-water: the "
        "process's peak resident memory; RSS growth: how far the check raised it above the process after set-up."
    )
    print(f"Run time {time.perf_counter() - started:.0f}s.")
    wrong = [row for row in results if row.changed != row.expected]
    if wrong:
        print(f"WRONG: {', '.join(f'{row.provider} {row.approach}' for row in wrong)} changed other rows than drifted")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
