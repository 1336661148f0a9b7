"""Replay rejected learning events that were valid but could not be processed."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from badges_bridge import api
from badges_bridge.data import RejectedEventSummary
from badges_bridge.models import RejectedEventStatus


def describe(event: RejectedEventSummary) -> str:
    """One line naming a rejected event."""
    return f"rejected event {event.id} ({event.event_type or 'unknown type'} {event.event_id or '-'})"


class Command(BaseCommand):
    """``badges_bridge_replay_events [--id N ...] [--all] [--include-failed] [--dry-run] [--limit N]``"""

    help = (
        "Replay rejected learning events that were valid but met an error: by default the waiting events whose "
        "next attempt is due, as the redrive does. Exits non-zero when a replay fails."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--id",
            type=int,
            action="append",
            dest="ids",
            metavar="N",
            help="Only this rejected event (repeatable); a named event is replayed when waiting or failed, due or not.",
        )
        parser.add_argument(
            "--all", action="store_true", dest="not_due", help="Also the waiting events that are not due yet."
        )
        parser.add_argument(
            "--include-failed", action="store_true", help="Also the events that gave up after the maximum attempts."
        )
        parser.add_argument("--dry-run", action="store_true", help="Only list the events that would be replayed.")
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help="At most this many events (default: the number of --id, else BADGES_BRIDGE_REDRIVE_BATCH_SIZE).",
        )

    def handle(self, *args, ids=None, not_due=False, include_failed=False, dry_run=False, limit=None, **options):
        named = bool(ids)
        selection = {"due_only": not (not_due or named), "include_failed": include_failed or named, "limit": limit}
        if dry_run:
            candidates = api.replay_candidates(ids, **selection)
            for event in candidates:
                self.stdout.write(f"  {describe(event)}: {event.status}, {event.attempts} attempt(s) so far")
            self.stdout.write(f"{len(candidates)} rejected event(s) would be replayed.")
            return
        result = api.replay_rejected_events(ids, **selection, progress=self._report)
        for pk in sorted(set(ids or []) - {event.id for event in result.events}):
            self.stdout.write(f"  rejected event {pk}: skipped (unknown, invalid or already replayed)")
        summary = f"{result.replayed} replayed, {result.failed} failed, {result.skipped} skipped."
        if result.failed:
            self.stdout.write(summary)
            raise CommandError(f"{result.failed} replay(s) failed (see the last error of each event)")
        self.stdout.write(self.style.SUCCESS(f"Done: {summary}"))

    def _report(self, event: RejectedEventSummary) -> None:
        if event.status == RejectedEventStatus.REPLAYED:
            self.stdout.write(self.style.SUCCESS(f"  {describe(event)}: replayed"))
        elif event.status == RejectedEventStatus.WAITING:
            self.stdout.write(
                self.style.WARNING(
                    f"  {describe(event)}: failed (attempt {event.attempts}), next attempt at "
                    f"{event.next_attempt_at:%Y-%m-%d %H:%M:%S}: {event.last_error}"
                )
            )
        else:
            self.stdout.write(
                self.style.ERROR(
                    f"  {describe(event)}: failed for good after {event.attempts} attempt(s): {event.last_error}"
                )
            )
