"""Database models: provider accounts, synced templates, course badges and the issuance ledger."""

from __future__ import annotations

import hashlib
import re
import secrets
from decimal import Decimal
from typing import Any

import django
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from opaque_keys import InvalidKeyError
from opaque_keys.edx.django.models import CourseKeyField
from opaque_keys.edx.keys import CourseKey

from badges_bridge import crypto
from badges_bridge.api_hosts import base_url_problem
from badges_bridge.causes import ErrorCause
from badges_bridge.data import SeriesCourse
from badges_bridge.exceptions import ConfigurationError
from badges_bridge.providers import get_provider_class, provider_choices
from badges_bridge.providers.base import RevokeMode

#: Defaults of the URL form fields: ``forms.URLField`` takes ``assume_scheme`` from Django 5.0 on.
_URL_FORM_FIELD_DEFAULTS: dict[str, Any] = {"assume_scheme": "https"} if django.VERSION >= (5, 0) else {}


class HttpsURLField(models.URLField):
    """A URL field whose form completes a URL typed without a scheme with ``https`` (Django 5.0 and later).

    It deconstructs as ``models.URLField``, so migrations neither see it nor need to import it.
    """

    def formfield(self, **kwargs: Any) -> Any:
        """The form field, with ``assume_scheme="https"`` where Django supports it."""
        return super().formfield(**{**_URL_FORM_FIELD_DEFAULTS, **kwargs})

    def deconstruct(self) -> tuple[str, str, list[Any], dict[str, Any]]:
        """Deconstruct as the plain ``URLField`` the migrations were written with."""
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.URLField", args, kwargs


class TimeStamped(models.Model):
    """Creation and modification times."""

    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


#: Random bytes of a webhook path token (43 characters once encoded).
WEBHOOK_TOKEN_BYTES = 32


def webhook_token_digest(token: str) -> str:
    """The stored digest of a webhook path token (the token itself is only kept encrypted)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class ProviderAccount(TimeStamped):
    """
    One account at a badge provider (a Credly organization, an Accredible issuer).

    .. no_pii:
    """

    provider = models.CharField(max_length=50, help_text=_("Which badge service this account belongs to."))
    name = models.CharField(max_length=100, unique=True, help_text=_("A name for operators, e.g. 'Credly main'."))
    api_base_url = HttpsURLField(
        max_length=255,
        help_text=_(
            "API root of the provider (production, sandbox or regional host). It must use https, except for "
            "loopback hosts and the hosts of BADGES_BRIDGE_ALLOWED_HTTP_HOSTS."
        ),
    )
    organization_id = models.CharField(
        max_length=100, blank=True, help_text=_("The provider's organization id (required for Credly).")
    )
    token_ciphertext = models.TextField(blank=True, editable=False)
    token_updated_at = models.DateTimeField(null=True, blank=True, editable=False)
    token_expires_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the API token expires (Credly tokens last 180 days), for warnings.")
    )
    enabled = models.BooleanField(default=True)
    allowed_course_orgs = models.TextField(
        blank=True,
        help_text=_(
            "Course organizations (comma or newline separated) whose courses may use this account. "
            "Empty: every organization."
        ),
    )
    revoke_mode = models.CharField(
        max_length=20,
        choices=[
            (RevokeMode.DEFAULT.value, _("Provider's revoke (Credly: revoke, Accredible: expire)")),
            (RevokeMode.DELETE.value, _("Delete the badge at the provider")),
        ],
        default=RevokeMode.DEFAULT.value,
    )
    rate_limit_requests = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Client-side limit: requests per period (empty: the provider's default).")
    )
    rate_limit_period = models.PositiveIntegerField(null=True, blank=True, help_text=_("Period of the limit, seconds."))
    last_check_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_check_ok = models.BooleanField(null=True, editable=False)
    last_check_message = models.TextField(blank=True, editable=False)
    last_synced_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text=_("When the templates were last synced with success.")
    )
    last_sync_attempt_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text=_("When the latest template sync ran, successful or not.")
    )
    last_sync_ok = models.BooleanField(null=True, editable=False)
    last_sync_message = models.TextField(
        blank=True, editable=False, help_text=_("What the latest template sync changed, or why it failed.")
    )
    webhook_token_ciphertext = models.TextField(blank=True, editable=False)
    webhook_token_digest = models.CharField(
        max_length=64,
        unique=True,
        null=True,
        editable=False,
        help_text=_("SHA-256 of the webhook path token, to find the account of a notification."),
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider_display_name})"

    def save(self, *args, **kwargs) -> None:
        """Save, giving the account a webhook token on its first save."""
        if not self.webhook_token_digest:
            self._new_webhook_token()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "webhook_token_ciphertext", "webhook_token_digest"}
        super().save(*args, **kwargs)

    @property
    def provider_display_name(self) -> str:
        """The provider's name for people ("Credly"), or its code when the provider is not registered."""
        try:
            return get_provider_class(self.provider).display_name
        except ConfigurationError:
            return self.provider

    def _new_webhook_token(self) -> None:
        token = secrets.token_urlsafe(WEBHOOK_TOKEN_BYTES)
        self.webhook_token_ciphertext = crypto.encrypt(token)
        self.webhook_token_digest = webhook_token_digest(token)

    def rotate_webhook_token(self) -> None:
        """Replace the webhook token: the old webhook URL stops working at once."""
        self._new_webhook_token()
        self.save(update_fields=["webhook_token_ciphertext", "webhook_token_digest", "modified"])

    def get_webhook_token(self) -> str:
        """The decrypted webhook path token."""
        return crypto.decrypt(self.webhook_token_ciphertext) if self.webhook_token_ciphertext else ""

    def set_token(self, token: str) -> None:
        """Store a new API token, encrypted with the newest key."""
        self.token_ciphertext = crypto.encrypt(token.strip())
        self.token_updated_at = timezone.now()

    def get_token(self) -> str:
        """The decrypted API token ('' when none was entered)."""
        return crypto.decrypt(self.token_ciphertext) if self.token_ciphertext else ""

    @property
    def has_token(self) -> bool:
        """Whether a token was entered."""
        return bool(self.token_ciphertext)

    def course_orgs(self) -> set[str]:
        """Organizations allowed to use this account (empty set: all)."""
        return {org.strip() for org in re.split(r"[,\s]+", self.allowed_course_orgs) if org.strip()}

    def allows_course_org(self, org: str) -> bool:
        """Whether courses of ``org`` may use this account."""
        orgs = self.course_orgs()
        return not orgs or org in orgs

    def clean(self) -> None:
        """Validate the provider kind, the fields it requires and that the API URL keeps the token safe."""
        problem = base_url_problem(self.api_base_url) if self.api_base_url else ""
        if problem:
            raise ValidationError({"api_base_url": problem})
        try:
            provider_class = get_provider_class(self.provider)
        except ConfigurationError as err:
            raise ValidationError({"provider": str(err)}) from err
        if provider_class.requires_organization_id and not self.organization_id.strip():
            raise ValidationError(
                {"organization_id": _("%(p)s accounts need an organization id.") % {"p": provider_class.display_name}}
            )
        if bool(self.rate_limit_requests) != bool(self.rate_limit_period):
            raise ValidationError(_("Set both the rate limit requests and its period, or neither."))

    @staticmethod
    def provider_choices() -> list[tuple[str, str]]:
        """Choices for the provider field, from the registry."""
        return provider_choices()


