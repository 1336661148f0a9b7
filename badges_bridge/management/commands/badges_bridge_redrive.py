"""Replay the rejected events that are due and queue again the ledger rows whose work is due."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from badges_bridge import api, ledger
from badges_bridge.conf import get_setting
from badges_bridge.data import RedriveResult
from badges_bridge.models import MaintenanceJob


class Command(BaseCommand):
    """``badges_bridge_redrive [--limit N] [--inline] [--dry-run]``"""

    help = (
        "Replay the rejected events waiting for a retry that are due, then queue the issue/revoke task of every "
        "ledger row that is due: pending rows whose task was lost, failed rows due for a retry and rows left by a "
        "killed worker; and a reconcile task for rows with badges changed by a worker that had lost its lease."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--limit", type=int, default=None, help="At most this many rows, and rejected events, per batch."
        )
        parser.add_argument(
            "--inline",
            action="store_true",
            help="Run the tasks in this process instead of queueing them (e.g. while the broker is down).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only list the rows and the rejected events that are due."
        )
        parser.add_argument(
            "--check-drift",
            action="store_true",
            help="Also compare issued rows with the providers and mark badges deleted or expired there.",
        )

    def handle(self, *args, limit=None, inline=False, dry_run=False, check_drift=False, **options):
        if check_drift and not dry_run:
            self._check_drift()
        if dry_run:
            self._list_due(limit or 10_000)
            return
        total = RedriveResult()
        with api.maintenance_run(MaintenanceJob.REDRIVE) as run:
            while True:
                result = api.redrive(limit, inline=inline)
                total.ids += result.ids
                for name in ("issue", "revoke", "reconcile", "replayed", "replay_failed"):
                    setattr(total, name, getattr(total, name) + getattr(result, name))
                verb = "ran" if inline else "queued"
                if result.ids:
                    self.stdout.write(
                        f"{verb} {result.issue} issue, {result.revoke} revoke and {result.reconcile} reconcile task(s)"
                    )
                if not inline or not result.ids:
                    break
            run.add(api.describe_redrive(total, inline=inline), failed=bool(total.replay_failed))
        self.stdout.write(f"Replayed {total.replayed} rejected event(s); {total.replay_failed} replay(s) failed.")
        self.stdout.write(self.style.SUCCESS(f"Done: {len(total.ids)} row(s) redriven."))

    def _check_drift(self) -> None:
        with api.maintenance_run(MaintenanceJob.DRIFT) as run:
            changed, summary = api.drift_report()
            run.add(summary, failed=any(count < 0 for count in changed.values()))
        for name, count in changed.items():
            if count < 0:
                self.stderr.write(self.style.ERROR(f"drift check of {name} failed (see the log)"))
            else:
                self.stdout.write(f"drift check of {name}: {count} row(s) no longer live at the provider")

    def _list_due(self, limit: int) -> None:
        events = api.replay_candidates(limit=limit) if get_setting("ENABLED") else []
        for event in events:
            self.stdout.write(f"  rejected event {event.id}: replay")
        self.stdout.write(f"{len(events)} rejected event(s) due for a replay.")
        due = ledger.due_work(limit)
        for work in due:
            self.stdout.write(f"  issuance {work.issuance_id}: {work.operation}")
        self.stdout.write(f"{len(due)} row(s) due.")
