"""The badges_bridge demo: a few hundred learners, two fake providers, faults on the way, a summary.

Run from the repository root (``make demo`` does it after installing the package)::

    python demo/run.py [--learners 300] [--seed 2026]

What it does, on a fresh SQLite database (``demo/demo.sqlite3``):

1. starts the bundled fake Credly and fake Accredible servers (real HTTP on 127.0.0.1);
2. creates one provider account for each (token encrypted), seeds templates at the
   fakes, syncs them and checks the accounts through ``badges_bridge.api``;
3. attaches badges to five courses, creates the learners and connects the plugin's
   receivers to the openedx-events signals exactly as the Open edX plugin machinery does;
4. sends real openedx-events learning events in three phases (courses finished; grades
   changed, certificates revoked, courses failed; courses passed again, late and duplicated
   deliveries) while provider faults are injected: 503s, a 429 with Retry-After, a lost
   response after the badge was created, a template archived at the provider;
5. runs the redrive (as the periodic task would) until every ledger row is final;
6. checks the invariants against the ledger and the fakes, prints a summary;
7. lets the provider's state flow back and a learner retire: learners accept, hide and
   reject badges at the fake Credly, which posts its notifications to the plugin's webhook
   URL; rejected learners pass again; one learner retires. It checks that the ledger
   follows, that a rejected badge is not issued again, that the retired learner leaves no
   personal data and no badge behind, and that every BADGE_AWARDED and BADGE_REVOKED event
   matches the ledger. The demo exits non-zero when an invariant does not hold.

Celery runs eagerly in this process, so a badge is issued while its event is delivered;
a failed attempt is retried by the redrive once its retry time has come.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import textwrap
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
os.environ.setdefault("BADGES_BRIDGE_DEMO_DEBUG", "0")

import django  # noqa: E402

django.setup()

from django.apps import apps as django_apps  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402
from opaque_keys.edx.keys import CourseKey  # noqa: E402
from openedx_events.learning import signals as learning_signals  # noqa: E402
from openedx_events.tooling import SIGNAL_PROCESSED_FROM_EVENT_BUS  # noqa: E402

from badges_bridge import api, compat, webhooks  # noqa: E402
from badges_bridge.models import (  # noqa: E402
    AuditEntry,
    BadgeIssuance,
    BadgeTemplate,
    CourseBadge,
    Criterion,
    IssuanceState,
    IssuedBadge,
    MaintenanceJob,
    ProviderCleanup,
    RejectedEvent,
    RevokePolicy,
    StandaloneCourse,
)
from badges_bridge.providers.base import AwardState  # noqa: E402
from badges_bridge.testing import events as send  # noqa: E402
from badges_bridge.testing.events import plugin_receivers_connected  # noqa: E402
from badges_bridge.testing.harness import ProviderHarness, get_harness_class  # noqa: E402
from badges_bridge.testing.setup import make_account  # noqa: E402

S = IssuanceState
OPEN_STATES = (S.PENDING, S.ISSUING, S.FAILED, S.REVOKE_PENDING)
PROVIDERS = ("credly", "accredible")
PROVIDER_NAMES = {"credly": "Credly", "accredible": "Accredible"}
DRAIN_TIMEOUT_SECONDS = 60.0
REDRIVE_EVERY = 50

FIRST_NAMES = [
    "Ada",
    "Alan",
    "Amara",
    "Ana",
    "Arjun",
    "Beatriz",
    "Bilal",
    "Carmen",
    "Chen",
    "Chiara",
    "Dalia",
    "Diego",
    "Elif",
    "Emeka",
    "Eva",
    "Farah",
    "Felix",
    "Grace",
    "Hana",
    "Hugo",
    "Ines",
    "Ivan",
    "Jamal",
    "Jin",
    "Kai",
    "Kofi",
    "Lara",
    "Leila",
    "Luca",
    "Maya",
    "Mei",
    "Mateo",
    "Nadia",
    "Nia",
    "Noor",
    "Olga",
    "Omar",
    "Paulo",
    "Priya",
    "Quentin",
    "Rahul",
    "Rosa",
    "Sami",
    "Sara",
    "Sofia",
    "Tariq",
    "Tomas",
    "Uma",
    "Valentina",
    "Wei",
    "Yara",
    "Yusuf",
    "Zara",
    "Zoe",
]
LAST_NAMES = [
    "Abbasi",
    "Adeyemi",
    "Almeida",
    "Andersen",
    "Bauer",
    "Becker",
    "Costa",
    "Dubois",
    "Eriksson",
    "Fernandes",
    "Garcia",
    "Haddad",
    "Hoffmann",
    "Ibrahim",
    "Ivanova",
    "Jensen",
    "Kaplan",
    "Khan",
    "Kim",
    "Kowalski",
    "Larsen",
    "Lopez",
    "Mensah",
    "Moreau",
    "Nakamura",
    "Novak",
    "Okafor",
    "Oliveira",
    "Park",
    "Petrov",
    "Quispe",
    "Rossi",
    "Santos",
    "Schmidt",
    "Silva",
    "Suzuki",
    "Tanaka",
    "Torres",
    "Usman",
    "Varga",
    "Wang",
    "Weber",
    "Yilmaz",
    "Zhang",
    "Zielinski",
]


# -- the course catalogue ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CourseSpec:
    """A course of the demo and the badge attached to it."""

    code: str
    course_key: str
    provider: str
    template: str
    criterion: str
    revoke_policy: str
    grade_threshold: Decimal | None = None
    certificate_modes: str = ""

    def describe(self) -> str:
        """The criterion and revoke policy in words."""
        if self.criterion == Criterion.GRADE_AT_LEAST:
            what = f"grade at least {self.grade_threshold}%"
        elif self.criterion == Criterion.CERTIFICATE:
            what = f"certificate ({self.certificate_modes})"
        else:
            what = "course passed"
        revoke = "revoked when no longer met" if self.revoke_policy == RevokePolicy.CRITERION_UNMET else "never revoked"
        return f"{what}, {revoke}"


COURSES = [
    CourseSpec(
        "python",
        "course-v1:DemoX+Python+2026",
        "credly",
        "Python Fundamentals",
        Criterion.PASSED,
        RevokePolicy.CRITERION_UNMET,
    ),
    CourseSpec(
        "data",
        "course-v1:DemoX+Data+2026",
        "accredible",
        "Data Analysis with Distinction",
        Criterion.GRADE_AT_LEAST,
        RevokePolicy.CRITERION_UNMET,
        grade_threshold=Decimal(80),
    ),
    CourseSpec(
        "cloud",
        "course-v1:DemoX+Cloud+2026",
        "credly",
        "Cloud Practitioner (Verified)",
        Criterion.CERTIFICATE,
        RevokePolicy.CRITERION_UNMET,
        certificate_modes="verified,professional",
    ),
    CourseSpec(
        "intro",
        "course-v1:DemoX+Intro+2026",
        "accredible",
        "Open edX Explorer",
        Criterion.PASSED,
        RevokePolicy.NEVER,
    ),
    CourseSpec(
        "legacy",
        "course-v1:DemoX+Legacy+2025",
        "credly",
        "Legacy Course Completion",
        Criterion.PASSED,
        RevokePolicy.NEVER,
    ),
]
COURSE_BY_CODE = {course.code: course for course in COURSES}
#: Templates seeded at the fakes that no course uses (the sync copies them all).
EXTRA_TEMPLATES = {
    "credly": [("Machine Learning Specialist", "draft")],
    "accredible": [("Community Contributor", "active")],
}


# -- the scenario -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One learning event to send: ``action`` is pass, fail, grade, cert or cert_revoked."""

    course: str
    action: str
    value: float | str | None = None


