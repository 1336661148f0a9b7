"""Database models: provider accounts, synced templates, course badges and the issuance ledger."""

from __future__ import annotations

import re
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from opaque_keys.edx.django.models import CourseKeyField

from badges_bridge import crypto
from badges_bridge.api_hosts import base_url_problem
from badges_bridge.exceptions import ConfigurationError
from badges_bridge.providers import get_provider_class, provider_choices
from badges_bridge.providers.base import RevokeMode


class TimeStamped(models.Model):
    """Creation and modification times."""

    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class ProviderAccount(TimeStamped):
    """
    One account at a badge provider (a Credly organization, an Accredible issuer).

    .. no_pii:
    """

    provider = models.CharField(max_length=50, help_text=_("Which badge service this account belongs to."))
    name = models.CharField(max_length=100, unique=True, help_text=_("A name for operators, e.g. 'Credly main'."))
    api_base_url = models.URLField(
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
    last_synced_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider})"

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
    image_url = models.URLField(max_length=500, blank=True)
    url = models.URLField(max_length=500, blank=True)
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


class RevokePolicy(models.TextChoices):
    """When an issued badge is taken back."""

    NEVER = "never", _("Never")
    CRITERION_UNMET = "criterion_unmet", _("When the criterion is no longer met")


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
        help_text=_("For 'Course grade at least': the percent grade, 0 to 100."),
    )
    certificate_modes = models.CharField(
        max_length=255,
        blank=True,
        help_text=_("For 'Certificate earned': certificate modes that count, comma separated (empty: any)."),
    )
    enabled = models.BooleanField(default=True)
    revoke_policy = models.CharField(max_length=30, choices=RevokePolicy.choices, default=RevokePolicy.NEVER)
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
    WAITING_CONSENT = "waiting_consent", _("Waiting for the learner's consent (or opt-in)")


class Operation(models.TextChoices):
    """What the pipeline is trying to achieve for a row."""

    ISSUE = "issue", _("Issue")
    REVOKE = "revoke", _("Revoke")


class RevokedBy(models.TextChoices):
    """Who decided a badge should be taken back; only policy revocations are re-awarded automatically."""

    POLICY = "policy", _("The course badge's revoke policy")
    OPERATOR = "operator", _("An operator or course staff")
    PROVIDER = "provider", _("Deleted or expired at the provider")
    LEARNER = "learner", _("The learner asked for it")


class BadgeIssuance(TimeStamped):
    """
    The ledger: one row per (learner, course badge), from qualification to revocation.

    .. pii: Links a learner to a badge and stores the provider's public badge URL.
    .. pii_types: id, other
    .. pii_retirement: local_api, third_party
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_constraint=False, related_name="+")
    course_badge = models.ForeignKey(CourseBadge, on_delete=models.PROTECT, related_name="issuances")
    state = models.CharField(max_length=20, choices=IssuanceState.choices, default=IssuanceState.PENDING)
    operation = models.CharField(max_length=10, choices=Operation.choices, default=Operation.ISSUE)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True)
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
    public_url = models.URLField(max_length=500, blank=True)
    provider_state = models.CharField(max_length=20, blank=True)
    provider_public = models.BooleanField(
        null=True,
        blank=True,
        help_text=_("Whether the learner made the badge public at the provider (empty: not known)."),
    )
    issued_at = models.DateTimeField(null=True, blank=True, help_text=_("When the learner met the criterion."))
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

    class Meta:
        ordering = ["-modified"]
        constraints = [
            models.UniqueConstraint(fields=["user", "course_badge"], name="badges_bridge_one_row_per_learner_badge")
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="badges_bridge_state_due")]

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

    .. pii: The provider's id of a badge held by a learner.
    .. pii_types: id
    .. pii_retirement: local_api
    """

    issuance = models.ForeignKey(BadgeIssuance, on_delete=models.CASCADE, related_name="awards")
    external_id = models.CharField(max_length=255)
    number = models.PositiveIntegerField(help_text=_("The award number it was created or last used for."))
    status = models.CharField(max_length=20, choices=AwardStatus.choices, default=AwardStatus.LIVE)
    provider_state = models.CharField(max_length=20, blank=True)

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
    One transition of a ledger row, appended and never changed.

    .. no_pii:
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


class RejectedEvent(models.Model):
    """
    A learning event that could not be processed, kept for operators and, when it was valid, for a replay.

    .. pii: The learner's user id and the course of the event, also in the replay payload (never a name or
       e-mail address).
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
