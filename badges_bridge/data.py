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
class SeriesCourse:
    """One course of a series and the condition it must meet."""

    course_key: CourseKey
    criterion: str
    grade_threshold: Decimal | None = None
    certificate_modes: frozenset[str] = frozenset()

    @classmethod
    def from_dict(cls, item: dict[str, Any]) -> SeriesCourse:
        """Parse one stored item of ``CourseBadge.series`` (validated by CourseBadge.clean)."""
        threshold = item.get("grade_threshold")
        return cls(
            course_key=CourseKey.from_string(str(item["course_key"])),
            criterion=str(item["criterion"]),
            grade_threshold=Decimal(str(threshold)) if threshold not in (None, "") else None,
            certificate_modes=frozenset(str(mode) for mode in item.get("certificate_modes") or ()),
        )


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
    #: The course the badge belongs to ('' in rules built by hand for one course).
    course_key: str = ""
    #: For a series: its courses and how many of them must be met (0: all).
    series: tuple[SeriesCourse, ...] = ()
    series_required: int = 0
    #: The window in which meeting the criterion earns the badge (None: open on that side).
    earned_after: datetime | None = None
    earned_before: datetime | None = None
    requires_approval: bool = False


@dataclass
class ReviewResult:
    """What an approval or a decline of awards did (see :func:`badges_bridge.api.approve_awards`)."""

    #: The ledger rows approved (or declined).
    done: list[int] = field(default_factory=list)
    #: The rows left as they were, each with why (not awaiting approval, another course badge...).
    skipped: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class SyncResult:
    """What a template sync changed."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    missing: int = 0

    def describe(self) -> str:
        """The counts in words, e.g. "2 new, 1 updated, 5 unchanged, 0 no longer at the provider"."""
        return (
            f"{self.created} new, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.missing} no longer at the provider"
        )


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
    #: Whether the backfill feeder was started again (backfill rows wait and no feeder run was queued).
    backfill_feeder: bool = False
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
class CourseGrade:
    """A learner's course grade as the platform persisted it (or as the plugin recorded it)."""

    #: Percent, 0 to 100; None when only the passing status is known.
    percent: Decimal | None
    #: Whether the learner passed; None when not known.
    passed: bool | None


@dataclass(frozen=True)
class CourseCertificate:
    """A learner's certificate in a course."""

    #: The enrollment mode of the certificate ("verified", "audit"...); '' when not known.
    mode: str
    #: The platform's certificate status ("downloadable" means earned).
    status: str


@dataclass(frozen=True)
class CourseStanding:
    """A learner's grade and certificate in one course, read in bulk (see ``compat.course_standings``)."""

    grade: CourseGrade | None = None
    certificate: CourseCertificate | None = None


@dataclass
class QualifierPreview:
    """How many learners already meet a course badge's criterion (see ``api.preview_course_badge``)."""

    #: Learners who meet the criterion now (within the badge's window, judged now).
    qualify: int = 0
    #: Of them, those who already have a ledger row for the badge (a backfill leaves them as they are).
    already_recorded: int = 0
    #: Learners read: the course's enrollments (a series: of any of its courses), or those the plugin recorded.
    learners_read: int = 0
    #: User ids of some of the learners who qualify, in user id order.
    sample: list[int] = field(default_factory=list)
    #: "platform": read from the platform's grades and certificates; "recorded": from what the plugin recorded.
    source: str = "platform"