@dataclass
class Learner:
    """A demo learner and the events it will cause, per phase."""

    index: int
    username: str
    first_name: str
    last_name: str
    email: str
    phases: list[list[Step]] = field(default_factory=lambda: [[], [], []])
    user: object = None


#: Grade events whose percent is out of range: the receivers record them as rejected events.
INVALID_GRADE = 1.37


def plan_learners(count: int, rng: random.Random) -> tuple[list[Learner], dict[str, int]]:
    """Build the learners and their events; return them and the indexes of the special learners."""
    learners = []
    for index in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        username = f"learner{index + 1:03d}"
        email = f"{first}.{last}.{index + 1}@learners.demo.example".lower()
        learner = Learner(index, username, first, last, email)
        _plan_courses(learner, rng)
        learners.append(learner)
    special = {
        "no_email": min(13, count - 1),
        "legacy": min(7, count - 1),
        "invalid_grades": [i for i in (21, 42) if i < count],
    }
    no_email = learners[special["no_email"]]
    no_email.email = ""
    no_email.phases = [[Step("python", "pass")], [], []]
    legacy = learners[special["legacy"]]
    legacy.phases[0].append(Step("legacy", "pass"))
    for index in special["invalid_grades"]:
        learners[index].phases[1].append(Step("data", "grade", INVALID_GRADE))
    return learners, special


def _plan_courses(learner: Learner, rng: random.Random) -> None:
    p1, p2, p3 = learner.phases
    # Python (Credly, passed, revoked when unmet): pass; fail; pass then fail; pass, fail, pass again.
    r = rng.random()
    if r < 0.58:
        p1.append(Step("python", "pass"))
    elif r < 0.72:
        p1.append(Step("python", "fail"))
    elif r < 0.85:
        p1.append(Step("python", "pass"))
        p2.append(Step("python", "fail"))
    elif r < 0.93:
        p1.append(Step("python", "pass"))
        p2.append(Step("python", "fail"))
        p3.append(Step("python", "pass"))
    # Data (Accredible, grade at least 80%): grades above and below the threshold, regrades.
    high = round(rng.uniform(0.80, 0.99), 4)
    low = round(rng.uniform(0.35, 0.7999), 4)
    if learner.index % 37 == 5:
        high = 0.80  # exactly the threshold: it counts
    r = rng.random()
    if r < 0.40:
        p1.append(Step("data", "grade", high))
    elif r < 0.52:
        p1.append(Step("data", "grade", low))
    elif r < 0.64:
        p1.append(Step("data", "grade", low))
        p2.append(Step("data", "grade", high))
    elif r < 0.77:
        p1.append(Step("data", "grade", high))
        p2.append(Step("data", "grade", low))
    elif r < 0.83:
        p1.append(Step("data", "grade", high))
        p2.append(Step("data", "grade", low))
        p3.append(Step("data", "grade", high))
    # Cloud (Credly, verified or professional certificate): some certificates are revoked later.
    r = rng.random()
    if r < 0.30:
        mode = rng.choice(("verified", "verified", "professional"))
        p1.append(Step("cloud", "cert", mode))
        if rng.random() < 0.25:
            p2.append(Step("cloud", "cert_revoked", mode))
    elif r < 0.42:
        p1.append(Step("cloud", "cert", rng.choice(("audit", "honor"))))
    # Intro (Accredible, passed, never revoked): a later failure keeps the badge.
    r = rng.random()
    if r < 0.50:
        p1.append(Step("intro", "pass"))
        if rng.random() < 0.30:
            p2.append(Step("intro", "fail"))
    elif r < 0.60:
        p1.append(Step("intro", "fail"))


