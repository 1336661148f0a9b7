"""Helpers of the integration tests: the run mode, sending real events, waiting for the ledger to settle."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from openedx_events.learning.signals import COURSE_PASSING_STATUS_UPDATED

from badges_bridge import api
from badges_bridge.models import AuditEntry, AwardStatus, BadgeIssuance, CourseBadge, IssuanceState, IssuedBadge
from badges_bridge.testing.events import passing_status_data

if TYPE_CHECKING:
    from openedx_events.data import EventsMetadata

    from badges_bridge.testing.harness import ProviderHarness

#: Provider kinds every chain test runs against.
KINDS = ("credly", "accredible")

#: Tasks run in a real worker process, through Redis, against MariaDB.
WORKER_MODE = os.environ.get("BADGES_BRIDGE_TEST_CELERY") == "worker"
#: The database is MariaDB/MySQL rather than SQLite.
MYSQL_MODE = os.environ.get("BADGES_BRIDGE_TEST_DB") == "mysql"
#: Missing services fail the run instead of skipping it.
REQUIRE_SERVICES = os.environ.get("BADGES_BRIDGE_REQUIRE_SERVICES") == "1"

S = IssuanceState
#: Ledger states in which work is still to be done.
ACTIVE_STATES = (S.PENDING, S.ISSUING, S.FAILED, S.REVOKE_PENDING)


class DrainTimeoutError(AssertionError):
    """The ledger did not settle in time."""


def active_rows() -> list[dict[str, Any]]:
    """Ledger rows that still have work to do, a task working on them or badges waiting for a reconcile."""
    unconfirmed = IssuedBadge.objects.filter(issuance=OuterRef("pk"), status=AwardStatus.UNCONFIRMED)
    return list(
        BadgeIssuance.objects.filter(Q(state__in=ACTIVE_STATES) | ~Q(lease_token="") | Exists(unconfirmed))
        .order_by("id")
        .values("id", "state", "operation", "attempts", "next_attempt_at", "lease_expires_at", "last_error")
    )


def _eager_pause(rows: list[dict[str, Any]], deadline: float) -> float:
    """How long to wait before the next inline redrive: until the earliest retry is due, in short steps."""
    now = timezone.now()
    waits = [(row["next_attempt_at"] - now).total_seconds() for row in rows if row["next_attempt_at"]]
    wait = min((w for w in waits if w > 0), default=0.2)
    return max(0.01, min(wait + 0.01, 0.5, deadline - time.monotonic()))


def drain(timeout: float = 30.0, *, worker=None, workers: Iterable = ()) -> None:
    """Wait until no ledger row is pending, issuing, failed or revoke-pending, or held by a task.

    Eager mode: run the due work in this process (``api.redrive(inline=True)``),
    sleeping until the next retry is due. Worker mode (``worker``, or the
    ``workers`` started by a fault test): poll the database while the workers
    work, checking that they are alive, and queue the due work every second as
    the periodic redrive would. Raises DrainTimeoutError with the unsettled
    rows on timeout.
    """
    workers = [worker, *workers] if worker is not None else list(workers)
    deadline = time.monotonic() + timeout
    next_redrive = 0.0
    while True:
        rows = active_rows()
        if not rows:
            return
        if time.monotonic() >= deadline:
            raise DrainTimeoutError(f"the ledger did not settle within {timeout:.0f}s; rows with work left: {rows}")
        if workers:
            for each in workers:
                each.check_alive()
            if time.monotonic() >= next_redrive:
                api.redrive()
                next_redrive = time.monotonic() + 1.0
            time.sleep(0.05)
        elif not api.redrive(inline=True).ids:
            time.sleep(_eager_pause(rows, deadline))


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "the condition") -> Any:
    """Poll ``predicate`` until it returns something true; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


class EventRecorder:
    """A receiver that keeps the metadata of every event sent, to check the evidence in the ledger."""

    def __init__(self) -> None:
        self.metadata: list[EventsMetadata] = []

    def __call__(self, sender: Any = None, signal: Any = None, **kwargs: Any) -> None:
        self.metadata.append(kwargs["metadata"])


class Events:
    """Sends COURSE_PASSING_STATUS_UPDATED as the LMS does, or redelivers one as an event bus consumer does.

    ``send_robust=False`` makes an exception in any receiver fail the test
    instead of being swallowed by openedx-events.
    """

    def __init__(self, recorder: EventRecorder) -> None:
        self.recorder = recorder

    def passing(self, user, course_key, is_passing: bool = True) -> EventsMetadata:
        """Send a fresh event; return its metadata."""
        before = len(self.recorder.metadata)
        COURSE_PASSING_STATUS_UPDATED.send_event(
            send_robust=False, course_passing_status=passing_status_data(user, course_key, is_passing)
        )
        assert len(self.recorder.metadata) == before + 1, "the event reached no receiver"
        return self.recorder.metadata[-1]

    def passing_at(self, user, course_key, is_passing: bool, time: datetime) -> EventsMetadata:
        """Deliver an event that happened at ``time`` (late, or out of order), as an event bus consumer does."""
        from openedx_events.data import EventsMetadata

        metadata = EventsMetadata(event_type=COURSE_PASSING_STATUS_UPDATED.event_type, minorversion=0, time=time)
        self.redeliver(metadata, user, course_key, is_passing)
        return metadata

    def redeliver(self, metadata: EventsMetadata, user, course_key, is_passing: bool = True) -> None:
        """Deliver an event again with the very same metadata (id and time)."""
        COURSE_PASSING_STATUS_UPDATED.send_event_with_custom_metadata(
            metadata, send_robust=False, course_passing_status=passing_status_data(user, course_key, is_passing)
        )


@dataclass
class World:
    """A course with one badge, wired to a fake provider."""

    harness: ProviderHarness
    badge: CourseBadge

    @property
    def course_key(self):
        return self.badge.course_key

    @property
    def template_id(self) -> str:
        return self.badge.template.external_id

    def learner(self, username: str = "ada", email: str | None = None, **fields: Any):
        """A learner with a name and (unless ``email=""``) an e-mail address."""
        fields.setdefault("first_name", username.capitalize())
        fields.setdefault("last_name", "Tester")
        return get_user_model().objects.create_user(
            username=username, email=f"{username}@example.com" if email is None else email, **fields
        )

    def row(self, user) -> BadgeIssuance:
        return BadgeIssuance.objects.get(user=user, course_badge=self.badge)

    def live(self, user) -> list[dict]:
        """The learner's live badges of this template at the fake."""
        return self.harness.live_awards(self.template_id, user.email)

    def live_ids(self, user) -> list[str]:
        return [str(award["id"]) for award in self.live(user)]

    def transitions(self, row: BadgeIssuance) -> list[tuple[str, str]]:
        return list(AuditEntry.objects.filter(issuance=row).order_by("id").values_list("from_state", "to_state"))

    def assert_one_live_badge(self, user) -> dict:
        """Exactly one live badge at the fake, no duplicate ever stored; return it."""
        awards = self.live(user)
        assert len(awards) == 1, f"expected exactly one live badge, the fake holds {awards}"
        assert self.harness.duplicates_created() == 0
        return awards[0]