class BadgeTemplate(models.Model):
    """
    A badge template (Credly) or group (Accredible) synced from a provider account.

    .. no_pii:
    """

    class State(models.TextChoices):
        ACTIVE = "active", _("Active")
        DRAFT = "draft", _("Draft")
        ARCHIVED = "archived", _("Archived")
        MISSING = "missing", _("No longer at the provider")

    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="templates")
    external_id = models.CharField(max_length=255, help_text=_("The provider's id of the template."))
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    image_url = HttpsURLField(max_length=500, blank=True)
    url = HttpsURLField(max_length=500, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.ACTIVE)
    allow_duplicates = models.BooleanField(default=False)
    last_synced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["account", "name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "external_id"], name="badges_bridge_template_unique_per_account")
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.account.name}]"


class Criterion(models.TextChoices):
    """What a learner must achieve in the course."""

    PASSED = "passed", _("Course passed")
    GRADE_AT_LEAST = "grade_at_least", _("Course grade at least (percent)")
    CERTIFICATE = "certificate", _("Certificate earned")
    SERIES = "series", _("A series of courses")


#: The criteria a course of a series can have (a series cannot nest).
SERIES_COURSE_CRITERIA = (Criterion.PASSED, Criterion.GRADE_AT_LEAST, Criterion.CERTIFICATE)


class RevokePolicy(models.TextChoices):
    """When an issued badge is taken back."""

    NEVER = "never", _("Never")
    CRITERION_UNMET = "criterion_unmet", _("When the criterion is no longer met")
    CERTIFICATE_REVOKED = "certificate_revoked", _("Only when the certificate is revoked")


class EvidenceFact(models.TextChoices):
    """Facts about the learner's achievement that a course badge sends to the provider with the badge."""

    GRADE = "grade", _("The learner's course grade")
    COURSE = "course", _("The course name and a link to it")
    COMPLETION_DATE = "completion_date", _("The date the learner met the criterion")


#: Evidence a course badge sends unless told otherwise (what every badge sent before evidence became a choice).
DEFAULT_EVIDENCE = "grade,course,completion_date"


