"""Django admin for operators: the health overview, accounts, templates, course badges, the ledger and rejected events.

Every action needs the *change* permission of its model; staff who may only
view see the lists and pages without any action. Actions report what they did
to each row, as it is once they return (see :mod:`badges_bridge.api`).
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.actions import delete_selected
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, causes, webhooks
from badges_bridge.admin_display import (
    CourseFilter,
    HealthFilter,
    ProviderFilter,
    actor_text,
    breakable_key,
    count_link,
    course_key_problem,
    provider_name,
    short_text,
    state_badge,
    time_column,
    time_html,
    usernames,
)
from badges_bridge.data import MANUAL_FAILURES, ActionOutcome, RowActionResult, TokenStatus
from badges_bridge.exceptions import ConfigurationError, ManualAwardError
from badges_bridge.forms import REVOKE_REASON_MAX_LENGTH, ManualAwardForm
from badges_bridge.models import (
    BadgeIssuance,
    BadgeTemplate,
    CourseBadge,
    Criterion,
    HealthOverview,
    IssuanceState,
    ProviderAccount,
    RejectedEvent,
    RevokePolicy,
)
from badges_bridge.providers import get_provider_class, provider_choices, provider_paths

#: Longest provider reply shown in the admin; a longer one is cut and ends with an ellipsis.
MAX_REPLY_LENGTH = 300
#: Rows reported one by one after an action; the others are summed up.
ROWS_REPORTED = 20
#: The message level of each outcome of an action.
OUTCOME_LEVELS = {
    ActionOutcome.DONE: messages.SUCCESS,
    ActionOutcome.QUEUED: messages.SUCCESS,
    ActionOutcome.RECORDED: messages.INFO,
    ActionOutcome.SKIPPED: messages.WARNING,
    ActionOutcome.BLOCKED: messages.WARNING,
    ActionOutcome.FAILED: messages.ERROR,
    ActionOutcome.DEAD: messages.ERROR,
}
#: How each outcome is counted in an action's summary.
OUTCOME_WORDS = {
    ActionOutcome.DONE: "done",
    ActionOutcome.QUEUED: "queued",
    ActionOutcome.RECORDED: "recorded only",
    ActionOutcome.SKIPPED: "skipped",
    ActionOutcome.BLOCKED: "not retried (cause still there)",
    ActionOutcome.FAILED: "failed again, will retry",
    ActionOutcome.DEAD: "failed again, dead",
}
#: What the overview says of each token status.
TOKEN_WORDS = {
    TokenStatus.MISSING: _("missing"),
    TokenStatus.EXPIRED: _("expired"),
    TokenStatus.EXPIRING: _("expires soon"),
    TokenStatus.OK: _("valid"),
    TokenStatus.UNKNOWN: _("set, no expiry date entered"),
}


class OperatorMedia:
    """The admin's stylesheet and scripts."""

    css = {"all": ["badges_bridge/admin.css"]}
    js = ["badges_bridge/admin.js"]


#: The revoke policies in a few words, for the course badge list.
_POLICY_SHORT = {
    RevokePolicy.NEVER: _("never revoked"),
    RevokePolicy.CRITERION_UNMET: _("revoked when unmet"),
    RevokePolicy.CERTIFICATE_REVOKED: _("revoked with the certificate"),
}


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


def _check_mark(ok: bool | None, moment, message: str = "") -> str:
    """A result (OK, failed, never) above its time; the message in the tooltip."""
    if ok is None:
        return format_html('<span class="bb-zero">{}</span>', _("never"))
    css, word = ("ok", _("OK")) if ok else ("bad", _("failed"))
    return format_html(
        '<span class="bb-state bb-{}" title="{}">{}</span><br>{}', css, message or "", word, time_html(moment)
    )


# -- the health overview ------------------------------------------------------------------------------------------


