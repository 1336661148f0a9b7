"""Plain data classes passed between the layers of badges_bridge (no ORM objects)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from opaque_keys.edx.keys import CourseKey


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