class CourseBadge(TimeStamped):
    """
    A badge template attached to a course with the criterion that earns it.

    .. no_pii:
    """

    course_key = CourseKeyField(max_length=255, db_index=True)
    template = models.ForeignKey(BadgeTemplate, on_delete=models.PROTECT, related_name="course_badges")
    criterion = models.CharField(max_length=30, choices=Criterion.choices, default=Criterion.PASSED)
    grade_threshold = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
        verbose_name=_("grade threshold (percent)"),
        help_text=_(
            "For 'Course grade at least' only: the course grade, in percent from 0 to 100, that earns the badge "
            "(80 means 80 %; Open edX's grade of 0.8 is 80 %)."
        ),
    )
    certificate_modes = models.CharField(
        max_length=255,
        blank=True,
        help_text=_("For 'Certificate earned': certificate modes that count, comma separated (empty: any)."),
    )
    enabled = models.BooleanField(default=True)
    revoke_policy = models.CharField(
        max_length=30,
        choices=RevokePolicy.choices,
        default=RevokePolicy.NEVER,
        help_text=_(
            "Never: a badge once issued stays. When the criterion is no longer met: a later event saying the "
            "learner no longer meets it (a failing grade, a revoked certificate) revokes the badge at the provider, "
            "and meeting it again awards it again. Only when the certificate is revoked: only the revocation of "
            "the learner's certificate in the course revokes it (a failing grade does not), whatever the criterion."
        ),
    )
    suppress_notification = models.BooleanField(
        default=False, help_text=_("Ask the provider not to send its own notification e-mail.")
    )
    expires_after_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_(
            "Badges expire this many days after they are earned (empty: the template's own expiry at Credly, "
            "none at Accredible)."
        ),
    )
    series = models.JSONField(
        default=list,
        blank=True,
        help_text=_(
            "For 'A series of courses' only: the courses of the series, each with its own condition, as a list of "
            '{"course_key": ..., "criterion": "passed" | "grade_at_least" | "certificate", "grade_threshold": '
            '<0-100, for grade_at_least>, "certificate_modes": [<modes, for certificate; empty: any>]}.'
        ),
    )
    series_required = models.PositiveIntegerField(
        null=True,
        blank=True,
        verbose_name=_("courses required"),
        help_text=_("For a series: how many of its courses must be met (empty: all of them)."),
    )
    earned_after = models.DateTimeField(
        null=True,
        blank=True,
        verbose_name=_("earned from"),
        help_text=_("Only a criterion met at or after this moment earns the badge (empty: no start)."),
    )
    earned_before = models.DateTimeField(
        null=True,
        blank=True,
        verbose_name=_("earned until"),
        help_text=_("Only a criterion met before this moment earns the badge (empty: no end)."),
    )
    requires_approval = models.BooleanField(
        default=False,
        help_text=_(
            "Learners who meet the criterion wait in the approval queue until course staff approve or decline them."
        ),
    )
    evidence = models.CharField(
        max_length=100,
        blank=True,
        default=DEFAULT_EVIDENCE,
        help_text=_("Facts sent to the provider with the badge, comma separated: grade, course, completion_date."),
    )
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        db_constraint=False,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        help_text=_("Who made the latest change (empty: a change made outside the staff page, the API and admin)."),
    )
    version = models.PositiveIntegerField(default=1, editable=False, help_text=_("Raised on every change."))

    class Meta:
        ordering = ["course_key", "id"]
        constraints = [
            models.UniqueConstraint(fields=["course_key", "template"], name="badges_bridge_one_template_per_course")
        ]

    def __str__(self) -> str:
        return f"{self.course_key}: {self.template.name} ({self.get_criterion_display()})"

    def save(self, *args, **kwargs) -> None:
        """Save, raising the configuration version on every change."""
        bump = self.pk is not None
        if bump:
            self.version = models.F("version") + 1
        super().save(*args, **kwargs)
        if bump:
            self.refresh_from_db(fields=["version"])

    def clean(self) -> None:
        """Check that the criterion's parameters fit it and that a new or changed template may be used."""
        errors = {}
        if self.criterion == Criterion.GRADE_AT_LEAST and self.grade_threshold is None:
            errors["grade_threshold"] = _("A grade threshold (0 to 100) is required for this criterion.")
        if self.criterion != Criterion.GRADE_AT_LEAST and self.grade_threshold is not None:
            errors["grade_threshold"] = _("Only the 'Course grade at least' criterion takes a threshold.")
        if self.criterion != Criterion.CERTIFICATE and self.certificate_modes.strip():
            errors["certificate_modes"] = _("Only the 'Certificate earned' criterion takes certificate modes.")
        errors.update(self._series_errors())
        if self.earned_after and self.earned_before and self.earned_before <= self.earned_after:
            errors["earned_before"] = _("The end of the window must come after its start.")
        unknown = sorted(set(self.evidence_facts(strict=False)) - set(EvidenceFact.values))
        if unknown:
            errors["evidence"] = _("Unknown evidence: %(facts)s (choose among %(known)s).") % {
                "facts": ", ".join(unknown),
                "known": ", ".join(EvidenceFact.values),
            }
        template_error = self._template_error()
        if template_error:
            errors["template"] = template_error
        if errors:
            raise ValidationError(errors)

    def _template_error(self) -> str:
        """Why the template cannot be set ('' when it can); a template kept unchanged is never refused."""
        if not (self.template_id and self.course_key and self._template_is_new()):
            return ""
        if self.has_issuances():
            return _(
                "Badges were already issued for this course badge, so its template cannot change (the drift check "
                "would then revoke them). To award another template, disable this badge and add a new course badge "
                "with the other template."
            )
        template = self.template
        if template.state != BadgeTemplate.State.ACTIVE:
            return _("This template is %(state)s at the provider and cannot issue badges.") % {
                "state": template.get_state_display().lower()
            }
        if not template.account.allows_course_org(self.course_key.org):
            return _("Account %(account)s may not be used by courses of organization %(org)s.") % {
                "account": template.account.name,
                "org": self.course_key.org,
            }
        return ""

    def _series_errors(self) -> dict[str, str]:
        """What is wrong with the series and its required count (empty when nothing is)."""
        if self.criterion != Criterion.SERIES:
            if self.series:
                return {"series": _("Only the 'A series of courses' criterion takes a list of courses.")}
            if self.series_required is not None:
                return {"series_required": _("Only the 'A series of courses' criterion takes a number of courses.")}
            return {}
        if not isinstance(self.series, list) or not self.series:
            return {"series": _("Add at least one course to the series.")}
        problems = [problem for item in self.series if (problem := series_course_problem(item, self.course_key))]
        seen = [str(item.get("course_key", "")) for item in self.series if isinstance(item, dict)]
        duplicates = sorted({key for key in seen if seen.count(key) > 1})
        if duplicates:
            problems.append(_("%(course)s is in the series twice.") % {"course": duplicates[0]})
        if problems:
            return {"series": " ".join(problems)}
        if self.series_required is not None and not 1 <= self.series_required <= len(self.series):
            return {
                "series_required": _("Choose between 1 and %(count)d, the number of courses in the series.")
                % {"count": len(self.series)}
            }
        return {}

    def series_courses(self) -> list[SeriesCourse]:
        """The courses of the series, parsed (empty unless the criterion is a series)."""
        if self.criterion != Criterion.SERIES:
            return []
        return [SeriesCourse.from_dict(item) for item in self.series]

    def required_count(self) -> int:
        """How many courses of the series must be met."""
        return self.series_required or len(self.series)

    def evidence_facts(self, *, strict: bool = True) -> list[str]:
        """The evidence facts chosen, in order (``strict``: only the known ones)."""
        facts = [fact.strip() for fact in self.evidence.split(",") if fact.strip()]
        return [fact for fact in facts if fact in EvidenceFact.values] if strict else facts

    def has_issuances(self) -> bool:
        """Whether any ledger row belongs to this course badge."""
        return self.pk is not None and self.issuances.exists()

    def _template_is_new(self) -> bool:
        """Whether the template is being set: on a new course badge, or changed from the stored one."""
        if self.pk is None:
            return True
        return CourseBadge.objects.filter(pk=self.pk).values_list("template_id", flat=True).first() != self.template_id

    def modes(self) -> frozenset[str]:
        """Certificate modes that count (empty: any)."""
        return frozenset(mode.strip() for mode in self.certificate_modes.split(",") if mode.strip())


