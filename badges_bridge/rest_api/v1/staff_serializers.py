"""Serializers of the course staff API: course badges (validated by the model's own rules), runs, queues, results."""

from __future__ import annotations

import copy
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from badges_bridge import course_setup
from badges_bridge.data import ActionOutcome, ManualResult
from badges_bridge.models import (
    BackfillRun,
    BackfillRunState,
    BadgeIssuance,
    BadgeTemplate,
    CourseBadge,
    CourseBadgeChange,
)

#: The largest manual award file accepted (bytes).
MAX_AWARD_FILE_BYTES = 2 * 1024 * 1024
THRESHOLD_MESSAGE = "The grade threshold is a percentage from 0 to 100."


class TemplateSerializer(serializers.ModelSerializer):
    """A badge template a course may use."""

    provider = serializers.CharField(source="account.provider", help_text="The provider's key, e.g. 'credly'.")
    provider_name = serializers.CharField(source="account.provider_display_name")
    account_name = serializers.CharField(source="account.name")

    class Meta:
        model = BadgeTemplate
        fields = ["id", "name", "description", "image_url", "provider", "provider_name", "account_name"]
        read_only_fields = fields


class BadgeCountsSerializer(serializers.Serializer):
    """The badge's ledger rows, counted by what became of them."""

    issued = serializers.IntegerField()
    pending = serializers.IntegerField(help_text="On their way to the provider (pending, issuing, failed).")
    awaiting_approval = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Failed and retried automatically.")
    dead = serializers.IntegerField(help_text="Failed for good: an operator must look.")


class CourseBadgeSerializer(serializers.ModelSerializer):
    """A course badge: its template and criterion, and (read only) what it says in words and its counts.

    Needs ``course_key`` and ``request`` in its context, and ``counts`` ({badge id: counts}) to list counts.
    Every change is validated by the model's own rules (``CourseBadge.clean``), each message on its field,
    and saved through :func:`badges_bridge.course_setup.save_course_badge` (version raised, history kept).
    """

    course_key = serializers.CharField(read_only=True)
    template = serializers.PrimaryKeyRelatedField(
        queryset=BadgeTemplate.objects.select_related("account"),
        help_text="The id of one of the templates this course may use (see the course's templates).",
    )
    template_name = serializers.CharField(source="template.name", read_only=True)
    image_url = serializers.CharField(source="template.image_url", read_only=True)
    provider = serializers.CharField(source="template.account.provider", read_only=True)
    provider_name = serializers.CharField(source="template.account.provider_display_name", read_only=True)
    grade_threshold = serializers.DecimalField(
        max_digits=None,
        decimal_places=2,
        min_value=0,
        max_value=100,
        allow_null=True,
        required=False,
        error_messages={"min_value": THRESHOLD_MESSAGE, "max_value": THRESHOLD_MESSAGE},
        help_text="For grade_at_least: the course grade in percent, 0 to 100.",
    )
    criterion_text = serializers.SerializerMethodField()
    expiry_text = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()

    class Meta:
        model = CourseBadge
        fields = [
            "id",
            "course_key",
            *course_setup.EDITABLE_FIELDS,
            "template_name",
            "image_url",
            "provider",
            "provider_name",
            "version",
            "modified",
            "criterion_text",
            "expiry_text",
            "counts",
        ]
        read_only_fields = ["id", "version", "modified"]

    def get_criterion_text(self, badge: CourseBadge) -> str:
        """The criterion in words, with its window and revoke policy."""
        return course_setup.describe_criterion(badge)

    def get_expiry_text(self, badge: CourseBadge) -> str:
        """The expiry in words."""
        return course_setup.describe_expiry(badge)

    @extend_schema_field(BadgeCountsSerializer)
    def get_counts(self, badge: CourseBadge) -> dict[str, int]:
        """The badge's ledger counts."""
        counts = self.context.get("counts", {})
        return counts.get(badge.pk) or dict.fromkeys(course_setup.COUNTED, 0)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Apply the change to a copy of the badge and check it with the model's rules (400, message on the field)."""
        course_key = self.context["course_key"]
        badge = copy.copy(self.instance) if self.instance is not None else CourseBadge(course_key=course_key)
        for name, value in attrs.items():
            setattr(badge, name, value)
        errors: dict[str, list[str]] = {}
        try:
            badge.full_clean(validate_unique=False, validate_constraints=False)
        except DjangoValidationError as err:
            errors = {name: [str(message) for message in messages] for name, messages in err.message_dict.items()}
        template_changed = self.instance is None or badge.template_id != self.instance.template_id
        if template_changed and "template" not in errors:
            problem = _template_problem(badge)
            if problem:
                errors["template"] = [problem]
        if errors:  # CourseBadge.clean names a field for every error
            raise serializers.ValidationError(errors)
        self.context["candidate"] = badge
        return attrs

    def create(self, validated_data: dict[str, Any]) -> CourseBadge:
        """Save the new badge, with a 'created' entry in its history."""
        return self._save(self.context["candidate"], None)

    def update(self, instance: CourseBadge, validated_data: dict[str, Any]) -> CourseBadge:
        """Save the change (nothing when nothing changed), with an entry in the history."""
        return self._save(self.context["candidate"], course_setup.stored_snapshot(instance))

    def _save(self, badge: CourseBadge, before: dict[str, Any] | None) -> CourseBadge:
        try:
            course_setup.save_course_badge(badge, self.context["request"].user, before)
        except IntegrityError:  # another request attached the same template meanwhile
            raise serializers.ValidationError({"template": [DUPLICATE_TEMPLATE]}) from None
        return badge