@dataclass(frozen=True)
class ShareLinks:
    """Ways for a learner to show an earned badge; every URL is complete and escaped for its target."""

    #: LinkedIn's "add to profile" form, pre-filled as a licence or certification.
    linkedin_add_to_profile: str
    linkedin: str
    x: str
    facebook: str
    #: A ``mailto:`` link with a subject and a body.
    email: str
    #: HTML to paste in a web page: the badge image linking to its public page (attribute values escaped).
    embed_html: str

    def as_dict(self) -> dict[str, str]:
        """JSON-ready representation."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class LearnerBadge:
    """A badge as shown to its learner (a ledger row, in the learner's terms)."""

    course_key: str
    name: str
    description: str
    image_url: str
    provider: str
    #: "awaiting_approval", "processing", "waiting_consent", "failed", "issued", "revoked", "expired" or "rejected".
    status: str
    public_url: str
    #: When the learner met the criterion (the date the badge carries).
    qualified_at: datetime | None
    #: When the provider issued the badge (None until then).
    issued_at: datetime | None
    revoked_at: datetime | None
    #: The ledger row's id (the learner's own revoke action names it).
    id: int = 0
    course_name: str = ""
    #: The provider's display name ("Credly", "Accredible").
    provider_name: str = ""
    #: The issuing organization (BADGES_BRIDGE_ISSUER_NAME).
    issuer: str = ""
    #: The state in the learner's words, e.g. "Check your e-mail to accept this badge".
    status_text: str = ""
    #: While issued: "pending" (to be accepted at the provider) or "accepted"; '' otherwise or unknown.
    acceptance: str = ""
    #: Whether the learner made the badge public at the provider; None when not known.
    public: bool | None = None
    #: The provider's id of the badge (LinkedIn's credential id); '' unless issued.
    credential_id: str = ""
    expires_at: datetime | None = None
    #: Why the badge was revoked, expired or rejected ('' when no reason is known).
    reason: str = ""
    share: ShareLinks | None = None

    def as_dict(self) -> dict:
        """JSON-ready representation."""
        return {
            "id": self.id,
            "course_key": self.course_key,
            "course_name": self.course_name,
            "name": self.name,
            "description": self.description,
            "image_url": self.image_url,
            "provider": self.provider,
            "provider_name": self.provider_name,
            "issuer": self.issuer,
            "status": self.status,
            "status_text": self.status_text,
            "acceptance": self.acceptance,
            "public": self.public,
            "public_url": self.public_url,
            "credential_id": self.credential_id,
            "qualified_at": _iso(self.qualified_at),
            "issued_at": _iso(self.issued_at),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "reason": self.reason,
            "share": self.share.as_dict() if self.share else None,
        }


@dataclass(frozen=True)
class Progress:
    """How far a learner is towards a badge's criterion."""

    #: True: met; False: not met yet; None: not known.
    met: bool | None
    #: The progress in words, e.g. "Your current grade is 72%; 80% is needed."
    text: str
    #: The learner's current value (percent grade), when the criterion has one.
    current: Decimal | None = None
    #: The value needed (percent grade), when the criterion has one.
    target: Decimal | None = None
    #: How much of the way is done, 0 to 100 (for a progress bar); None when it cannot be told.
    percent_done: int | None = None


@dataclass(frozen=True)
class AvailableBadge:
    """A badge the learner can earn in a course they are enrolled in."""

    course_badge_id: int
    course_key: str
    course_name: str
    name: str
    description: str
    image_url: str
    provider: str
    provider_name: str
    #: "passed", "grade_at_least" or "certificate".
    criterion: str
    #: The criterion in words, e.g. "Reach a course grade of at least 80%."
    criterion_text: str
    progress: Progress


@dataclass(frozen=True)
class DataRecipient:
    """A provider that receives learners' data, and what it receives."""

    provider: str
    provider_name: str
    #: The personal data sent with each badge, in words.
    fields: tuple[str, ...]
    #: The learner's badges (names) that go to this provider.
    badges: tuple[str, ...]


@dataclass(frozen=True)
class LearnerPrivacy:
    """A learner's privacy choices, and what the plugin sends about them to whom."""

    #: Whether the site requires consent before anything is sent (BADGES_BRIDGE_REQUIRE_CONSENT).
    consent_required: bool
    #: Whether the learner consented (and did not withdraw it since).
    consent_given: bool
    consent_given_at: datetime | None
    consent_withdrawn_at: datetime | None
    opted_out: bool
    opted_out_at: datetime | None
    #: Whether the learner's data may be sent now.
    sending_allowed: bool
    #: Badges waiting for the learner's consent or opt-in.
    waiting: int
    recipients: tuple[DataRecipient, ...]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class ActionOutcome(enum.StrEnum):
    """What an operator's action did to one ledger row."""

    #: Finished at the provider (issued, revoked) while the action ran.
    DONE = "done"
    #: Queued: a worker will do it.
    QUEUED = "queued"
    #: Tried, failed again, and will be retried automatically.
    FAILED = "failed"
    #: Tried, failed again, and dead.
    DEAD = "dead"
    #: Nothing to do for this row (wrong state, gone).
    SKIPPED = "skipped"
    #: Not tried: the cause of the failure is still there.
    BLOCKED = "blocked"
    #: Only recorded in the ledger; nothing sent to the provider.
    RECORDED = "recorded"


@dataclass(frozen=True)
class RowActionResult:
    """The truth about one row after an operator's retry or revoke."""

    issuance_id: int
    outcome: ActionOutcome
    #: What happened, in plain words, with the provider's error when it failed.
    message: str

    @property
    def applied(self) -> bool:
        """Whether the action changed the row."""
        return self.outcome not in (ActionOutcome.SKIPPED, ActionOutcome.BLOCKED)


@dataclass(frozen=True)
class StateCount:
    """Ledger rows in one state, for one operation."""

    state: str
    operation: str
    label: str
    count: int


@dataclass(frozen=True)
class DeadReason:
    """Dead rows sharing one cause, with what to do about them."""

    cause: str
    label: str
    next_step: str
    count: int
    #: The last error of the most recently changed such row.
    example: str


class TokenStatus(enum.StrEnum):
    """What is known of a provider account's API token."""

    MISSING = "missing"
    EXPIRED = "expired"
    #: Expires within api.TOKEN_WARNING.
    EXPIRING = "expiring"
    OK = "ok"
    #: No expiry date was entered.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class AccountStatus:
    """One provider account as the health overview shows it."""

    account_id: int
    name: str
    provider: str
    enabled: bool
    token_status: TokenStatus
    token_expires_at: datetime | None
    check_ok: bool | None
    check_at: datetime | None
    check_message: str
    sync_ok: bool | None
    sync_at: datetime | None
    sync_message: str
    #: Ledger rows of the account's course badges per health bucket (see api.BUCKETS).
    counts: dict[str, int]


@dataclass(frozen=True)
class JobStatus:
    """The latest run of a periodic job."""

    job: str
    label: str
    started_at: datetime | None
    finished_at: datetime | None
    ok: bool | None
    summary: str
    #: Why the job needs a look ('' when it does not): failed, never run, or not run for too long.
    warning: str


@dataclass(frozen=True)
class HealthReport:
    """What the admin's health overview shows."""

    generated_at: datetime
    #: Rows per health bucket: "issued", "in_progress", "failing", "dead", "closed".
    buckets: dict[str, int]
    states: list[StateCount]
    stuck: int
    dead_reasons: list[DeadReason]
    accounts: list[AccountStatus]
    jobs: list[JobStatus]
    #: Everything that needs an operator, one sentence each; empty when all is well.
    problems: list[str]

    @property
    def healthy(self) -> bool:
        """Nothing needs an operator."""
        return not self.problems


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


class ManualResult(enum.StrEnum):
    """The result of one line of a manual award (see :func:`badges_bridge.api.award_manually`)."""

    AWARDED = "awarded"
    ALREADY_HELD = "already_held"
    UNKNOWN_USER = "unknown_user"
    BAD_LINE = "bad_line"
    DUPLICATE_LINE = "duplicate_line"
    NOT_ALLOWED = "not_allowed"


#: Results that count as a failure of the line (a command exits with a non-zero status).
MANUAL_FAILURES = frozenset({ManualResult.UNKNOWN_USER, ManualResult.BAD_LINE, ManualResult.NOT_ALLOWED})


@dataclass(frozen=True)
class ManualAwardLine:
    """One line of a manual award: its number in the input, its text, the result and why."""

    number: int
    text: str
    result: ManualResult
    detail: str = ""
    issuance_id: int | None = None


@dataclass
class ManualAwardReport:
    """The results of a manual award, one per input line that names a learner (or fails to)."""

    course_badge_id: int
    lines: list[ManualAwardLine] = field(default_factory=list)
    dry_run: bool = False

    def count(self, result: ManualResult) -> int:
        """How many lines had ``result``."""
        return sum(1 for line in self.lines if line.result == result)

    @property
    def failed(self) -> bool:
        """Whether any line failed (unknown user, bad line or not allowed)."""
        return any(line.result in MANUAL_FAILURES for line in self.lines)

    def summary(self) -> str:
        """The counts in words, e.g. "2 awarded, 1 already held, 0 unknown user, ..."."""
        return ", ".join(f"{self.count(result)} {result.value.replace('_', ' ')}" for result in ManualResult)