def criterion_met(course: CourseSpec, step: Step) -> bool | None:
    """What a step says of the course's criterion (None: nothing, e.g. an invalid event)."""
    if step.action in ("pass", "fail"):
        return step.action == "pass"
    if step.action == "grade":
        if not 0 <= float(step.value) <= 1:
            return None
        return Decimal(str(step.value)) * 100 >= course.grade_threshold
    if step.action == "cert":
        return step.value in {mode.strip() for mode in course.certificate_modes.split(",")}
    return False  # cert_revoked


def expected_outcome(learners: list[Learner], special: dict) -> dict[tuple[int, str], str]:
    """(learner index, course code) -> the final ledger state the plugin must reach."""
    expected = {}
    for learner in learners:
        state: dict[str, str] = {}
        for phase in learner.phases:
            for step in phase:
                course = COURSE_BY_CODE[step.course]
                met = criterion_met(course, step)
                if met is None:
                    continue
                revokes = course.revoke_policy == RevokePolicy.CRITERION_UNMET
                if state.get(step.course) in (None, S.NOT_MET):
                    if met or revokes:  # a first "not met" is kept only where it can matter
                        state[step.course] = S.ISSUED if met else S.NOT_MET
                elif revokes:
                    state[step.course] = S.ISSUED if met else S.REVOKED
        for code, final in state.items():
            expected[(learner.index, code)] = final
    expected[(special["no_email"], "python")] = S.DEAD
    expected[(special["legacy"], "legacy")] = S.DEAD
    return expected


# -- output -----------------------------------------------------------------------------------------------
class Clock:
    """Elapsed time since the start of the demo."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.start


CLOCK = Clock()


def say(message: str = "") -> None:
    """A line of the story, on stdout."""
    print(message, flush=True)


def step_line(message: str) -> None:
    """A line of the story with the elapsed time."""
    say(f"[{CLOCK.elapsed():5.1f}s] {message}")


def progress(message: str) -> None:
    """An indented detail or progress line."""
    say(f"         {message}")


class DemoError(Exception):
    """An invariant of the demo does not hold."""


# -- set-up -----------------------------------------------------------------------------------------------
def fresh_database() -> Path:
    """Delete the demo database file and migrate a new one."""
    path = Path(settings.DATABASES["default"]["NAME"])
    connections.close_all()
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0, interactive=False)
    cache.clear()
    return path


def display_path(path: Path) -> str:
    """The path relative to the current directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def start_fakes() -> dict[str, ProviderHarness]:
    """Start one fake server per provider."""
    fakes = {}
    for kind in PROVIDERS:
        fakes[kind] = get_harness_class(kind)().start()
    return fakes


def set_up_providers(fakes: dict[str, ProviderHarness]) -> tuple[dict[str, object], dict[str, str]]:
    """Accounts, templates (seeded at the fakes, then synced), an account check.

    Returns the accounts by provider and the provider's template id of each course.
    """
    accounts, seeded = {}, {}
    for kind, fake in fakes.items():
        accounts[kind] = make_account(fake, name=f"{PROVIDER_NAMES[kind]} demo")
        for course in COURSES:
            if course.provider == kind:
                seeded[course.code] = fake.seed_template(course.template)
        for name, state in EXTRA_TEMPLATES[kind]:
            fake.seed_template(name, state=state)
    step_line(
        "provider accounts: "
        + ", ".join(f"{account.name} -> {account.api_base_url}" for account in accounts.values())
        + " (API tokens stored encrypted)"
    )
    for account in accounts.values():
        result = api.sync_account_templates(account.pk)
        states = Counter(BadgeTemplate.objects.filter(account=account).values_list("state", flat=True))
        step_line(
            f"template sync of {account.name}: {result.created} created, {result.updated} updated "
            f"({', '.join(f'{n} {state}' for state, n in sorted(states.items()))})"
        )
    for health in api.check_accounts():
        step_line(f"account check of {health.name}: {'ok' if health.ok else 'FAILED'} - {health.message}")
        if not health.ok:
            raise DemoError(f"the account check of {health.name} failed: {health.message}")
    return accounts, seeded


def set_up_course_badges(accounts: dict[str, object], seeded: dict[str, str]) -> dict[str, CourseBadge]:
    """Record each demo course in the course catalogue (the Studio page's courses) and attach a synced template."""
    badges = {}
    for course in COURSES:
        StandaloneCourse.objects.create(
            course_key=CourseKey.from_string(course.course_key), display_name=course.template
        )
        template = BadgeTemplate.objects.get(account=accounts[course.provider], external_id=seeded[course.code])
        badge = CourseBadge(
            course_key=CourseKey.from_string(course.course_key),
            template=template,
            criterion=course.criterion,
            grade_threshold=course.grade_threshold,
            certificate_modes=course.certificate_modes,
            revoke_policy=course.revoke_policy,
        )
        badge.full_clean()
        badge.save()
        badges[course.code] = badge
        step_line(f"course badge: {course.course_key:30} {course.template!r} at {PROVIDER_NAMES[course.provider]}")
        progress(f"{'':29}{course.describe()}")
    return badges


def archive_at_provider(fake: ProviderHarness, template: BadgeTemplate) -> None:
    """Archive a template at the fake Credly, as an administrator would, after the last sync."""
    organization_id = fake.account_fields()["organization_id"]
    fake.server.set_template_state(organization_id, template.external_id, "archived")


def create_learners(learners: list[Learner]) -> None:
    """Create the Django users in bulk."""
    user_model = get_user_model()
    unusable = make_password(None)
    user_model.objects.bulk_create(
        [
            user_model(
                username=learner.username,
                email=learner.email,
                first_name=learner.first_name,
                last_name=learner.last_name,
                password=unusable,
            )
            for learner in learners
        ],
        batch_size=500,
    )
    users = user_model.objects.in_bulk([learner.username for learner in learners], field_name="username")
    for learner in learners:
        learner.user = users[learner.username]