def series_course_problem(item: Any, home: CourseKey | None) -> str:
    """What is wrong with one course of a series ('' when nothing is).

    ``home`` is the course the badge belongs to: every course of the series must be of its organisation.
    """
    from badges_bridge import compat

    if not isinstance(item, dict) or not str(item.get("course_key") or "").strip():
        return _("Each course of the series needs a course key.")
    text = str(item["course_key"]).strip()
    try:
        course_key = CourseKey.from_string(text)
    except InvalidKeyError:
        return _("%(course)s is not a course key (e.g. course-v1:Org+Course+Run).") % {"course": text}
    if home is not None and course_key.org != home.org:
        return _("%(course)s belongs to organisation %(org)s; a series may only hold courses of %(home)s.") % {
            "course": text,
            "org": course_key.org,
            "home": home.org,
        }
    if not compat.course_exists(course_key):
        return _("%(course)s is not a course of this site.") % {"course": text}
    criterion = item.get("criterion")
    if criterion not in SERIES_COURSE_CRITERIA:
        return _("%(course)s: choose passed, grade_at_least or certificate as its condition.") % {"course": text}
    threshold = item.get("grade_threshold")
    if criterion != Criterion.GRADE_AT_LEAST:
        return (
            _("%(course)s: only the grade condition takes a threshold.") % {"course": text}
            if threshold not in (None, "")
            else ""
        )
    try:
        value = Decimal(str(threshold))
    except (ArithmeticError, ValueError):
        value = None
    if value is None or not value.is_finite() or not Decimal(0) <= value <= Decimal(100):
        return _("%(course)s: the grade threshold must be a percentage from 0 to 100.") % {"course": text}
    return ""


class IssuanceState(models.TextChoices):
    """States of a ledger row (see the architecture documentation for the diagram)."""

    PENDING = "pending", _("Pending")
    ISSUING = "issuing", _("Issuing")
    ISSUED = "issued", _("Issued")
    FAILED = "failed", _("Failed, will retry")
    DEAD = "dead", _("Dead (needs an operator)")
    REVOKE_PENDING = "revoke_pending", _("Revoke pending")
    REVOKED = "revoked", _("Revoked")
    REJECTED = "rejected", _("Rejected by the learner")
    NOT_MET = "not_met", _("Not met (latest event)")
    RETIRED = "retired", _("Learner retired; personal data erased")
    WAITING_CONSENT = "waiting_consent", _("Waiting for the learner's consent (or opt-in)")
    AWAITING_APPROVAL = "awaiting_approval", _("Awaiting approval by course staff")
    DECLINED = "declined", _("Declined by course staff")


