"""Health check for operators and monitoring: accounts reachable, no stuck or dead rows."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from badges_bridge import api
from badges_bridge.models import ProviderAccount

#: Warn this long before a provider token expires.
TOKEN_WARNING = timedelta(days=21)


class Command(BaseCommand):
    """``badges_bridge_check [--skip-accounts]``; exits non-zero when unhealthy."""

    help = (
        "Check that every enabled provider account is reachable and authorised, "
        "and that no ledger row is stuck or dead."
    )

    def add_arguments(self, parser):
        parser.add_argument("--skip-accounts", action="store_true", help="Do not call the providers.")

    def handle(self, *args, skip_accounts=False, **options):
        problems: list[str] = []
        if not skip_accounts:
            for health in api.check_accounts():
                line = f"account {health.name}: {health.message}"
                if health.ok:
                    self.stdout.write(self.style.SUCCESS(f"OK   {line}"))
                else:
                    self.stdout.write(self.style.ERROR(f"FAIL {line}"))
                    problems.append(line)
        soon = timezone.now() + TOKEN_WARNING
        for account in ProviderAccount.objects.filter(enabled=True, token_expires_at__lte=soon):
            line = f"account {account.name}: API token expires {account.token_expires_at:%Y-%m-%d}"
            self.stdout.write(self.style.WARNING(f"WARN {line}"))
            if account.token_expires_at <= timezone.now():
                problems.append(line)
        health = api.ledger_health()
        counts = ", ".join(f"{state} {count}" for state, count in sorted(health.by_state.items())) or "empty"
        self.stdout.write(f"ledger: {counts}")
        for count, text in (
            (health.stuck, "stuck (run badges_bridge_redrive)"),
            (health.dead, "dead (see the admin, then retry them)"),
        ):
            if count:
                problems.append(f"{count} ledger row(s) {text}")
                self.stdout.write(self.style.ERROR(f"FAIL {problems[-1]}"))
        if health.dead:
            for reason in api.health_report().dead_reasons:
                self.stdout.write(f"     {reason.count} dead: {reason.label}. {reason.next_step}")
        if problems:
            raise CommandError(f"{len(problems)} problem(s) found")
        self.stdout.write(self.style.SUCCESS("All checks passed."))