# -- sending events -----------------------------------------------------------------------------------------
class Deliveries:
    """Remembers every delivery of the demo's signals, so that one can be repeated as an event bus would."""

    SIGNALS = (
        "COURSE_PASSING_STATUS_UPDATED",
        "PERSISTENT_GRADE_SUMMARY_CHANGED",
        "CERTIFICATE_CREATED",
        "CERTIFICATE_REVOKED",
    )

    def __init__(self) -> None:
        self.items: list[tuple[object, object, dict]] = []
        self.signals = [getattr(learning_signals, name) for name in self.SIGNALS]

    def __call__(self, sender=None, signal=None, **kwargs) -> None:
        if kwargs.pop(SIGNAL_PROCESSED_FROM_EVENT_BUS, False):
            return
        metadata = kwargs.pop("metadata")
        self.items.append((signal, metadata, kwargs))

    def connect(self) -> None:
        """Start recording."""
        for signal in self.signals:
            signal.connect(self, dispatch_uid="badges_bridge_demo.deliveries")

    def disconnect(self) -> None:
        """Stop recording."""
        for signal in self.signals:
            signal.disconnect(dispatch_uid="badges_bridge_demo.deliveries")

    @staticmethod
    def redeliver(item: tuple[object, object, dict]) -> None:
        """Deliver an event again, with its original metadata (same event id and time)."""
        signal, metadata, payload = item
        signal.send_event_with_custom_metadata(metadata, **payload)


@dataclass
class Counters:
    """What the demo sent."""

    events: int = 0
    duplicates: int = 0
    late_duplicates: int = 0
    invalid: int = 0
    redrives: int = 0
    sending_seconds: float = 0.0


def send_step(learner: Learner, step: Step) -> None:
    """Send the openedx-events signal of one step."""
    course = CourseKey.from_string(COURSE_BY_CODE[step.course].course_key)
    user = learner.user
    if step.action in ("pass", "fail"):
        send.send_passing_status(user, course, step.action == "pass")
    elif step.action == "grade":
        send.send_grade(user, course, float(step.value))
    elif step.action == "cert":
        send.send_certificate_created(user, course, mode=str(step.value))
    else:
        send.send_certificate_revoked(user, course, mode=str(step.value))


@dataclass
class ArmedFault:
    """A fault armed at a fake, for the summary."""

    provider: str
    description: str
    fault: object

    @property
    def fired(self) -> bool:
        """Whether every armed occurrence was used."""
        return not self.fault.times


class Faults:
    """Arms faults at the fakes and remembers them."""

    def __init__(self, fakes: dict[str, ProviderHarness]) -> None:
        self.fakes = fakes
        self.armed: list[ArmedFault] = []

    def arm(self, provider: str, operation: str, description: str, kind: str = "status", **options) -> None:
        """Arm one fault (a 503 unless told otherwise) and say so."""
        options.setdefault("status", 503)
        fault = self.fakes[provider].inject(operation, kind, **options)
        self.armed.append(ArmedFault(provider, description, fault))
        progress(f"fault armed at {PROVIDER_NAMES[provider]}: {description}")


def state_counts() -> dict[str, int]:
    """Ledger rows by state, from the plugin's health function."""
    return api.ledger_health().by_state


def periodic_redrive(counters: Counters) -> int:
    """What the periodic redrive task does, run inline here; its latest run shows on the admin's health overview."""
    with api.maintenance_run(MaintenanceJob.REDRIVE) as run:
        result = api.redrive(inline=True)
        run.add(api.describe_redrive(result, inline=True), failed=bool(result.replay_failed))
    counters.redrives += len(result.ids)
    return len(result.ids)


def drift_check() -> str:
    """What the daily drift task does: compare the issued rows with the fakes (nothing should have drifted)."""
    with api.maintenance_run(MaintenanceJob.DRIFT) as run:
        changed, summary = api.drift_report()
        run.add(summary, failed=any(count < 0 for count in changed.values()))
    return summary


def progress_line(label: str, done: int, total: int, counters: Counters, redriven: int) -> None:
    """One progress line: learners done, events sent, ledger rows by state."""
    by_state = state_counts()
    parts = [f"{label} {done:3d}/{total}", f"events {counters.events:5d}"]
    parts += [f"{state} {by_state.get(state, 0)}" for state in (S.ISSUED, S.REVOKED, S.FAILED, S.DEAD)]
    parts.append(f"redrive re-ran {redriven}")
    progress("  ".join(parts))


def run_phase(
    number: int,
    title: str,
    learners: list[Learner],
    counters: Counters,
    rng: random.Random,
    hooks: dict[int, list],
    deliveries: Deliveries,
) -> None:
    """Send one phase's events, learner by learner, with the periodic redrive every 50 learners."""
    step_line(f"phase {number}/3: {title}")
    started = time.monotonic()
    total = len(learners)
    for position, learner in enumerate(learners, start=1):
        for hook in hooks.get(learner.index, ()):
            hook()
        for step in learner.phases[number - 1]:
            before = len(deliveries.items)
            send_step(learner, step)
            counters.events += 1
            if step.action == "grade" and step.value == INVALID_GRADE:
                counters.invalid += 1
            elif rng.random() < 0.01 and len(deliveries.items) > before:
                deliveries.redeliver(deliveries.items[-1])  # at-least-once delivery: the same event twice
                counters.events += 1
                counters.duplicates += 1
        if position % REDRIVE_EVERY == 0 or position == total:
            counters.sending_seconds += time.monotonic() - started
            redriven = periodic_redrive(counters)
            progress_line("learners", position, total, counters, redriven)
            started = time.monotonic()
    counters.sending_seconds += time.monotonic() - started