DUPLICATE_TEMPLATE = "This course already has a badge with this template: edit that badge instead."


def _template_problem(badge: CourseBadge) -> str:
    """Why the course may not use the badge's new template ('' when it may), beyond the model's own checks.

    With those (an active template of an account the course's organisation may use), what is left
    is exactly :func:`badges_bridge.course_setup.allowed_templates`.
    """
    template = badge.template
    if CourseBadge.objects.filter(course_key=badge.course_key, template=template).exclude(pk=badge.pk).exists():
        return DUPLICATE_TEMPLATE
    if not template.account.enabled:
        return f"The provider account {template.account.name} is disabled: choose a template of another account."
    return ""


class ChangeSerializer(serializers.ModelSerializer):
    """One change to a course badge: who, when, what (field: [before, after])."""

    changed_by = serializers.CharField(
        source="changed_by.username", allow_null=True, default=None, help_text="Who made it (null: unknown)."
    )

    class Meta:
        model = CourseBadgeChange
        fields = ["id", "version", "at", "action", "changed_by", "changes"]
        read_only_fields = fields


class PreviewSerializer(serializers.Serializer):
    """Who already meets the badge's criterion, and the request the provider would receive."""

    qualify = serializers.IntegerField(help_text="Learners who meet the criterion now.")
    already_recorded = serializers.IntegerField(help_text="Of them, learners who already have a ledger row.")
    learners_read = serializers.IntegerField()
    source = serializers.ChoiceField(
        choices=["platform", "recorded"],
        help_text="platform: the LMS's persisted grades and certificates; recorded: what the plugin has recorded.",
    )
    sample = serializers.ListField(child=serializers.CharField(), help_text="Usernames of some who qualify.")
    payload = serializers.JSONField(help_text="The exact JSON body the provider would receive, for a sample learner.")


class BackfillRunSerializer(serializers.ModelSerializer):
    """A backfill run and its progress."""

    started_by = serializers.CharField(source="started_by.username", allow_null=True, default=None)
    percent_done = serializers.SerializerMethodField()

    class Meta:
        model = BackfillRun
        fields = [
            "id",
            "state",
            "created",
            "progress_at",
            "finished_at",
            "started_by",
            "total",
            "read",
            "recorded",
            "existing",
            "not_met",
            "percent_done",
            "message",
        ]
        read_only_fields = fields

    def get_percent_done(self, run: BackfillRun) -> int | None:
        """Learners read, in percent of the total (null while the total is not known)."""
        if run.state == BackfillRunState.DONE:
            return 100
        if not run.total:
            return None
        return min(100, run.read * 100 // run.total)


class AwaitingSerializer(serializers.ModelSerializer):
    """A learner who meets the criterion and waits for course staff's approval."""

    username = serializers.CharField(source="user.username", allow_null=True, default=None)

    class Meta:
        model = BadgeIssuance
        fields = ["id", "user_id", "username", "qualified_at", "grade"]
        read_only_fields = fields


class IdsSerializer(serializers.Serializer):
    """The ledger rows to approve."""

    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=1000, help_text="Ledger row ids."
    )


