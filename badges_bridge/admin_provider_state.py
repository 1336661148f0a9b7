"""Django admin for what flows back from the providers and for retirement: notifications, notices, clean-ups.

All three are records the plugin writes; operators read them (and dismiss notices).
"""

from __future__ import annotations

from django.contrib import admin

from badges_bridge.models import OperatorNotice, ProviderCleanup, ProviderEvent


class RecordAdmin(admin.ModelAdmin):
    """Records written by the plugin: they can be read, not added or edited."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ProviderEvent)
class ProviderEventAdmin(RecordAdmin):
    """Provider notifications and what became of them (fetched back from the provider by their id)."""

    list_display = ["received_at", "account", "event_type", "status", "attempts", "next_attempt_at", "result"]
    list_filter = ["status", "account", "event_type"]
    search_fields = ["event_id"]
    date_hierarchy = "received_at"

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the record of an event id is what makes a replayed notification change nothing


@admin.register(OperatorNotice)
class OperatorNoticeAdmin(RecordAdmin):
    """Things staff must act on, such as a template deleted at the provider; delete a notice to dismiss it."""

    list_display = ["at", "account", "template", "message"]
    list_filter = ["account"]


@admin.register(ProviderCleanup)
class ProviderCleanupAdmin(RecordAdmin):
    """Badges of retired learners still to be revoked or deleted at their provider (retried until done)."""

    list_display = ["created", "account", "action", "attempts", "next_attempt_at", "last_error"]
    list_filter = ["account", "action"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleting one would leave the badge at the provider