def drain(counters: Counters) -> int:
    """Run the redrive until no ledger row is open; return the number of rounds."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    rounds = 0
    while True:
        result = api.redrive(inline=True)
        counters.redrives += len(result.ids)
        open_rows = BadgeIssuance.objects.filter(state__in=OPEN_STATES)
        remaining = open_rows.count()
        if result.ids or remaining:
            rounds += 1
        if not remaining:
            if result.ids:
                progress(f"redrive round {rounds}: re-ran {len(result.ids)} rows; no row left open")
            return rounds
        next_due = (
            open_rows.filter(next_attempt_at__isnull=False)
            .order_by("next_attempt_at")
            .values_list("next_attempt_at", flat=True)
        ).first()
        wait = (next_due - timezone.now()).total_seconds() if next_due else 0.2
        wait = min(max(wait, 0.05), 2.0)
        progress(
            f"redrive round {rounds}: re-ran {len(result.ids)} rows; "
            f"{remaining} still open, next one due in {wait:.1f}s"
        )
        if time.monotonic() + wait > deadline:
            states = Counter(open_rows.values_list("state", flat=True))
            raise DemoError(
                f"{remaining} ledger rows are still open after {DRAIN_TIMEOUT_SECONDS:.0f}s of redrive: {dict(states)}"
            )
        time.sleep(wait)


# -- checks and summary -------------------------------------------------------------------------------------
def _award_key(kind: str, award: dict) -> tuple[str, str]:
    """(template id, recipient e-mail) of a badge in the form the fake's ``all_awards`` gives it."""
    if kind == "credly":
        return str(award["badge_template_id"]), award["recipient_email"].lower()
    return str(award["group_id"]), award["recipient"]["email"].lower()


def live_index(kind: str, fake: ProviderHarness) -> dict[tuple[str, str], list[str]]:
    """The fake's live badges: (template id, e-mail) -> badge ids (read once: the fakes copy on every read)."""
    index: dict[tuple[str, str], list[str]] = defaultdict(list)
    for award in fake.all_awards():
        if fake.award_state(str(award["id"])).is_live:
            index[_award_key(kind, award)].append(str(award["id"]))
    return index


def check_invariants(
    learners: list[Learner],
    expected: dict[tuple[int, str], str],
    badges: dict[str, CourseBadge],
    fakes: dict[str, ProviderHarness],
    counters: Counters,
) -> list[str]:
    """Every problem found (empty: the demo succeeded)."""
    problems = []
    for kind, fake in fakes.items():
        if fake.duplicates_created():
            problems.append(f"the fake {PROVIDER_NAMES[kind]} stored {fake.duplicates_created()} duplicate badges")
    open_rows = BadgeIssuance.objects.filter(state__in=OPEN_STATES).count()
    if open_rows:
        problems.append(f"{open_rows} ledger rows are not in a final state")
    live_badges = {kind: live_index(kind, fake) for kind, fake in fakes.items()}
    by_user = {learner.user.pk: learner for learner in learners}
    code_of = {badge.pk: code for code, badge in badges.items()}
    rows = {
        (by_user[row.user_id].index, code_of[row.course_badge_id]): row
        for row in BadgeIssuance.objects.select_related("course_badge__template")
    }
    for key in sorted(set(expected) | set(rows)):
        want, row = expected.get(key), rows.get(key)
        learner, code = learners[key[0]], key[1]
        got = row.state if row else None
        if want != got:
            problems.append(f"{learner.username} in {code}: the ledger says {got or 'no row'}, expected {want}")
            continue
        course = COURSE_BY_CODE[code]
        if row is None or not learner.email:
            continue
        live = live_badges[course.provider].get((row.course_badge.template.external_id, learner.email.lower()), [])
        if row.state == S.ISSUED and live != [row.external_id]:
            problems.append(
                f"{learner.username} in {code}: issued as {row.external_id!r}, but the fake holds "
                f"{len(live)} live badges {live}"
            )
        if row.state in (S.REVOKED, S.DEAD) and live:
            problems.append(f"{learner.username} in {code}: {row.state} in the ledger, but {len(live)} live badges")
    for kind in fakes:
        issued = BadgeIssuance.objects.filter(state=S.ISSUED, course_badge__template__account__provider=kind).count()
        live = sum(len(ids) for ids in live_badges[kind].values())
        if issued != live:
            problems.append(f"{PROVIDER_NAMES[kind]}: {issued} badges issued in the ledger, {live} live at the fake")
    rejected = RejectedEvent.objects.count()
    if rejected != counters.invalid:
        reasons = list(RejectedEvent.objects.values_list("reason", flat=True)[:3])
        problems.append(f"{rejected} rejected events recorded, {counters.invalid} expected: {reasons}")
    return problems


# -- the provider's state flows back; a learner retires ----------------------------------------------------
class BadgeEvents:
    """Counts the BADGE_AWARDED and BADGE_REVOKED events the plugin sends."""

    def __init__(self) -> None:
        self.sent: Counter = Counter()
        #: Badges announced and then erased with their retired learner (no BADGE_REVOKED is sent for them).
        self.erased = 0

    def __call__(self, sender=None, signal=None, **kwargs) -> None:
        self.sent[signal.event_type.rsplit(".", 2)[-2]] += 1

    def connect(self) -> None:
        for name in ("BADGE_AWARDED", "BADGE_REVOKED"):
            getattr(learning_signals, name).connect(self, weak=False, dispatch_uid=f"demo.badge_events.{name}")

    def disconnect(self) -> None:
        for name in ("BADGE_AWARDED", "BADGE_REVOKED"):
            getattr(learning_signals, name).disconnect(dispatch_uid=f"demo.badge_events.{name}")


def notify_all(fake: ProviderHarness, url: str, events: list[dict]) -> list[int]:
    """Post Credly's stub of each event to the webhook URL (in this process, as the LMS would receive it)."""
    client = Client(HTTP_HOST="localhost")
    path = url.removeprefix(settings.LMS_ROOT_URL)

    def post(_url: str, body: bytes) -> int:
        return client.post(path, data=body, content_type="application/json").status_code

    return [fake.notify(url, event, post=post) for event in events]


