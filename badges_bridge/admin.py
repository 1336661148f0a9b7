"""Django admin for operators: accounts, templates, course badges, the ledger and rejected events."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Count, Q
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from badges_bridge import api, webhooks
from badges_bridge.exceptions import ConfigurationError
from badges_bridge.models import (
    AuditEntry,
    BadgeIssuance,
    BadgeTemplate,
    CourseBadge,
    IssuanceState,
    IssuedBadge,
    ProviderAccount,
    RejectedEvent,
)
from badges_bridge.providers import get_provider_class, provider_choices, provider_paths

#: Longest provider reply shown in the admin; a longer one is cut and ends with an ellipsis.
MAX_REPLY_LENGTH = 300


def _actor(request) -> str:
    return f"admin:user#{request.user.pk}"


def _reply(text: str) -> str:
    """A provider's reply cut for display; the admin escapes it like any other text."""
    return Truncator(text).chars(MAX_REPLY_LENGTH)


def _preset_choices() -> list[tuple[str, str]]:
    choices = [("", _("Custom URL (below)"))]
    for kind in sorted(provider_paths()):
        try:
            provider = get_provider_class(kind)
        except ConfigurationError:
            continue
        choices += [
            (url, f"{provider.display_name}: {name} ({url})") for name, url in provider.base_url_presets.items()
        ]
    return choices