@admin.register(HealthOverview)
class HealthOverviewAdmin(admin.ModelAdmin):
    """One page that says what is healthy, what is broken and what to do next."""

    Media = OperatorMedia

    def has_view_permission(self, request, obj=None) -> bool:
        """Whoever may see the ledger may see its overview."""
        return request.user.has_perm("badges_bridge.view_badgeissuance") or request.user.has_perm(
            "badges_bridge.change_badgeissuance"
        )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        """Only the overview page: the proxy's rows are the ledger's, shown by the ledger's own pages."""
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.changelist_view), name=name)]

    def changelist_view(self, request, extra_context=None):
        """The overview page."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        report = api.health_report()
        context = {
            **self.admin_site.each_context(request),
            "title": _("Badges health overview"),
            "opts": self.model._meta,
            "report": report,
            "bucket_links": _bucket_links(report.buckets, report.stuck),
            "state_rows": [
                (state_badge(item.state, item.operation or "issue"), _state_link(item)) for item in report.states
            ],
            "dead_rows": [
                (reason, count_link(reason.count, state=IssuanceState.DEAD, error_cause=reason.cause))
                for reason in report.dead_reasons
            ],
            "account_rows": [_account_row(account) for account in report.accounts],
            "media": self.media,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/badges_bridge/healthoverview/overview.html", context)


def _state_link(item) -> str:
    params = {"state": item.state}
    if item.operation:
        params["operation"] = item.operation
    return count_link(item.count, **params)


def _bucket_links(buckets: dict[str, int], stuck: int) -> list[tuple[str, str, str]]:
    """(label, css, link) of each health bucket, then the stuck rows."""
    return [
        (_("Issued"), "ok", count_link(buckets["issued"], state=IssuanceState.ISSUED)),
        (_("In progress"), "busy", count_link(buckets["in_progress"], health="in_progress")),
        (_("Failing, will retry"), "warn", count_link(buckets["failing"], state=IssuanceState.FAILED)),
        (_("Dead, need an operator"), "bad", count_link(buckets["dead"], state=IssuanceState.DEAD)),
        (_("Stuck (due, nobody working)"), "bad" if stuck else "ok", count_link(stuck, health="stuck")),
        (_("Revoked, rejected or not met"), "off", str(buckets["closed"])),
    ]


def _account_row(account) -> dict:
    account_filter = {"course_badge__template__account__id__exact": account.account_id}
    token_css = {"ok": "ok", "unknown": "off", "expiring": "warn"}.get(account.token_status, "bad")
    return {
        "status": account,
        "link": reverse("admin:badges_bridge_provideraccount_change", args=[account.account_id]),
        "token": format_html('<span class="bb-state bb-{}">{}</span>', token_css, TOKEN_WORDS[account.token_status]),
        "token_expires": time_html(account.token_expires_at) if account.token_expires_at else "",
        "check": _check_mark(account.check_ok, account.check_at, account.check_message),
        "check_message": _reply(account.check_message),
        "sync": _check_mark(account.sync_ok, account.sync_at, account.sync_message),
        "sync_message": _reply(account.sync_message),
        "counts": [
            count_link(account.counts["issued"], state=IssuanceState.ISSUED, **account_filter),
            count_link(account.counts["in_progress"], health="in_progress", **account_filter),
            count_link(account.counts["failing"], state=IssuanceState.FAILED, **account_filter),
            count_link(account.counts["dead"], state=IssuanceState.DEAD, **account_filter),
        ],
    }


# -- provider accounts -------------------------------------------------------------------------------------------


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

    def full_clean(self) -> None:
        """Validate; a token typed into a form that comes back with errors must be typed again, and says so."""
        super().full_clean()
        if self.is_bound and self._errors and self.data.get("api_token") and "api_token" not in self._errors:
            self.add_error(
                "api_token",
                _("Enter the API token again: for its safety it is never sent back to the browser."),
            )

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
    """Provider accounts with connection checks and template sync; saving an account tests its connection."""

    Media = OperatorMedia
    form = ProviderAccountForm
    list_display = [
        "name",
        "provider_shown",
        "enabled",
        "token_status",
        "last_check",
        "last_sync",
    ]
    list_filter = [ProviderFilter, "enabled"]
    search_fields = ["name", "organization_id"]
    readonly_fields = [
        "token_updated_at_shown",
        "last_check",
        "last_check_reply",
        "last_sync",
        "last_sync_reply",
        "last_synced_at_shown",
        "webhook",
    ]
    actions = ["test_connection", "sync_templates", "rotate_webhook_token"]

    token_expires_at_shown = time_column("token_expires_at", _("token expires"))
    token_updated_at_shown = time_column("token_updated_at", _("token entered"))
    last_synced_at_shown = time_column("last_synced_at", _("last successful sync"))

    @admin.display(description=_("provider"), ordering="provider")
    def provider_shown(self, account: ProviderAccount) -> str:
        return provider_name(account.provider)

    @admin.display(description=_("API token"), ordering="token_expires_at")
    def token_status(self, account: ProviderAccount) -> str:
        """Whether a token is stored (never the token itself), and when it expires."""
        if not account.has_token:
            return format_html('<span class="bb-state bb-bad">{}</span>', _("missing"))
        entered = f"set {account.token_updated_at:%Y-%m-%d}" if account.token_updated_at else "set"
        if account.token_expires_at is None:
            return format_html('{}<br><span class="bb-sub">{}</span>', entered, _("no expiry date entered"))
        return format_html(
            '{}<br><span class="bb-sub">{}</span> {}', entered, _("expires"), time_html(account.token_expires_at)
        )

    @admin.display(description=_("last connection test"), ordering="last_check_at")
    def last_check(self, account: ProviderAccount) -> str:
        return _check_mark(account.last_check_ok, account.last_check_at, _reply(account.last_check_message))

    @admin.display(description=_("last check message"))
    def last_check_reply(self, account: ProviderAccount) -> str:
        """The latest connection check's message, cut."""
        return _reply(account.last_check_message)

    @admin.display(description=_("last template sync"), ordering="last_sync_attempt_at")
    def last_sync(self, account: ProviderAccount) -> str:
        return _check_mark(account.last_sync_ok, account.last_sync_attempt_at, _reply(account.last_sync_message))

    @admin.display(description=_("last sync message"))
    def last_sync_reply(self, account: ProviderAccount) -> str:
        """The latest template sync's result, cut."""
        return _reply(account.last_sync_message)

    def save_model(self, request, obj, form, change) -> None:
        """Save, then test the connection of an enabled account and keep the result for the messages."""
        super().save_model(request, obj, form, change)
        if obj.enabled:
            request.badges_bridge_check = api.check_accounts([obj.pk])[0]

    def message_user(self, request, message, level=messages.INFO, extra_tags="", fail_silently=False) -> None:
        """After a save, say whether the connection test passed instead of only "saved successfully"."""
        check = getattr(request, "badges_bridge_check", None)
        if check is not None:
            del request.badges_bridge_check
            if check.ok:
                message = format_html("{} {}", message, _("Its connection test passed: %s.") % _reply(check.message))
            else:
                message = format_html("{} {}", message, _("But its connection test failed: %s") % _reply(check.message))
                level = messages.ERROR
        super().message_user(request, message, level, extra_tags, fail_silently)

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

    @admin.action(description=_("Sync templates"), permissions=["change"])
    def sync_templates(self, request, queryset):
        """Queue a template sync per account, and report its result when it has already run."""
        from badges_bridge.tasks import queue_options
        from badges_bridge.tasks import sync_templates as sync_task

        for account in queryset:
            before = account.last_sync_attempt_at
            try:
                sync_task.apply_async((account.pk,), **queue_options())
            except Exception as err:  # noqa: BLE001 - report broker problems to the operator
                self.message_user(
                    request,
                    _reply(f"{account.name}: the sync could not be queued (the task broker refused it: {err})"),
                    messages.ERROR,
                )
                continue
            account.refresh_from_db()
            if account.last_sync_attempt_at == before:
                self.message_user(
                    request,
                    f"{account.name}: template sync queued; its result will show in the 'last template sync' column.",
                    messages.SUCCESS,
                )
            else:
                level = messages.SUCCESS if account.last_sync_ok else messages.ERROR
                self.message_user(request, _reply(f"{account.name}: {account.last_sync_message}"), level)