def provider_state_phase(
    learners: list[Learner], accounts: dict[str, object], fakes: dict[str, ProviderHarness], badge_events: BadgeEvents
) -> list[str]:
    """Acceptances, privacy changes and rejections flow back from Credly; a learner retires. Returns problems."""
    problems: list[str] = []
    credly = fakes["credly"]
    python = COURSE_BY_CODE["python"]
    rows = list(
        BadgeIssuance.objects.filter(state=S.ISSUED, course_badge__course_key=python.course_key).order_by("id")[:6]
    )
    if len(rows) < 6:
        return [f"only {len(rows)} issued badges of {python.code} to notify about"]
    accepted, private, rejected = rows[:3], rows[3], rows[4:]
    before = len(credly.events())
    for row in accepted:
        credly.set_award_state(row.external_id, AwardState.ACCEPTED)
    credly.server.set_badge_privacy(credly.organization().id, private.external_id, public=False)
    for row in rejected:
        credly.set_award_state(row.external_id, AwardState.REJECTED)
    url = webhooks.webhook_url(accounts["credly"])
    changes = credly.events()[before:]
    statuses = notify_all(credly, url, [*reversed(changes), changes[0]])  # out of order, one delivered twice
    statuses += notify_all(credly, url, [{**changes[0], "id": "forged-event-id"}])
    step_line(
        f"Credly posted {len(statuses)} notifications to the webhook (3 accepted, 1 private, 2 rejected, "
        f"out of order, one twice, one forged): HTTP {sorted(Counter(statuses).items())}"
    )
    if set(statuses) != {200}:
        problems.append(f"the webhook answered {statuses}")
    for row in accepted:
        if BadgeIssuance.objects.get(pk=row.pk).provider_state != "accepted":
            problems.append(f"issuance {row.pk}: the acceptance did not reach the ledger")
    if BadgeIssuance.objects.get(pk=private.pk).provider_public is not False:
        problems.append(f"issuance {private.pk}: the privacy change did not reach the ledger")
    by_user = {learner.user.pk: learner for learner in learners}
    for row in rejected:
        send.send_passing_status(by_user[row.user_id].user, CourseKey.from_string(python.course_key), True)
    for row in rejected:
        current = BadgeIssuance.objects.get(pk=row.pk)
        if (current.state, current.award_number) != (S.REJECTED, row.award_number):
            problems.append(f"issuance {row.pk}: {current.state} after a rejection and a new passing event")
    step_line("the ledger follows Credly: 3 accepted, 1 private, 2 rejected (and still rejected after passing again)")
    problems += retire_one(learners, fakes, badge_events)
    return problems


def retire_one(learners: list[Learner], fakes: dict[str, ProviderHarness], badge_events: BadgeEvents) -> list[str]:
    """Retire the learner holding the most badges; check that nothing of them is left, here or at the fakes."""
    holders = Counter(BadgeIssuance.objects.filter(state=S.ISSUED).values_list("user_id", flat=True))
    user_id = holders.most_common(1)[0][0]
    learner = next(learner for learner in learners if learner.user.pk == user_id)
    records = IssuedBadge.objects.filter(issuance__user_id=user_id)
    badge_ids = set(records.values_list("external_id", flat=True))
    badge_events.erased += records.filter(announced=True).count()
    compat.USER_RETIRE_LMS_CRITICAL.send(sender=None, user=learner.user)
    problems = []
    secrets = {learner.email, learner.first_name + " " + learner.last_name, *badge_ids}
    for model in django_apps.get_app_config("badges_bridge").get_models():
        for record in model.objects.values():
            if record.get("user_id") == user_id:
                problems.append(f"{model.__name__} still names the retired learner")
            problems += [f"{model.__name__} still holds {value!r}" for value in secrets if value in str(record)]
    still_live = [
        external_id
        for external_id in badge_ids
        if any(fake.award_state(external_id) != AwardState.DELETED for fake in fakes.values())
    ]
    if still_live or ProviderCleanup.objects.exists():
        problems.append(f"the retired learner's badges are still at the providers: {still_live}")
    step_line(
        f"{learner.username} retired: {len(badge_ids)} badge(s) deleted at the providers, no personal data left "
        f"({BadgeIssuance.objects.filter(state=S.RETIRED).count()} anonymous ledger rows kept for counts)"
    )
    return problems


def check_badge_events(badge_events: BadgeEvents) -> list[str]:
    """Every badge announced and not withdrawn is an issued row's live badge, and the other way round."""
    announced = IssuedBadge.objects.filter(announced=True).count()
    issued = BadgeIssuance.objects.filter(state=S.ISSUED).exclude(external_id="").count()
    awarded, revoked = badge_events.sent["awarded"], badge_events.sent["revoked"]
    step_line(f"Open edX events sent: {awarded} BADGE_AWARDED, {revoked} BADGE_REVOKED")
    if awarded - revoked != announced + badge_events.erased or announced != issued:
        return [f"{awarded} awarded - {revoked} revoked events, {announced} announced badges, {issued} issued rows"]
    return []