class DeclineSerializer(IdsSerializer):
    """The ledger rows to decline, and why (kept on each row)."""

    reason = serializers.CharField(max_length=2000, help_text="Why, kept with each declined award.")


class SkippedSerializer(serializers.Serializer):
    """A row left as it was, and why."""

    id = serializers.IntegerField()
    reason = serializers.CharField()


class ReviewResultSerializer(serializers.Serializer):
    """What an approval or decline did: the rows done, and the rows skipped with why."""

    done = serializers.ListField(child=serializers.IntegerField())
    skipped = SkippedSerializer(many=True)

    def to_representation(self, result) -> dict[str, Any]:
        """Render a ReviewResult (``skipped`` holds (id, reason) pairs)."""
        return {
            "done": list(result.done),
            "skipped": [{"id": row_id, "reason": reason} for row_id, reason in result.skipped],
        }


class ManualAwardRequestSerializer(serializers.Serializer):
    """Learners to award the badge to: pasted lines or an uploaded CSV file (one of them)."""

    lines = serializers.CharField(
        required=False,
        trim_whitespace=False,
        help_text="One username or e-mail address per line, or CSV whose first column is one (header optional).",
    )
    file = serializers.FileField(required=False, help_text="A CSV file (UTF-8), as multipart/form-data.")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    dry_run = serializers.BooleanField(required=False, default=False, help_text="Decide every line, write nothing.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Exactly one of ``lines`` and ``file``; the file's text becomes ``lines``."""
        upload = attrs.pop("file", None)
        if (upload is None) == (not attrs.get("lines", "").strip()):
            raise serializers.ValidationError({"lines": ["Give the learners as 'lines' or as a CSV 'file' (one)."]})
        if upload is not None:
            if upload.size > MAX_AWARD_FILE_BYTES:
                raise serializers.ValidationError({"file": [f"The file is over {MAX_AWARD_FILE_BYTES} bytes."]})
            try:
                attrs["lines"] = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise serializers.ValidationError({"file": ["The file must be UTF-8 text (CSV)."]}) from None
        return attrs


class ManualAwardLineSerializer(serializers.Serializer):
    """The result of one input line."""

    number = serializers.IntegerField()
    text = serializers.CharField()
    result = serializers.ChoiceField(choices=[result.value for result in ManualResult])
    detail = serializers.CharField()
    issuance_id = serializers.IntegerField(allow_null=True)


class ManualAwardReportSerializer(serializers.Serializer):
    """The results of a manual award, one per line that names a learner (or fails to)."""

    course_badge_id = serializers.IntegerField()
    dry_run = serializers.BooleanField()
    summary = serializers.CharField()
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Lines by result.")
    lines = ManualAwardLineSerializer(many=True)

    def to_representation(self, report) -> dict[str, Any]:
        """Render a ManualAwardReport."""
        return {
            "course_badge_id": report.course_badge_id,
            "dry_run": report.dry_run,
            "summary": report.summary(),
            "counts": {result.value: report.count(result) for result in ManualResult},
            "lines": ManualAwardLineSerializer(report.lines, many=True).data,
        }


class ReasonSerializer(serializers.Serializer):
    """Why the badge is revoked (kept on the row, sent to providers that accept one)."""

    reason = serializers.CharField(max_length=2000)


class RowActionSerializer(serializers.Serializer):
    """What became of a ledger row after a revoke."""

    issuance_id = serializers.IntegerField()
    outcome = serializers.ChoiceField(choices=[outcome.value for outcome in ActionOutcome])
    applied = serializers.BooleanField(help_text="Whether the action changed the row.")
    message = serializers.CharField()


class IssuanceSerializer(serializers.ModelSerializer):
    """A ledger row of the course: one learner and one course badge."""

    badge_name = serializers.CharField(source="course_badge.template.name")
    username = serializers.CharField(source="user.username", allow_null=True, default=None)
    state_label = serializers.CharField(source="get_state_display")

    class Meta:
        model = BadgeIssuance
        fields = [
            "id",
            "course_badge",
            "badge_name",
            "user_id",
            "username",
            "state",
            "state_label",
            "operation",
            "origin",
            "lane",
            "grade",
            "qualified_at",
            "issued_at",
            "revoked_at",
            "revoke_reason",
            "public_url",
            "reviewed_at",
            "review_note",
            "modified",
        ]
        read_only_fields = fields