class Operation(models.TextChoices):
    """What the pipeline is trying to achieve for a row."""

    ISSUE = "issue", _("Issue")
    REVOKE = "revoke", _("Revoke")


class Lane(models.TextChoices):
    """How a row's first award reaches the provider: queued at once, or fed from the budget left (ADR 0013)."""

    INTERACTIVE = "interactive", _("Interactive (queued at once)")
    BACKFILL = "backfill", _("Backfill (fed within the budget share)")


class RevokedBy(models.TextChoices):
    """Who decided a badge should be taken back; only policy revocations are re-awarded automatically."""

    POLICY = "policy", _("The course badge's revoke policy")
    OPERATOR = "operator", _("An operator or course staff")
    PROVIDER = "provider", _("Deleted or expired at the provider")
    LEARNER = "learner", _("The learner asked for it")


class Origin(models.TextChoices):
    """How the current award of a ledger row came about (ADR 0014)."""

    CRITERIA = "criteria", _("The course badge's criterion")
    MANUAL = "manual", _("Awarded manually by course staff or an operator")


class BadgeIssuance(TimeStamped):
    """
    The ledger: one row per (learner, course badge), from qualification to revocation.

    When the learner retires, the row stays for anonymous counts (state ``retired``) with
    every personal field erased: the user link, the provider's badge id and public URL,
    the grade, the dates and the evidence.

    .. pii: Links a learner (user id) to a badge, with the provider's badge id and public URL, the
       learner's grade, the time they qualified and the ids of the events about them.
    .. pii_types: id, other
    .. pii_retirement: local_api, third_party
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        db_constraint=False,
        null=True,
        related_name="+",
        help_text=_("The learner (empty once the learner retired)."),
    )
    course_badge = models.ForeignKey(CourseBadge, on_delete=models.PROTECT, related_name="issuances")
    state = models.CharField(max_length=20, choices=IssuanceState.choices, default=IssuanceState.PENDING)
    operation = models.CharField(max_length=10, choices=Operation.choices, default=Operation.ISSUE)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True)
    error_cause = models.CharField(
        max_length=30, choices=ErrorCause.choices, blank=True, help_text=_("Why the latest attempt failed.")
    )
    state_changed_at = models.DateTimeField(default=timezone.now)
    award_number = models.PositiveIntegerField(
        default=1, help_text=_("Which award of this badge to this learner: raised each time it is awarded again.")
    )
    award_attempts = models.PositiveIntegerField(
        default=0,
        help_text=_(
            "Issue attempts of the current award, counted when a worker claims the row and never reset by a "
            "retry: from the second one on, the provider is asked for the learner's badge before a create."
        ),
    )
    provider_requests = models.PositiveIntegerField(
        default=0, help_text=_("Provider requests spent issuing the current award.")
    )
    # What the provider knows of the current award's badge.
    external_id = models.CharField(max_length=255, blank=True, db_index=True)
    public_url = HttpsURLField(max_length=500, blank=True)
    provider_state = models.CharField(max_length=20, blank=True)
    provider_public = models.BooleanField(
        null=True,
        blank=True,
        help_text=_("Whether the learner shows the badge publicly at the provider (empty: not known)."),
    )
    provider_seen_at = models.DateTimeField(
        null=True, blank=True, help_text=_("Time of the latest provider notification applied to the current badge.")
    )
    qualified_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the learner met the criterion (the date the badge carries).")
    )
    issued_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the provider confirmed the badge of the current award.")
    )
    confirmed_at = models.DateTimeField(null=True, blank=True, help_text=_("When the provider confirmed the badge."))
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=20, choices=RevokedBy.choices, blank=True)
    revoke_reason = models.TextField(blank=True, help_text=_("Sent to the provider with the revoke."))
    # Evidence: why the badge was awarded.
    course_run_key = models.CharField(max_length=255, blank=True, help_text=_("The course run (e.g. a CCX)."))
    event_id = models.CharField(max_length=64, blank=True)
    event_type = models.CharField(max_length=128, blank=True)
    event_time = models.DateTimeField(null=True, blank=True, help_text=_("Time of the latest event applied."))
    grade = models.DecimalField(max_digits=7, decimal_places=4, null=True, blank=True)
    config_version = models.PositiveIntegerField(default=1)
    lane = models.CharField(
        max_length=12,
        choices=Lane.choices,
        default=Lane.INTERACTIVE,
        help_text=_("Backfill rows are queued by the feeder, a few at a time, within the backfill budget share."),
    )
    origin = models.CharField(
        max_length=10,
        choices=Origin.choices,
        default=Origin.CRITERIA,
        help_text=_(
            "How the current award came about. A manual award is never revoked by the revoke policy, only by a person."
        ),
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("The staff member who approved or declined the award (badges that require approval)."),
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True, help_text=_("Why the award was declined, as course staff wrote it."))

    class Meta:
        ordering = ["-modified"]
        constraints = [
            models.UniqueConstraint(fields=["user", "course_badge"], name="badges_bridge_one_row_per_learner_badge")
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="badges_bridge_state_due"),
            models.Index(fields=["lane", "state", "next_attempt_at"], name="badges_bridge_lane_due"),
        ]

    def __str__(self) -> str:
        return f"Issuance #{self.pk} ({self.state})"


class AwardStatus(models.TextChoices):
    """What became of one badge this plugin created or adopted at the provider."""

    LIVE = "live", _("The learner's current badge")
    REVOKED = "revoked", _("Revoked by this plugin")
    GONE = "gone", _("Revoked, expired, deleted or rejected at the provider")
    UNCONFIRMED = "unconfirmed", _("Touched by a worker whose lease had run out; to be checked")
    UNDONE = "undone", _("Created twice by mistake and undone at the provider")


class IssuedBadge(TimeStamped):
    """
    One badge that this plugin created, adopted or revoked at the provider for a ledger row.

    A ledger row points at the badge of its current award (``BadgeIssuance.external_id``);
    these records keep every badge the row ever had, so that a re-award never reuses a
    revoked badge by mistake, a badge this plugin expired can be brought back, and a
    badge created by a worker that had lost its lease is adopted or undone, never lost.

    .. pii: The provider's id of a badge held by a learner (deleted when the learner retires).
    .. pii_types: id
    .. pii_retirement: local_api
    """

    issuance = models.ForeignKey(BadgeIssuance, on_delete=models.CASCADE, related_name="awards")
    external_id = models.CharField(max_length=255)
    number = models.PositiveIntegerField(help_text=_("The award number it was created or last used for."))
    status = models.CharField(max_length=20, choices=AwardStatus.choices, default=AwardStatus.LIVE)
    provider_state = models.CharField(max_length=20, blank=True)
    announced = models.BooleanField(
        default=False,
        help_text=_("BADGE_AWARDED was sent for this badge and BADGE_REVOKED not yet."),
    )

    class Meta:
        ordering = ["issuance", "-number", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["issuance", "external_id"], name="badges_bridge_one_record_per_badge")
        ]
        indexes = [models.Index(fields=["status"], name="badges_bridge_award_status")]

    def __str__(self) -> str:
        return f"{self.external_id} (award {self.number}, {self.status})"


class AuditEntry(models.Model):
    """
    One transition of a ledger row, appended and never changed, except when its learner retires.

    The learner is only known through the ledger row. A message may name the provider's
    badge id or quote a provider's answer (e-mail addresses redacted), and the event id
    names a learning event about the learner: both are erased at retirement.

    .. pii: Provider badge ids and provider answers in the message, and the id of a learning event.
    .. pii_types: id, other
    .. pii_retirement: local_api
    """

    issuance = models.ForeignKey(BadgeIssuance, on_delete=models.CASCADE, related_name="audit_entries")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20)
    actor = models.CharField(max_length=100, help_text=_("Who caused it: an event type, a task, an admin (by id)."))
    event_id = models.CharField(max_length=64, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.from_state or '-'} -> {self.to_state} by {self.actor}"


class RejectedEventStatus(models.TextChoices):
    """What becomes of a rejected event."""

    INVALID = "invalid", _("Invalid, cannot be replayed")
    WAITING = "waiting", _("Waiting, will be retried automatically")
    REPLAYED = "replayed", _("Replayed")
    FAILED = "failed", _("Failed, needs an operator")
    ERASED = "erased", _("Erased: the learner retired")


class RejectedEvent(models.Model):
    """
    A learning event that could not be processed, kept for operators and, when it was valid, for a replay.

    .. pii: The learner's user id and the course of the event, also in the replay payload (never a name or
       e-mail address). Erased when the learner retires.
    .. pii_types: id
    .. pii_retirement: local_api
    """

    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    event_id = models.CharField(max_length=64, blank=True)
    event_type = models.CharField(max_length=128, blank=True)
    course_key = models.CharField(max_length=255, blank=True)
    user_id = models.IntegerField(null=True, blank=True)
    reason = models.TextField()
    status = models.CharField(max_length=20, choices=RejectedEventStatus.choices, default=RejectedEventStatus.INVALID)
    payload = models.JSONField(
        null=True, blank=True, help_text=_("The parsed event, for a replay (empty for an invalid payload).")
    )
    attempts = models.PositiveIntegerField(default=0, help_text=_("Replays tried so far."))
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, help_text=_("Why the latest replay failed."))
    resolved_at = models.DateTimeField(null=True, blank=True, help_text=_("When a replay succeeded."))

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="badges_bridge_rejected_due")]

    def __str__(self) -> str:
        return f"{self.event_type or 'event'} {self.event_id}: {self.reason[:60]}"


class MaintenanceJob(models.TextChoices):
    """The periodic jobs whose latest run is kept."""

    REDRIVE = "redrive", _("Redrive")
    DRIFT = "drift", _("Drift check")


class MaintenanceRun(models.Model):
    """
    The latest run of one periodic job (one row per job, updated in place, never a growing log).

    .. no_pii:
    """

    job = models.CharField(max_length=20, choices=MaintenanceJob.choices, unique=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(null=True, help_text=_("Empty while the run goes on."))
    summary = models.TextField(blank=True, help_text=_("What the run did, or why it failed."))

    class Meta:
        ordering = ["job"]

    def __str__(self) -> str:
        return f"{self.get_job_display()} at {self.started_at:%Y-%m-%d %H:%M:%S}"


class HealthOverview(BadgeIssuance):
    """
    The admin's health overview of the ledger and the provider accounts (no table of its own).

    .. no_pii:
    """

    class Meta:
        proxy = True
        verbose_name = _("health overview")
        verbose_name_plural = _("health overview")


class ProviderEventStatus(models.TextChoices):
    """What became of a provider's notification."""

    RECEIVED = "received", _("Received, to be fetched from the provider")
    WAITING = "waiting", _("Waiting for a retry")
    DONE = "done", _("Fetched and applied")
    NOT_FOUND = "not_found", _("Unknown at the provider: nothing changed")
    FAILED = "failed", _("Failed, needs an operator")