def summary(
    fakes: dict[str, ProviderHarness],
    faults: Faults,
    counters: Counters,
    learner_count: int,
    rounds: int,
) -> None:
    """Print the summary table and the details."""
    rows = list(BadgeIssuance.objects.select_related("course_badge__template__account", "user").order_by("id"))
    failed_attempts = Counter(
        AuditEntry.objects.filter(to_state=S.FAILED).values_list(
            "issuance__course_badge__template__account__provider", flat=True
        )
    )
    table: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        kind = row.course_badge.template.account.provider
        for column in (kind, "total"):
            table[column]["ledger rows"] += 1
            table[column][row.state] += 1
            table[column]["retried"] += row.attempts > 1
    for kind, fake in fakes.items():
        live = sum(len(ids) for ids in live_index(kind, fake).values())
        for column in (kind, "total"):
            table[column]["failed"] += failed_attempts[kind]
            table[column]["live"] += live
            table[column]["duplicates"] += fake.duplicates_created()
    lines = [
        ("ledger rows", "ledger rows"),
        ("issued", S.ISSUED),
        ("revoked", S.REVOKED),
        ("rejected by the learner", S.REJECTED),
        ("dead (need an operator)", S.DEAD),
        ("retried rows (attempts > 1)", "retried"),
        ("failed attempts, all retried", "failed"),
        ("live badges at the fake", "live"),
        ("duplicates created at the fake", "duplicates"),
    ]
    say()
    say("Summary")
    say("=======")
    header = f"{'':32}{'Credly':>10}{'Accredible':>12}{'Total':>10}"
    say(header)
    for label, key in lines:
        say(f"{label:32}{table['credly'][key]:>10}{table['accredible'][key]:>12}{table['total'][key]:>10}")
    say()
    dead = [row for row in rows if row.state == S.DEAD]
    say(f"Dead rows ({len(dead)}), each with its reason:")
    for row in dead:
        who = row.user.username + ("" if row.user.email else " (no e-mail address)")
        reason = textwrap.shorten(row.last_error, 240, placeholder="...")
        say(
            textwrap.fill(
                f"#{row.pk} {who}, {row.course_badge.course_key}: {reason}",
                110,
                initial_indent="  ",
                subsequent_indent="      ",
            )
        )
    rejected = list(RejectedEvent.objects.order_by("id"))
    say(f"Rejected events recorded ({len(rejected)}):")
    for event in rejected[:5]:
        say(textwrap.fill(f"{event.event_type}: {event.reason}", 110, initial_indent="  ", subsequent_indent="      "))
    audits = AuditEntry.objects.values_list("message", flat=True)
    adopted = audits.filter(message__contains="adopted").count()
    cancelled = audits.filter(message__contains="revoke cancelled").count()
    say(f"Lost answers recovered by adopting the badge already at the provider: {adopted}")
    if cancelled:
        say(f"Revokes cancelled because the learner qualified again before they ran: {cancelled}")
    say("Faults injected at the fakes:")
    for armed in faults.armed:
        say(f"  {PROVIDER_NAMES[armed.provider]:10} {armed.description} - {'fired' if armed.fired else 'not used'}")
    rate = counters.events / counters.sending_seconds if counters.sending_seconds else 0.0
    say(
        f"Events: {counters.events} delivered to {learner_count} learners "
        f"({counters.duplicates} duplicated deliveries, {counters.late_duplicates} late redeliveries, "
        f"{counters.invalid} invalid payloads) in {counters.sending_seconds:.1f}s: {rate:.0f} events/s, "
        "badge calls to the fakes included"
    )
    say(f"Redrive: {counters.redrives} rows re-run, {rounds} rounds after the last event")


NEXT_STEPS = """
Next steps
==========
The demo database stays in {db} until the next run. To browse it in the Django admin
(ledger rows with their audit trail, course badges, accounts, rejected events):

    python demo/manage.py createsuperuser
    python demo/manage.py runserver

then open http://127.0.0.1:8000/admin/badges_bridge/healthoverview/ (the health overview: what is
healthy, what is dead and why, what to do next; every count links to the ledger rows).

The course team's Studio page of a course is, for example,
http://127.0.0.1:8000/badges_bridge/studio/{studio_course}/ (signed in as the superuser; give
other users a course role in the admin's *Standalone course roles*): its badges, the form to add
and edit them, preview, backfill, approvals and manual awards.

A learner's page is http://127.0.0.1:8000/badges_bridge/my-badges/ (and the learner API
http://127.0.0.1:8000/api/badges_bridge/v1/badges/) when signed in as that learner at
http://127.0.0.1:8000/accounts/login/ (give one a password with:
python demo/manage.py changepassword learner001).

The fake Credly and Accredible servers stopped with the demo, so admin actions that call a
provider (test connection, sync templates, retry, revoke) fail on the demo accounts, and say so:
"Could not reach Credly (127.0.0.1:...)". Add an account with a real (sandbox) API token to try
them. The health overview also says that the redrive has not run for a while: no Celery beat
runs after the demo.
"""


# -- main -----------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=300, help="number of learners (default: 300)")
    parser.add_argument("--seed", type=int, default=2026, help="random seed of the scenario (default: 2026)")
    args = parser.parse_args(argv)
    if args.learners < 60:
        parser.error("--learners must be at least 60")
    return args


def first_learner(learners: list[Learner], start: int, predicate) -> int | None:
    """Index of the first learner from ``start`` on that satisfies ``predicate``."""
    return next((learner.index for learner in learners[start:] if predicate(learner)), None)