@admin.register(BadgeTemplate)
class BadgeTemplateAdmin(admin.ModelAdmin):
    """Templates are synced from the providers: read-only here."""

    Media = OperatorMedia
    list_display = ["name", "account", "state_shown", "external_id", "last_synced_at_shown"]
    list_filter = ["account", "state"]
    search_fields = ["name", "external_id"]

    last_synced_at_shown = time_column("last_synced_at", _("last synced"))

    @admin.display(description=_("state"), ordering="state")
    def state_shown(self, template: BadgeTemplate) -> str:
        css = "ok" if template.state == BadgeTemplate.State.ACTIVE else "bad"
        return format_html('<span class="bb-state bb-{}">{}</span>', css, template.get_state_display())

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# -- course badges -------------------------------------------------------------------------------------------------


class CourseBadgeForm(forms.ModelForm):
    """Only active templates can be attached; course keys and thresholds are checked with a clear message."""

    course_key = forms.CharField(
        max_length=255,
        widget=forms.TextInput(attrs={"size": 45, "placeholder": "course-v1:DemoX+Stats+2026"}),
        label=_("Course key"),
        help_text=_("The course id, as in the course's URL, e.g. course-v1:DemoX+Stats+2026."),
    )
    confirm_small_threshold = forms.BooleanField(
        required=False,
        label=_("Yes, I mean a threshold of 1 percent or less"),
        help_text=_("Thresholds are percentages: 80 means 80 %. Tick this only to keep a threshold between 0 and 1."),
    )

    class Meta:
        model = CourseBadge
        fields = [
            "course_key",
            "template",
            "criterion",
            "grade_threshold",
            "confirm_small_threshold",
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

    def clean_course_key(self) -> CourseKey:
        """A course key, or a message that says what one looks like."""
        value = self.cleaned_data["course_key"]
        problem = course_key_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return CourseKey.from_string(value.strip())

    def clean(self):
        """Drop the parameters of other criteria, and make a threshold of 1 % or less a confirmed choice."""
        cleaned = super().clean()
        criterion = cleaned.get("criterion")
        if criterion != Criterion.GRADE_AT_LEAST:
            cleaned["grade_threshold"] = self.instance.grade_threshold = None
        if criterion != Criterion.CERTIFICATE:
            cleaned["certificate_modes"] = self.instance.certificate_modes = ""
        threshold = cleaned.get("grade_threshold")
        if (
            criterion == Criterion.GRADE_AT_LEAST
            and threshold is not None
            and Decimal(0) < threshold <= Decimal(1)
            and not cleaned.get("confirm_small_threshold")
        ):
            self.instance.grade_threshold = threshold  # the model's own check must not call it missing
            self.add_error(
                "grade_threshold",
                _(
                    "%(value)s means %(value)s percent, not %(percent)s percent: thresholds are percentages from 0 "
                    "to 100. Enter %(percent)s for %(percent)s %%, or tick 'Yes, I mean a threshold of 1 percent or "
                    "less' to keep %(value)s %%."
                )
                % {"value": f"{threshold.normalize():f}", "percent": f"{(threshold * 100).normalize():f}"},
            )
        return cleaned


@admin.register(CourseBadge)
class CourseBadgeAdmin(admin.ModelAdmin):
    """Badges attached to courses, with their ledger counts linked to the matching rows."""

    Media = OperatorMedia
    form = CourseBadgeForm
    list_display = [
        "badge_shown",
        "criterion_shown",
        "issued_count",
        "in_progress_count",
        "failing_count",
        "dead_count",
        "revoked_count",
    ]
    list_display_links = ["badge_shown"]
    list_filter = ["enabled", "criterion", "revoke_policy", "template__account", "template__state"]
    search_fields = ["course_key", "template__name"]

    #: The criterion's own parameters follow it; the page's script shows only those of the chosen criterion.
    fieldsets = [(None, {"fields": CourseBadgeForm.Meta.fields})]

    def get_readonly_fields(self, request, obj=None):
        """The course of an existing badge cannot change, nor its template once its ledger has rows."""
        if obj is None:
            return []
        if obj.has_issuances():
            return ["course_key", "template"]
        return ["course_key"]

    def get_queryset(self, request):
        def count(*states):
            return Count("issuances", filter=Q(issuances__state__in=states))

        return (
            super()
            .get_queryset(request)
            .select_related("template__account")
            .annotate(
                issued=count(*api.BUCKETS["issued"]),
                in_progress=count(*api.BUCKETS["in_progress"]),
                failing=count(*api.BUCKETS["failing"]),
                dead=count(*api.BUCKETS["dead"]),
                revoked=count(IssuanceState.REVOKED),
            )
        )

    @admin.display(description=_("course and template"), ordering="course_key")
    def badge_shown(self, badge: CourseBadge) -> str:
        """The course (marked when disabled), and under it the template with its state at the provider."""
        template = badge.template
        disabled = "" if badge.enabled else format_html(' <span class="bb-state bb-off">{}</span>', _("disabled"))
        state = ""
        if template.state != BadgeTemplate.State.ACTIVE:
            state = format_html(' <span class="bb-state bb-bad">{}</span>', template.get_state_display().lower())
        return format_html(
            '{}{}<br><span class="bb-sub">{}{}</span>', breakable_key(badge.course_key), disabled, template.name, state
        )

    @admin.display(description=_("criterion"), ordering="criterion")
    def criterion_shown(self, badge: CourseBadge) -> str:
        if badge.criterion == Criterion.GRADE_AT_LEAST and badge.grade_threshold is not None:
            criterion = f"grade ≥ {badge.grade_threshold.normalize():f} %"
        elif badge.criterion == Criterion.CERTIFICATE:
            criterion = f"certificate: {', '.join(sorted(badge.modes()))}" if badge.modes() else "certificate"
        else:
            criterion = "passed"
        policy = _POLICY_SHORT.get(badge.revoke_policy, badge.revoke_policy)
        if badge.requires_approval:
            policy = _("%(policy)s; staff approve awards") % {"policy": policy}
        return format_html('{}<br><span class="bb-sub">{}</span>', criterion, policy)

    @admin.display(description=_("issued"), ordering="issued")
    def issued_count(self, badge) -> str:
        return count_link(badge.issued, course_badge__exact=badge.pk, state=IssuanceState.ISSUED)

    @admin.display(description=_("in prog."), ordering="in_progress")
    def in_progress_count(self, badge) -> str:
        return count_link(badge.in_progress, course_badge__exact=badge.pk, health="in_progress")

    @admin.display(description=_("failing"), ordering="failing")
    def failing_count(self, badge) -> str:
        return count_link(badge.failing, course_badge__exact=badge.pk, state=IssuanceState.FAILED)

    @admin.display(description=_("dead"), ordering="dead")
    def dead_count(self, badge) -> str:
        return count_link(badge.dead, course_badge__exact=badge.pk, state=IssuanceState.DEAD)

    @admin.display(description=_("revoked"), ordering="revoked")
    def revoked_count(self, badge) -> str:
        return count_link(badge.revoked, course_badge__exact=badge.pk, state=IssuanceState.REVOKED)

    actions = ["award_manually"]

    def has_award_permission(self, request) -> bool:
        """Awarding by hand changes the ledger: it needs the change permission on badge issuances."""
        return request.user.has_perm(f"{BadgeIssuance._meta.app_label}.change_badgeissuance")

    @admin.action(description=_("Award manually…"), permissions=["award"])
    def award_manually(self, request, queryset):
        """Open the manual award page of the one selected course badge."""
        ids = list(queryset.values_list("pk", flat=True)[:2])
        if len(ids) != 1:
            self.message_user(request, _("Select exactly one course badge to award manually."), messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:badges_bridge_coursebadge_award", args=[ids[0]]))

    def get_urls(self):
        award = path(
            "<int:badge_id>/award/",
            self.admin_site.admin_view(self.award_view),
            name="badges_bridge_coursebadge_award",
        )
        return [award, *super().get_urls()]

    def award_view(self, request, badge_id: int):
        """Award the course badge by hand to pasted or uploaded learners, and show one result per line."""
        if not self.has_award_permission(request):
            raise PermissionDenied
        badge = CourseBadge.objects.select_related("template").filter(pk=badge_id).first()
        if badge is None:
            raise Http404("no such course badge")
        report = None
        form = ManualAwardForm(request.POST, request.FILES) if request.method == "POST" else ManualAwardForm()
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            try:
                report = api.award_manually(badge.pk, data["lines"], _actor(request), data["reason"].strip())
            except ManualAwardError as err:
                form.add_error(None, str(err))
            else:
                level = messages.WARNING if report.failed else messages.SUCCESS
                self.message_user(request, report.summary(), level)
                form = ManualAwardForm()
        context = {
            **self.admin_site.each_context(request),
            "title": _("Award manually: %(badge)s") % {"badge": badge},
            "opts": self.model._meta,
            "badge": badge,
            "form": form,
            "report": report,
            "failures": MANUAL_FAILURES,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/badges_bridge/coursebadge/award.html", context)

    def delete_view(self, request, object_id, extra_context=None):
        """A course badge with ledger rows cannot be deleted: say so, and what to do instead."""
        badge = self.get_object(request, object_id)
        if badge is not None and badge.has_issuances():
            self.message_user(request, _undeletable_message([badge]), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:badges_bridge_coursebadge_change", args=[badge.pk]))
        return super().delete_view(request, object_id, extra_context)

    def get_actions(self, request):
        """Django's bulk delete, refusing course badges that have ledger rows."""
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            _func, name, description = actions["delete_selected"]
            actions["delete_selected"] = (type(self).delete_unused, name, description)
        return actions

    def delete_unused(self, request, queryset):
        """Delete the selected course badges, unless one has ledger rows."""
        used = [badge for badge in queryset if badge.has_issuances()]
        if used:
            self.message_user(request, _undeletable_message(used), messages.ERROR)
            return None
        return delete_selected(self, request, queryset)


def _undeletable_message(badges: list[CourseBadge]) -> str:
    names = ", ".join(str(badge) for badge in badges[:5]) + (" …" if len(badges) > 5 else "")
    return (
        f"Not deleted: {names} already has ledger rows (badges issued or on their way), which are kept as the "
        "record of every award. To stop awarding it, untick 'Enabled' and save."
    )


# -- the ledger ----------------------------------------------------------------------------------------------------


class RevokeForm(forms.Form):
    """The operator's reason for revoking badges."""

    reason = forms.CharField(
        max_length=REVOKE_REASON_MAX_LENGTH,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        label=_("Reason"),
        help_text=_("Kept in the ledger and the audit log, and sent to providers that store one (Credly)."),
    )


@admin.register(BadgeIssuance)
class BadgeIssuanceAdmin(admin.ModelAdmin):
    """The issuance ledger: filter, search, retry and revoke; every change is in the audit log."""

    Media = OperatorMedia
    change_list_template = "admin/badges_bridge/badgeissuance/change_list.html"
    change_form_template = "admin/badges_bridge/badgeissuance/change_form.html"
    list_display = ["learner_shown", "badge_shown", "status_shown", "times_shown"]
    list_display_links = ["learner_shown"]
    list_filter = [
        HealthFilter,
        "state",
        "operation",
        "error_cause",
        "origin",
        CourseFilter,
        "course_badge__template__account",
        "course_badge__template",
    ]
    search_fields = ["user__username", "user__email", "external_id", "=course_badge__course_key"]
    # The learner is prefetched, not joined: a row whose user no longer exists must still be listed.
    list_select_related = ["course_badge__template__account"]
    actions = ["retry_now", "force_retry", "revoke", "issue_again"]
    date_hierarchy = "created"
    fieldsets = [
        (
            _("Status"),
            {"fields": ["status", "attempts", "next_attempt_at_shown", "state_changed_at_shown", "last_error_shown"]},
        ),
        (_("What to do"), {"fields": ["cause_shown", "next_step_shown"]}),
        (_("Learner and badge"), {"fields": ["learner", "course_badge_link", "template_name", "account_name"]}),
        (
            _("Award"),
            {
                "fields": [
                    "award_number",
                    "origin",
                    "lane",
                    "award_attempts",
                    "provider_requests",
                    "external_id",
                    "public_url",
                    "provider_state",
                    "qualified_at_shown",
                    "issued_at_shown",
                    "confirmed_at_shown",
                    "revoked_at_shown",
                    "revoked_by",
                    "revoke_reason",
                ]
            },
        ),
        (
            _("Evidence"),
            {
                "classes": ["collapse"],
                "fields": [
                    "event_type",
                    "event_id",
                    "event_time_shown",
                    "grade",
                    "course_run_key",
                    "config_version",
                    "created_shown",
                ],
            },
        ),
    ]

    next_attempt_at_shown = time_column("next_attempt_at", _("next attempt"))
    qualified_at_shown = time_column("qualified_at", _("qualified at"))
    issued_at_shown = time_column("issued_at", _("issued at"))
    state_changed_at_shown = time_column("state_changed_at", _("state changed at"))
    confirmed_at_shown = time_column("confirmed_at", _("confirmed by the provider at"))
    revoked_at_shown = time_column("revoked_at", _("revoked at"))
    event_time_shown = time_column("event_time", _("event time"))
    created_shown = time_column("created", _("row created at"))

    def get_readonly_fields(self, request, obj=None):
        return [name for _title, options in self.fieldsets for name in options["fields"]]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        """Rows change only through the actions: their pages are read-only, without Save buttons."""
        return obj is None and super().has_change_permission(request)

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

    @admin.display(description=_("learner"), ordering="id")
    def learner_shown(self, row) -> str:
        return format_html('{}<br><span class="bb-sub">#{}</span>', self.learner(row), row.pk)

    @admin.display(description=_("course and template"), ordering="course_badge__course_key")
    def badge_shown(self, row) -> str:
        badge = row.course_badge
        return format_html('{}<br><span class="bb-sub">{}</span>', breakable_key(badge.course_key), badge.template.name)

    @admin.display(description=_("state, operation and last error"), ordering="state")
    def status_shown(self, row) -> str:
        """The state, what the pipeline is trying to do and how often it tried, and the last error (shortened)."""
        attempts = ngettext("%(n)d attempt", "%(n)d attempts", row.attempts) % {"n": row.attempts}
        details = format_html('<br><span class="bb-sub">{}, {}</span>', row.get_operation_display().lower(), attempts)
        error = (
            format_html('<br><span class="bb-error">{}</span>', short_text(row.last_error)) if row.last_error else ""
        )
        return format_html("{}{}{}", self.status(row), details, error)

    @admin.display(description=_("qualified, issued, next attempt"), ordering="qualified_at")
    def times_shown(self, row) -> str:
        """When the learner qualified, when the badge was issued, and when the next attempt is due."""
        lines = [
            (_("qualified"), row.qualified_at),
            (_("issued"), row.issued_at),
            (_("next attempt"), row.next_attempt_at),
        ]
        return (
            format_html_join(
                mark_safe("<br>"),  # noqa: S308 - a constant
                '<span class="bb-sub">{}</span> {}',
                ((label, time_html(moment)) for label, moment in lines if moment is not None),
            )
            or "-"
        )

    @admin.display(description=_("template"))
    def template_name(self, row) -> str:
        return row.course_badge.template.name

    @admin.display(description=_("provider account"))
    def account_name(self, row) -> str:
        return str(row.course_badge.template.account)

    @admin.display(description=_("course badge"))
    def course_badge_link(self, row) -> str:
        url = reverse("admin:badges_bridge_coursebadge_change", args=[row.course_badge_id])
        return format_html('<a href="{}">{}</a>', url, row.course_badge)

    @admin.display(description=_("state"), ordering="state")
    def status(self, row) -> str:
        return state_badge(row.state, row.operation)

    @admin.display(description=_("last error"))
    def last_error_shown(self, row) -> str:
        return row.last_error or "-"

    @admin.display(description=_("cause"))
    def cause_shown(self, row) -> str:
        return row.get_error_cause_display() if row.error_cause else "-"

    @admin.display(description=_("next step"))
    def next_step_shown(self, row) -> str:
        if row.state not in (IssuanceState.FAILED, IssuanceState.DEAD):
            return _("Nothing: the row is not failing.")
        return causes.next_step(row.error_cause) or _("Read the last error, then run Retry now.")

    def changelist_view(self, request, extra_context=None):
        """The ledger, with its counts by health bucket above the list."""
        report_counts = api.ledger_health()
        buckets = {
            name: sum(report_counts.by_state.get(state, 0) for state in states) for name, states in api.BUCKETS.items()
        }
        extra = {"bucket_links": _bucket_links(buckets, report_counts.stuck)}
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """The row's page: its provider badges and its audit trail, one line per entry, and its actions."""
        extra = dict(extra_context or {})
        row = self.get_object(request, object_id) if object_id else None
        if row is not None:
            extra.update(self._detail_context(request, row))
        return super().changeform_view(request, object_id, form_url, extra)

    def _detail_context(self, request, row: BadgeIssuance) -> dict:
        entries = list(row.audit_entries.all())
        names = usernames(entry.actor for entry in entries)
        labels = dict(IssuanceState.choices)
        return {
            "title": _("Badge issuance #%(id)s") % {"id": row.pk},
            "audit_lines": [
                {
                    "at": time_html(entry.at),
                    "change": f"{labels.get(entry.from_state, '-') if entry.from_state else 'new'} → "
                    f"{labels.get(entry.to_state, entry.to_state)}",
                    "actor": actor_text(entry.actor, names),
                    "event_id": entry.event_id,
                    "message": entry.message,
                }
                for entry in entries
            ],
            "awards": [
                {
                    "number": award.number,
                    "external_id": award.external_id,
                    "status": award.get_status_display(),
                    "provider_state": award.provider_state,
                    "modified": time_html(award.modified),
                }
                for award in row.awards.all()
            ],
            "can_act": super().has_change_permission(request),
            "can_retry": row.state in (IssuanceState.FAILED, IssuanceState.DEAD),
            "can_revoke": row.state not in (IssuanceState.REJECTED, IssuanceState.NOT_MET, IssuanceState.DECLINED),
            "changelist_url": reverse("admin:badges_bridge_badgeissuance_changelist"),
        }

    def history_view(self, request, object_id, extra_context=None):
        """The row's history is its audit trail, on the row's page."""
        url = reverse("admin:badges_bridge_badgeissuance_change", args=[object_id])
        return HttpResponseRedirect(f"{url}#audit-trail")

    # -- actions ---------------------------------------------------------------------------------------------

    @admin.action(description=_("Retry now (failed or dead rows)"), permissions=["change"])
    def retry_now(self, request, queryset):
        """Retry failed or dead rows whose cause is gone, and report what became of each."""
        results = [api.retry_issuance(pk, _actor(request)) for pk in _selected_ids(queryset)]
        return self._report(request, queryset, _("Retry now"), results)

    @admin.action(description=_("Force retry (even if the cause is still there)"), permissions=["change"])
    def force_retry(self, request, queryset):
        """Retry failed or dead rows whatever their cause, and report what became of each."""
        results = [api.retry_issuance(pk, _actor(request), force=True) for pk in _selected_ids(queryset)]
        return self._report(request, queryset, _("Force retry"), results)

    @admin.action(description=_("Revoke the badge…"), permissions=["change"])
    def revoke(self, request, queryset):
        """Ask for confirmation and a reason, then revoke and report what became of each row."""
        form = RevokeForm(request.POST if "confirm" in request.POST else None)
        if form.is_bound and form.is_valid():
            reason = form.cleaned_data["reason"]
            results = [api.revoke_issuance(pk, _actor(request), reason) for pk in _selected_ids(queryset)]
            return self._report(request, queryset, _("Revoke"), results)
        return self._revoke_confirmation(request, queryset, form)

    def _revoke_confirmation(self, request, queryset, form: RevokeForm) -> TemplateResponse:
        rows = list(queryset.select_related("course_badge__template__account").order_by("id"))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Revoke badges: are you sure?"),
            "opts": self.model._meta,
            "form": form,
            "rows": [
                {
                    "row": row,
                    "learner": self.learner(row),
                    "status": self.status(row),
                    "plan": _revoke_plan(row),
                    "provider": provider_name(row.course_badge.template.account.provider),
                    "keeps_reason": _keeps_reason(row),
                }
                for row in rows
            ],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "from_detail": request.POST.get("_from_detail", ""),
            "media": self.media,
        }
        return TemplateResponse(request, "admin/badges_bridge/badgeissuance/revoke_confirmation.html", context)

    def _report(self, request, queryset, what: str, results: list[RowActionResult]):
        """One message per row (the first ROWS_REPORTED), after a summary; back to the row's page if asked."""
        labels = {row.pk: self._row_label(row) for row in queryset.select_related("course_badge")}
        tally = Counter(result.outcome for result in results)
        summary = ", ".join(f"{count} {OUTCOME_WORDS[outcome]}" for outcome, count in tally.items())
        worst = max((OUTCOME_LEVELS[outcome] for outcome in tally), default=messages.INFO)
        self.message_user(request, f"{what} on {len(results)} row(s): {summary or 'nothing selected'}.", worst)
        for result in results[:ROWS_REPORTED]:
            text = f"{labels.get(result.issuance_id, f'#{result.issuance_id}')}: {result.message}"
            if result.outcome == ActionOutcome.BLOCKED:
                text = f"{text.rstrip('.')}. To try anyway, use 'Force retry'."
            self.message_user(request, _reply(text), OUTCOME_LEVELS[result.outcome])
        if len(results) > ROWS_REPORTED:
            self.message_user(request, f"… and {len(results) - ROWS_REPORTED} more row(s), counted above.")
        if request.POST.get("_from_detail") and len(results) == 1:
            return HttpResponseRedirect(
                reverse("admin:badges_bridge_badgeissuance_change", args=[results[0].issuance_id])
            )
        return None

    def _row_label(self, row) -> str:
        return f"#{row.pk} {self.learner(row)} in {row.course_badge.course_key}"

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


def _selected_ids(queryset) -> list[int]:
    """The selected rows' ids, read once before anything changes (a filter on state would lose them)."""
    return list(queryset.order_by("id").values_list("pk", flat=True))


def _revoke_plan(row: BadgeIssuance) -> str:
    """What a revoke would do to the row."""
    if row.state in (IssuanceState.REJECTED, IssuanceState.NOT_MET, IssuanceState.DECLINED):
        return _("Nothing: there is no badge to revoke.")
    if row.state == IssuanceState.AWAITING_APPROVAL:
        return _("Taken out of the approval queue and closed as revoked; nothing was sent to the provider.")
    if row.state in (IssuanceState.REVOKED, IssuanceState.REVOKE_PENDING):
        if row.revoked_by == "operator":
            return _("Nothing: already revoked by an operator.")
        return _("Recorded as an operator's revocation (never re-awarded); nothing new is sent to the provider.")
    if not row.external_id:
        return _("Looked up at the provider and revoked there if found; the row is closed either way.")
    return _("Revoked at the provider.")


def _keeps_reason(row: BadgeIssuance) -> bool:
    try:
        return get_provider_class(row.course_badge.template.account.provider).accepts_revoke_reason
    except ConfigurationError:
        return False


@admin.register(RejectedEvent)
class RejectedEventAdmin(admin.ModelAdmin):
    """Learning events that could not be processed; the valid ones can be replayed."""

    Media = OperatorMedia
    list_display = ["received_at_listed", "event_shown", "subject_shown", "status_shown", "problem_shown"]
    list_display_links = ["received_at_listed"]
    list_filter = ["status", "event_type"]
    search_fields = ["event_id", "course_key"]
    actions = ["replay_selected"]

    received_at_listed = time_column("received_at", _("received at"), stacked=True)
    received_at_shown = time_column("received_at", _("received at"))
    next_attempt_at_shown = time_column("next_attempt_at", _("next attempt"))
    resolved_at_shown = time_column("resolved_at", _("resolved at"))

    fields = [
        "received_at_shown",
        "event_id",
        "event_type",
        "course_key",
        "user_id",
        "reason",
        "status",
        "payload",
        "attempts",
        "next_attempt_at_shown",
        "last_error",
        "resolved_at_shown",
    ]

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        """Events change only through the replay action: their pages are read-only."""
        return obj is None and super().has_change_permission(request)

    @admin.display(description=_("event"), ordering="event_type")
    def event_shown(self, event: RejectedEvent) -> str:
        kind = event.event_type.removeprefix("org.openedx.learning.").removesuffix(".v1") or "-"
        return format_html(
            '<span title="{}">{}</span><br><span class="bb-sub">{}</span>',
            event.event_type,
            breakable_key(kind),
            event.event_id or "-",
        )

    @admin.display(description=_("course and user"), ordering="course_key")
    def subject_shown(self, event: RejectedEvent) -> str:
        user = f"user #{event.user_id}" if event.user_id else "-"
        return format_html('{}<br><span class="bb-sub">{}</span>', breakable_key(event.course_key or "-"), user)

    @admin.display(description=_("status"), ordering="status")
    def status_shown(self, event: RejectedEvent) -> str:
        attempts = ngettext("%(n)d replay", "%(n)d replays", event.attempts) % {"n": event.attempts}
        due = format_html("<br>{} {}", _("next"), time_html(event.next_attempt_at)) if event.next_attempt_at else ""
        return format_html('{}<br><span class="bb-sub">{}</span>{}', event.get_status_display(), attempts, due)

    @admin.display(description=_("reason and last error"))
    def problem_shown(self, event: RejectedEvent) -> str:
        error = (
            format_html('<br><span class="bb-error">{}</span>', short_text(event.last_error))
            if event.last_error
            else ""
        )
        return format_html("{}{}", short_text(event.reason), error)

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


from badges_bridge import (  # noqa: E402 - imported last: these modules register more admins
    admin_provider_state,  # noqa: F401 - the provider state and privacy admins
    admin_studio,  # noqa: F401 - the standalone courses and course roles
)