class ProviderEvent(models.Model):
    """
    A notification (webhook) from a provider: only a hint, fetched back from the provider by its id.

    Keeps the event ids already seen, so that a notification delivered again changes nothing.
    The result names ledger rows and templates by their local id, never a learner or a badge id.

    .. no_pii:
    """

    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="provider_events")
    event_id = models.CharField(max_length=100, help_text=_("The provider's id of the event."))
    status = models.CharField(max_length=20, choices=ProviderEventStatus.choices, default=ProviderEventStatus.RECEIVED)
    event_type = models.CharField(max_length=100, blank=True, help_text=_("As fetched from the provider."))
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the next fetch is due; while a worker fetches, the end of its lease.")
    )
    processed_at = models.DateTimeField(null=True, blank=True)
    result = models.TextField(blank=True, help_text=_("What was done, or why nothing was."))

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "event_id"], name="badges_bridge_one_record_per_event")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="badges_bridge_event_due")]

    def __str__(self) -> str:
        return f"{self.event_type or 'event'} {self.event_id} ({self.status})"


class OperatorNotice(models.Model):
    """
    Something that happened at a provider and that staff must know, e.g. a template deleted there.

    .. no_pii:
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="notices")
    template = models.ForeignKey(
        BadgeTemplate, on_delete=models.SET_NULL, null=True, blank=True, related_name="notices"
    )
    message = models.TextField()

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return self.message[:80]


class RetiredLearner(models.Model):
    """
    A retired learner, kept so that nothing is ever sent for them again.

    Only a keyed hash of the user id is stored (see :func:`badges_bridge.retirement.digests`).

    .. pii: A keyed hash (HMAC-SHA256) of the retired learner's user id, kept to honour the retirement.
    .. pii_types: id
    .. pii_retirement: retained
    """

    digest = models.CharField(max_length=64, unique=True)
    retired_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Retired learner ({self.retired_at:%Y-%m-%d})"


class CleanupAction(models.TextChoices):
    """What is done at the provider to a retired learner's badge."""

    REVOKE = "revoke", _("Revoke (the account's revoke mode)")
    DELETE = "delete", _("Delete")


