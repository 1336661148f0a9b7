"""Copy badge templates from the providers into the local table."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from badges_bridge import api
from badges_bridge.exceptions import BadgesBridgeError
from badges_bridge.models import ProviderAccount


class Command(BaseCommand):
    """``badges_bridge_sync_templates [--account ID ...]``"""

    help = "Sync the badge templates of every enabled provider account (or of the given ones)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--account",
            type=int,
            action="append",
            dest="accounts",
            metavar="ID",
            help="Only this account id (repeatable).",
        )

    def handle(self, *args, accounts=None, **options):
        queryset = (
            ProviderAccount.objects.filter(pk__in=accounts)
            if accounts
            else ProviderAccount.objects.filter(enabled=True)
        )
        if accounts and queryset.count() != len(set(accounts)):
            missing = set(accounts) - set(queryset.values_list("pk", flat=True))
            raise CommandError(f"No provider account with id {', '.join(map(str, sorted(missing)))}")
        failures = 0
        for account in queryset:
            self.stdout.write(f"Syncing {account.name} ({account.provider})...")
            try:
                result = api.sync_account_templates(account.pk)
            except BadgesBridgeError as err:
                failures += 1
                self.stderr.write(self.style.ERROR(f"  failed: {err}"))
                continue
            self.stdout.write(
                self.style.SUCCESS(
                    f"  {result.created} new, {result.updated} updated, {result.unchanged} unchanged, "
                    f"{result.missing} no longer at the provider"
                )
            )
        if failures:
            raise CommandError(f"{failures} account(s) could not be synced")