class ProviderAccountForm(forms.ModelForm):
    """Account form: the token is write-only and never rendered back."""

    provider = forms.ChoiceField(choices=provider_choices)
    base_url_preset = forms.ChoiceField(
        required=False,
        label=_("API host preset"),
        choices=_preset_choices,
        help_text=_("Pick a known host, or leave 'Custom URL' and fill in the API base URL."),
    )
    api_token = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        label=_("API token"),
        help_text=_("Stored encrypted and never shown again. Leave empty to keep the current token."),
    )

    class Meta:
        model = ProviderAccount
        fields = [
            "name",
            "provider",
            "base_url_preset",
            "api_base_url",
            "organization_id",
            "api_token",
            "token_expires_at",
            "enabled",
            "allowed_course_orgs",
            "revoke_mode",
            "rate_limit_requests",
            "rate_limit_period",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "api_base_url" in self.fields:  # absent for a user who may only view the account
            self.fields["api_base_url"].required = False

    def clean(self):
        """Apply the preset, and require a token for a new account or one moved to another service."""
        cleaned = super().clean()
        preset = cleaned.get("base_url_preset")
        if preset:
            provider = cleaned.get("provider")
            try:
                presets = get_provider_class(provider).base_url_presets.values() if provider else []
            except ConfigurationError:
                presets = []
            if preset not in presets:
                self.add_error("base_url_preset", _("This host belongs to another provider."))
            cleaned["api_base_url"] = preset
            self.instance.api_base_url = preset
        if not cleaned.get("api_base_url"):
            self.add_error("api_base_url", _("Choose a preset or enter the API base URL."))
        if not cleaned.get("api_token"):
            self._require_token(cleaned)
        return cleaned

    def _require_token(self, cleaned: dict) -> None:
        """Refuse to keep the stored token when there is none, or when it would go to another service."""
        if not self.instance.has_token:
            self.add_error("api_token", _("An API token is required."))
            return
        if any(name in cleaned and cleaned[name] != self.initial.get(name) for name in ("api_base_url", "provider")):
            self.add_error(
                "api_token",
                _(
                    "The API base URL or the provider changed: enter the API token again. The stored token is only "
                    "sent to the service it was entered for."
                ),
            )

    def save(self, commit=True):
        """Encrypt a newly entered token."""
        account = super().save(commit=False)
        if self.cleaned_data.get("api_token"):
            account.set_token(self.cleaned_data["api_token"])
        if commit:
            account.save()
        return account


@admin.register(ProviderAccount)
class ProviderAccountAdmin(admin.ModelAdmin):
    """Provider accounts with connection checks and template sync."""

    form = ProviderAccountForm
    list_display = [
        "name",
        "provider",
        "enabled",
        "token_status",
        "token_expires_at",
        "last_check_ok",
        "last_check_at",
        "last_synced_at",
    ]
    list_filter = ["provider", "enabled"]
    search_fields = ["name", "organization_id"]
    readonly_fields = [
        "token_updated_at",
        "last_check_at",
        "last_check_ok",
        "last_check_reply",
        "last_synced_at",
        "webhook",
    ]
    actions = ["test_connection", "sync_templates", "rotate_webhook_token"]

    @admin.display(description=_("API token"))
    def token_status(self, account: ProviderAccount) -> str:
        """Whether a token is stored (never the token itself)."""
        if not account.has_token:
            return "missing"
        return f"set {account.token_updated_at:%Y-%m-%d}" if account.token_updated_at else "set"

    @admin.display(description=_("last check message"))
    def last_check_reply(self, account: ProviderAccount) -> str:
        """The latest connection check's message, cut."""
        return _reply(account.last_check_message)

    @admin.display(description=_("webhook URL"))
    def webhook(self, account: ProviderAccount) -> str:
        """The account's webhook URL to paste into the provider (a secret: never listed, never logged)."""
        if not webhooks.supports_webhooks(account):
            return _("Not used: this provider sends no notifications; the drift check reads its badges.")
        if account.pk is None:
            return _("Shown once the account is saved.")
        return format_html(
            "<code>{}</code><br>{}",
            webhooks.webhook_url(account),
            _(
                "Paste this URL into the provider's webhook settings (Credly: the organization's webhook URL). "
                "Keep it secret; if it leaks, use the action 'Rotate the webhook URL' and paste the new one."
            ),
        )

    @admin.action(description=_("Rotate the webhook URL (the old one stops working)"), permissions=["change"])
    def rotate_webhook_token(self, request, queryset):
        """Give each account a new webhook token; the new URL is shown on the account's page."""
        for account in queryset:
            account.rotate_webhook_token()
            self.message_user(
                request,
                f"{account.name}: new webhook URL; open the account to copy it into the provider's settings.",
                messages.WARNING,
            )

    @admin.action(description=_("Test connection"), permissions=["change"])
    def test_connection(self, request, queryset):
        """Call each provider and report."""
        for health in api.check_accounts(list(queryset.values_list("pk", flat=True))):
            level = messages.SUCCESS if health.ok else messages.ERROR
            self.message_user(request, _reply(f"{health.name}: {health.message}"), level)

    @admin.action(description=_("Sync templates (in the background)"), permissions=["change"])
    def sync_templates(self, request, queryset):
        """Queue a template sync per account."""
        from badges_bridge.tasks import queue_options, sync_templates

        for account in queryset:
            try:
                sync_templates.apply_async((account.pk,), **queue_options())
            except Exception as err:  # noqa: BLE001 - report broker problems to the operator
                self.message_user(request, _reply(f"{account.name}: could not queue the sync: {err}"), messages.ERROR)
            else:
                self.message_user(request, f"{account.name}: template sync queued.", messages.SUCCESS)


@admin.register(BadgeTemplate)
class BadgeTemplateAdmin(admin.ModelAdmin):
    """Templates are synced from the providers: read-only here."""

    list_display = ["name", "account", "state", "external_id", "last_synced_at"]
    list_filter = ["account", "state"]
    search_fields = ["name", "external_id"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class CourseBadgeForm(forms.ModelForm):
    """Only active templates can be attached."""

    class Meta:
        model = CourseBadge
        fields = [
            "course_key",
            "template",
            "criterion",
            "grade_threshold",
            "certificate_modes",
            "enabled",
            "revoke_policy",
            "suppress_notification",
            "expires_after_days",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "template" in self.fields:
            self.fields["template"].queryset = BadgeTemplate.objects.filter(
                Q(state=BadgeTemplate.State.ACTIVE) | Q(pk=self.instance.template_id)
            ).select_related("account")


@admin.register(CourseBadge)
class CourseBadgeAdmin(admin.ModelAdmin):
    """Badges attached to courses, with their issuance counts."""

    form = CourseBadgeForm
    list_display = [
        "course_key",
        "template",
        "criterion",
        "grade_threshold",
        "enabled",
        "revoke_policy",
        "version",
        "issued_count",
        "pending_count",
        "dead_count",
    ]
    list_filter = ["enabled", "criterion", "revoke_policy", "template__account"]
    search_fields = ["course_key", "template__name"]

    def get_readonly_fields(self, request, obj=None):
        """The course of an existing badge cannot change, nor its template once its ledger has rows."""
        if obj is None:
            return ["version"]
        if obj.has_issuances():
            return ["course_key", "template", "version"]
        return ["course_key", "version"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("template__account")
            .annotate(
                issued=Count("issuances", filter=Q(issuances__state=IssuanceState.ISSUED)),
                pending=Count(
                    "issuances",
                    filter=Q(
                        issuances__state__in=[
                            IssuanceState.PENDING,
                            IssuanceState.ISSUING,
                            IssuanceState.FAILED,
                            IssuanceState.REVOKE_PENDING,
                        ]
                    ),
                ),
                dead=Count("issuances", filter=Q(issuances__state=IssuanceState.DEAD)),
            )
        )

    @admin.display(description=_("issued"), ordering="issued")
    def issued_count(self, badge) -> int:
        return badge.issued

    @admin.display(description=_("in progress"), ordering="pending")
    def pending_count(self, badge) -> int:
        return badge.pending

    @admin.display(description=_("dead"), ordering="dead")
    def dead_count(self, badge) -> int:
        return badge.dead


class ReadOnlyInline(admin.TabularInline):
    """An inline that only shows records."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class AuditEntryInline(ReadOnlyInline):
    """The row's history."""

    model = AuditEntry
    fields = ["at", "from_state", "to_state", "actor", "event_id", "message"]


class IssuedBadgeInline(ReadOnlyInline):
    """Every provider badge the row ever had, newest award first."""

    model = IssuedBadge
    fields = ["number", "external_id", "status", "provider_state", "modified"]
    verbose_name = _("provider badge")
    verbose_name_plural = _("provider badges (one per award; the current one is live)")


@admin.register(BadgeIssuance)
class BadgeIssuanceAdmin(admin.ModelAdmin):
    """The issuance ledger: filter, search, retry and revoke; every change is in the audit log."""

    list_display = [
        "id",
        "learner",
        "course_key",
        "template_name",
        "state",
        "attempts",
        "next_attempt_at",
        "issued_at",
        "modified",
    ]
    list_filter = [
        "state",
        "operation",
        "course_badge__course_key",
        "course_badge__template__account",
        "course_badge__template",
    ]
    search_fields = ["user__username", "user__email", "external_id", "=course_badge__course_key"]
    # The learner is prefetched, not joined: a row whose user no longer exists must still be listed.
    list_select_related = ["course_badge__template"]
    inlines = [IssuedBadgeInline, AuditEntryInline]
    actions = ["retry_now", "revoke", "issue_again"]
    date_hierarchy = "created"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in BadgeIssuance._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("user")

    @admin.display(description=_("learner"))
    def learner(self, row) -> str:
        if row.user_id is None:
            return _("retired learner")
        try:
            return row.user.username if row.user else f"user #{row.user_id} (missing)"
        except ObjectDoesNotExist:
            return f"user #{row.user_id} (missing)"

    @admin.display(description=_("course"), ordering="course_badge__course_key")
    def course_key(self, row) -> str:
        return str(row.course_badge.course_key)

    @admin.display(description=_("template"))
    def template_name(self, row) -> str:
        return row.course_badge.template.name

    @admin.action(description=_("Retry now (failed or dead rows)"), permissions=["change"])
    def retry_now(self, request, queryset):
        """Make failed or dead rows due now."""
        done = sum(api.retry_issuance(pk, _actor(request)) for pk in queryset.values_list("pk", flat=True))
        self.message_user(
            request, f"{done} row(s) queued for retry; {queryset.count() - done} were not failed or dead."
        )

    @admin.action(description=_("Revoke the badge"), permissions=["change"])
    def revoke(self, request, queryset):
        """Revoke the selected badges at their provider."""
        reason = "Revoked by an administrator."
        done = sum(api.revoke_issuance(pk, _actor(request), reason) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{done} badge(s) revoked or queued for revocation.")

    @admin.action(
        description=_("Issue again on purpose (rejected, or revoked by staff or the provider)"), permissions=["change"]
    )
    def issue_again(self, request, queryset):
        """Start a new award of badges that are never re-awarded automatically; the audit log names the user."""
        done = sum(api.reissue_issuance(pk, _actor(request)) for pk in queryset.values_list("pk", flat=True))
        skipped = queryset.count() - done
        self.message_user(
            request,
            f"{done} badge(s) queued to be issued again; {skipped} skipped (not rejected, nor revoked by staff or "
            "the provider).",
            messages.SUCCESS if not skipped else messages.WARNING,
        )


@admin.register(RejectedEvent)
class RejectedEventAdmin(admin.ModelAdmin):
    """Learning events that could not be processed; the valid ones can be replayed."""

    list_display = [
        "received_at",
        "event_type",
        "event_id",
        "course_key",
        "user_id",
        "status",
        "attempts",
        "next_attempt_at",
        "reason",
        "last_error",
    ]
    list_filter = ["status", "event_type"]
    search_fields = ["event_id", "course_key"]
    actions = ["replay_selected"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in RejectedEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description=_("Replay selected events"), permissions=["change"])
    def replay_selected(self, request, queryset):
        """Replay the selected waiting or failed events now, whether due or not."""
        ids = list(queryset.values_list("pk", flat=True))
        result = api.replay_rejected_events(ids, due_only=False, include_failed=True)
        self.message_user(
            request,
            f"{result.replayed} event(s) replayed, {result.failed} failed again (see their last error), "
            f"{result.skipped} skipped (invalid or already replayed).",
            messages.ERROR if result.failed else messages.SUCCESS,
        )


from badges_bridge import admin_provider_state  # noqa: E402, F401 - registers the provider state and privacy admins