def build_hooks(learners: list[Learner], faults: Faults) -> list[dict[int, object]]:
    """Per phase, {learner index: callable run just before that learner's events}."""
    count = len(learners)

    def first_step(learner: Learner, phase: int, course: str, action: str) -> bool:
        steps = learner.phases[phase]
        return bool(steps) and steps[0].course == course and steps[0].action == action

    # A learner whose Python pass is the next Credly badge creation and who keeps the badge:
    # the fake creates the badge but the answer is lost; the retry must adopt it.
    lost = first_learner(
        learners,
        count // 2,
        lambda le: first_step(le, 0, "python", "pass") and not le.phases[1] and not le.phases[2] and le.email,
    )
    hooks: list[dict[int, list]] = [defaultdict(list), defaultdict(list), defaultdict(list)]

    def at(phase: int, index: int, provider: str, operation: str, description: str, **options) -> None:
        hooks[phase][index].append(lambda: faults.arm(provider, operation, description, **options))

    at(0, count // 10, "credly", "issue", "the next 2 badge creations answer 503 Service Unavailable", times=2)
    at(0, count // 4, "accredible", "issue", "the next credential creation answers 503")
    at(0, count // 4, "accredible", "find", "the next credential search answers 503")
    at(
        0,
        count * 2 // 5,
        "accredible",
        "issue",
        "the next credential creation answers 429 Too Many Requests, Retry-After: 1",
        status=429,
        headers={"Retry-After": "1"},
        body={"error": "Rate limit exceeded"},
    )
    if lost is not None:
        description = f"the next badge creation ({learners[lost].username}) is stored, then answers 502 (lost answer)"
        at(0, lost, "credly", "issue", description, kind="commit_then_fail", status=502)
    at(0, count * 3 // 4, "credly", "find", "the next badge search answers 503")
    at(1, count // 10, "credly", "revoke", "the next revoke answers 503")
    at(1, count // 3, "accredible", "revoke", "the next credential expiry (PUT) answers 500", status=500)
    at(2, count // 5, "credly", "issue", "the next badge creation answers 503")
    # Faults on the last badges of the run, so that the final redrive has retries to wait for.

    def last_learner(course: str) -> int | None:
        for learner in reversed(learners):
            step = next((step for step in learner.phases[2] if step.course == course), None)
            if step is not None and criterion_met(COURSE_BY_CODE[course], step) and learner.email:
                return learner.index
        return None

    late_credly, late_accredible = last_learner("python"), last_learner("data")
    if late_credly is not None:
        at(2, late_credly, "credly", "issue", "the next badge creation answers 503")
    if late_accredible is not None:
        at(
            2,
            late_accredible,
            "accredible",
            "issue",
            "the next credential creation answers 429 Too Many Requests, Retry-After: 1",
            status=429,
            headers={"Retry-After": "1"},
            body={"error": "Rate limit exceeded"},
        )
    return hooks


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when every invariant holds."""
    args = parse_args(argv)
    rng = random.Random(args.seed)
    say("badges_bridge demo: SQLite, in-process Celery, fake Credly and Accredible servers on 127.0.0.1")
    db = fresh_database()
    step_line(f"fresh database {display_path(db)} migrated")
    fakes = start_fakes()
    deliveries = Deliveries()
    badge_events = BadgeEvents()
    cleanup = ExitStack()
    try:
        step_line(
            "fake servers: "
            + ", ".join(f"{PROVIDER_NAMES[kind]} on {fake.server.base_url}" for kind, fake in fakes.items())
        )
        accounts, seeded = set_up_providers(fakes)
        badges = set_up_course_badges(accounts, seeded)
        legacy = badges["legacy"].template
        archive_at_provider(fakes["credly"], legacy)
        step_line(f"template {legacy.name!r} archived at Credly after the sync (its badges will be refused)")

        learners, special = plan_learners(args.learners, rng)
        create_learners(learners)
        expected = expected_outcome(learners, special)
        step_line(f"{len(learners)} learners created ({learners[special['no_email']].username} has no e-mail address)")
        connected = cleanup.enter_context(plugin_receivers_connected())
        deliveries.connect()
        badge_events.connect()
        step_line(f"plugin receivers connected to {len(connected)} openedx-events signals")

        counters = Counters()
        faults = Faults(fakes)
        hooks = build_hooks(learners, faults)
        titles = [
            "learners finish courses (passing status, grades, certificates)",
            "regrades, revoked certificates, failed courses, invalid grade events",
            "some learners pass again; late redeliveries of old events",
        ]
        for number, title in enumerate(titles, start=1):
            run_phase(number, title, learners, counters, rng, hooks[number - 1], deliveries)
        # Late redeliveries: an event bus replays events from phase 1; they are older than
        # what the ledger applied since and must change nothing.
        first_phase_items = deliveries.items[: max(1, len(deliveries.items) // 3)]
        started = time.monotonic()
        for item in rng.sample(first_phase_items, min(8, len(first_phase_items))):
            deliveries.redeliver(item)
            counters.events += 1
            counters.late_duplicates += 1
        counters.sending_seconds += time.monotonic() - started
        progress(f"{counters.late_duplicates} events of phase 1 delivered again")

        step_line("draining: redrive until every ledger row is final")
        rounds = drain(counters)
        step_line("every ledger row is final")
        step_line(f"drift check: {drift_check()}")

        problems = check_invariants(learners, expected, badges, fakes, counters)
        summary(fakes, faults, counters, len(learners), rounds)

        step_line("phase 4: the provider's state flows back, a learner retires")
        problems += provider_state_phase(learners, accounts, fakes, badge_events)
        problems += check_badge_events(badge_events)
    finally:
        badge_events.disconnect()
        deliveries.disconnect()
        cleanup.close()
        for fake in fakes.values():
            fake.stop()
        connections.close_all()
    say(f"Elapsed: {CLOCK.elapsed():.1f}s")
    if problems:
        say()
        say(f"FAILED: {len(problems)} invariant(s) do not hold:")
        for problem in problems[:25]:
            say(f"  - {problem}")
        return 1
    say(
        "All invariants hold: every qualifying learner holds exactly one live badge, revoked ones none, "
        "no duplicate at either fake, no ledger row left open; the ledger follows Credly's notifications, a "
        "rejected badge stays rejected, the retired learner left nothing behind, and the Open edX events match."
    )
    say(NEXT_STEPS.format(db=display_path(db), studio_course=COURSES[0].course_key).rstrip())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DemoError as failure:
        print(f"\nDEMO FAILED: {failure}", file=sys.stderr, flush=True)
        sys.exit(1)
