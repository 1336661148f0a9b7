"""Plain data classes passed between the layers of badges_bridge (no ORM objects)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from opaque_keys import InvalidKeyError
from opaque_keys.edx.keys import CourseKey

from badges_bridge.exceptions import InvalidEventError


class EventKind(enum.StrEnum):
    """The families of learning events that can decide a criterion."""

    PASSING_STATUS = "passing_status"
    GRADE = "grade"
    CERTIFICATE = "certificate"


@dataclass(frozen=True)
class LearnerEvent:
    """A learning event reduced to what criteria need; built from openedx-events payloads."""

    event_id: str
    event_type: str
    occurred_at: datetime
    kind: EventKind
    user_id: int
    #: The course whose badge configuration applies (the master course of a CCX).
    course_key: CourseKey
    #: The course run the event came from (a CCX key, or the same as course_key).
    run_key: str
    is_passing: bool | None = None
    #: Percent grade, 0 to 100.
    percent_grade: Decimal | None = None
    certificate_mode: str = ""
    certificate_status: str = ""
    certificate_revoked: bool = False

    def to_payload(self) -> dict[str, Any]:
        """The event as JSON-ready data, for a later replay: ids and facts, never a name or an e-mail address."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "occurred_at": self.occurred_at.isoformat(),
            "kind": self.kind.value,
            "user_id": self.user_id,
            "course_key": str(self.course_key),
            "run_key": self.run_key,
            "is_passing": self.is_passing,
            "percent_grade": None if self.percent_grade is None else str(self.percent_grade),
            "certificate_mode": self.certificate_mode,
            "certificate_status": self.certificate_status,
            "certificate_revoked": self.certificate_revoked,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> LearnerEvent:
        """Rebuild an event from :meth:`to_payload`; raises InvalidEventError when the data cannot be read."""
        try:
            percent = payload.get("percent_grade")
            return cls(
                event_id=str(payload["event_id"]),
                event_type=str(payload["event_type"]),
                occurred_at=datetime.fromisoformat(payload["occurred_at"]),
                kind=EventKind(payload["kind"]),
                user_id=int(payload["user_id"]),
                course_key=CourseKey.from_string(payload["course_key"]),
                run_key=str(payload["run_key"]),
                is_passing=payload.get("is_passing"),
                percent_grade=None if percent is None else Decimal(percent),
                certificate_mode=str(payload.get("certificate_mode", "")),
                certificate_status=str(payload.get("certificate_status", "")),
                certificate_revoked=bool(payload.get("certificate_revoked", False)),
            )
        except (KeyError, TypeError, ValueError, ArithmeticError, InvalidKeyError) as err:
            raise InvalidEventError(f"the stored event cannot be read: {type(err).__name__}: {err}") from err


@dataclass(frozen=True)
class BadgeRule:
    """The cached, ORM-free view of one enabled course badge."""

    course_badge_id: int
    criterion: str
    grade_threshold: Decimal | None
    certificate_modes: frozenset[str]
    revoke_policy: str
    version: int


@dataclass
class SyncResult:
    """What a template sync changed."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    missing: int = 0


@dataclass
class RedriveResult:
    """Rows queued again by a redrive, per operation."""

    issue: int = 0
    revoke: int = 0
    #: Rows whose badges, changed by a worker that had lost its lease, were queued for a check.
    reconcile: int = 0
    ids: list[int] = field(default_factory=list)
    #: Rejected events replayed with success, and replays that failed (see ReplayResult).
    replayed: int = 0
    replay_failed: int = 0
    #: Provider notifications queued again for their fetch (retries, lost tasks).
    provider_events: int = 0
    #: Badges of retired learners due for their clean-up at the provider (the clean-up task was run or queued).
    cleanups: int = 0


@dataclass(frozen=True)
class RejectedEventSummary:
    """A rejected event as a replay sees it (after the replay, in a ReplayResult)."""

    id: int
    event_id: str
    event_type: str
    #: "invalid", "waiting", "replayed" or "failed" (see RejectedEventStatus).
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str


@dataclass
class ReplayResult:
    """What a replay of rejected events did."""

    #: Events processed with success.
    replayed: int = 0
    #: Events whose replay failed again (waiting for a later retry, or failed for good).
    failed: int = 0
    #: Events asked for by id that cannot be replayed (invalid, already replayed, not due, failed or unknown).
    skipped: int = 0
    #: The events taken, in the order they were replayed, as they are now.
    events: list[RejectedEventSummary] = field(default_factory=list)


@dataclass(frozen=True)
class AccountHealth:
    """Result of checking one provider account."""

    account_id: int
    name: str
    ok: bool
    message: str


@dataclass(frozen=True)
class LearnerBadge:
    """A badge as shown to its learner."""

    course_key: str
    name: str
    description: str
    image_url: str
    provider: str
    #: "processing", "issued", "revoked" or "rejected".
    status: str
    public_url: str
    issued_at: datetime | None
    revoked_at: datetime | None

    def as_dict(self) -> dict:
        """JSON-ready representation."""
        return {
            "course_key": self.course_key,
            "name": self.name,
            "description": self.description,
            "image_url": self.image_url,
            "provider": self.provider,
            "status": self.status,
            "public_url": self.public_url,
            "issued_at": self.issued_at.isoformat() if self.issued_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class RetirementResult:
    """What the retirement of one learner erased locally and queued for the providers."""

    #: False when the learner had already been retired (the retirement signals may repeat).
    new: bool
    #: Ledger rows erased (kept anonymous, in state "retired").
    rows: int
    #: Rejected events erased.
    rejected_events: int
    #: Provider badges queued for revocation or deletion.
    badges: int