class ProviderCleanup(models.Model):
    """
    A badge of a retired learner still to be revoked or deleted at its provider.

    It has no link to the learner or to the ledger; it is deleted once the provider confirmed.

    .. pii: The provider's id of a retired learner's badge, with no link to the learner, until the
       provider confirmed its revocation or deletion.
    .. pii_types: id
    .. pii_retirement: third_party
    """

    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="cleanups")
    external_id = models.CharField(max_length=255)
    action = models.CharField(max_length=10, choices=CleanupAction.choices)
    created = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the next attempt is due; while a worker is at it, its lease.")
    )
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["created", "id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "external_id"], name="badges_bridge_one_cleanup_per_badge")
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} badge at {self.account.name}"


class LearnerPreference(TimeStamped):
    """
    A learner's choices about sending personal data to badge providers.

    Consent matters only when BADGES_BRIDGE_REQUIRE_CONSENT is on; an opt-out always holds
    new badges back. The times are kept as a record of when each choice was made.

    .. pii: Links a learner (user id) to the times they gave or withdrew consent and opted out.
    .. pii_types: id
    .. pii_retirement: local_api
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    consent_given_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the learner last agreed that their data may be sent to providers.")
    )
    consent_withdrawn_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the learner withdrew their consent (empty: not withdrawn).")
    )
    opted_out_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the learner opted out of new badges (empty: not opted out).")
    )

    def __str__(self) -> str:
        return f"Preferences of user {self.user_id}"

    @property
    def has_consent(self) -> bool:
        """Whether consent was given and not withdrawn since."""
        return self.consent_given_at is not None and self.consent_withdrawn_at is None

    @property
    def opted_out(self) -> bool:
        """Whether the learner asked for no new badges."""
        return self.opted_out_at is not None


class SeriesProgress(models.Model):
    """
    Whether a learner meets the condition of one course of a series badge, as the latest event said.

    A series badge is decided from these rows, so that events of its courses may arrive in any order.

    .. pii: Links a learner (user id) to their standing in a course (met or not, grade, when).
    .. pii_types: id, other
    .. pii_retirement: local_api
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_constraint=False, related_name="+")
    course_badge = models.ForeignKey(CourseBadge, on_delete=models.CASCADE, related_name="series_progress")
    course_key = CourseKeyField(max_length=255)
    met = models.BooleanField(default=False)
    event_time = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_(
            "Time of the latest event applied (empty: no event of this course yet; the row exists for locking)."
        ),
    )
    met_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the course's condition became met (empty while it is not met).")
    )
    grade = models.DecimalField(max_digits=7, decimal_places=4, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "course_badge", "course_key"], name="badges_bridge_one_progress_per_series_course"
            )
        ]

    def __str__(self) -> str:
        return f"Series progress of user {self.user_id} in {self.course_key}"


class BackfillRunState(models.TextChoices):
    """Where a backfill started from the staff page or API stands."""

    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class BackfillRun(models.Model):
    """
    One backfill of a course badge started by course staff, with its progress.

    .. no_pii:
    """

    course_badge = models.ForeignKey(CourseBadge, on_delete=models.CASCADE, related_name="backfill_runs")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, db_constraint=False, null=True, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=BackfillRunState.choices, default=BackfillRunState.QUEUED)
    total = models.PositiveIntegerField(null=True, blank=True, help_text=_("Learners to read (when known)."))
    read = models.PositiveIntegerField(default=0, help_text=_("Learners read so far."))
    recorded = models.PositiveIntegerField(default=0, help_text=_("Badges recorded for issuing."))
    existing = models.PositiveIntegerField(default=0, help_text=_("Learners who already had a ledger row."))
    not_met = models.PositiveIntegerField(default=0, help_text=_("Learners who do not meet the criterion."))
    message = models.TextField(blank=True, help_text=_("Why the run failed."))
    progress_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_(
            "When the run last made progress (started, or finished a chunk of learners): a run queued or running "
            "with no progress for BADGES_BRIDGE_BACKFILL_RUN_STALE_SECONDS is taken as lost."
        ),
    )

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"Backfill #{self.pk} of course badge {self.course_badge_id} ({self.state})"


class CourseBadgeChange(models.Model):
    """
    One change to a course badge's set-up: who made it, when, and what changed.

    Kept when the course badge is deleted (the link is then empty).

    .. no_pii:
    """

    course_badge = models.ForeignKey(
        CourseBadge, on_delete=models.SET_NULL, null=True, blank=True, related_name="changes"
    )
    course_key = CourseKeyField(max_length=255, db_index=True)
    badge_name = models.CharField(max_length=255, help_text=_("The template's name when the change was made."))
    version = models.PositiveIntegerField(help_text=_("The course badge's version after the change."))
    at = models.DateTimeField(default=timezone.now, db_index=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, db_constraint=False, null=True, related_name="+"
    )
    action = models.CharField(max_length=20, help_text=_("created, changed, disabled, enabled or deleted."))
    changes = models.JSONField(default=dict, blank=True, help_text=_("Field name: [value before, value after]."))

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.badge_name} v{self.version}: {self.action}"


class CourseSettings(models.Model):
    """
    Per-course switch of the feature (the Course App toggle in Studio's Pages & Resources).

    A course without a row has the feature on. Turning it off stops new issuance in the course and
    leaves every badge already issued as it is.

    .. no_pii:
    """

    course_key = CourseKeyField(max_length=255, unique=True)
    badges_enabled = models.BooleanField(default=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, db_constraint=False, null=True, related_name="+"
    )
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "course settings"

    def __str__(self) -> str:
        return f"{self.course_key}: badges {'on' if self.badges_enabled else 'off'}"


class StandaloneCourse(models.Model):
    """
    A course known to the plugin when it runs without edx-platform (the demo, tests, a standalone site).

    Inside Open edX the platform's course overviews are used instead and this table stays empty.

    .. no_pii:
    """

    course_key = CourseKeyField(max_length=255, unique=True)
    display_name = models.CharField(max_length=255, blank=True)

    def __str__(self) -> str:
        return self.display_name or str(self.course_key)


class StandaloneCourseRole(models.Model):
    """
    A course team role outside edx-platform: who may set up a course's badges there.

    Inside Open edX, Studio's own course roles decide (``has_studio_write_access``).

    .. pii: Links a user (user id) to a course team role.
    .. pii_types: id
    .. pii_retirement: local_api
    """

    class Role(models.TextChoices):
        STAFF = "staff", _("Course staff")
        INSTRUCTOR = "instructor", _("Course instructor")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    course_key = CourseKeyField(max_length=255, db_index=True)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.STAFF)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "course_key", "role"], name="badges_bridge_one_standalone_role")
        ]

    def __str__(self) -> str:
        return f"{self.get_role_display()} of {self.course_key}"
