"""Record the badges of learners who met a course badge's criterion before it was configured."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from badges_bridge import api
from badges_bridge.exceptions import ConfigurationError


class Command(BaseCommand):
    """``badges_bridge_backfill <course_key> [--user-ids-file FILE] [--dry-run]``"""

    help = (
        "Record a badge for every learner of the course who already meets the criterion of one of its enabled "
        "course badges (learners who already have a ledger row for it are left as they are). The badges are "
        "issued by the backfill feeder within BADGES_BRIDGE_BACKFILL_BUDGET_SHARE of each provider account's "
        "request limit, so that learners who pass meanwhile get theirs at once."
    )

    def add_arguments(self, parser):
        parser.add_argument("course_key", help="The course, e.g. course-v1:Org+Course+Run.")
        parser.add_argument(
            "--user-ids-file",
            type=Path,
            default=None,
            help=(
                "Only these learners: a file of user ids, one a line (default: the course's active enrollments; "
                "outside the LMS, the learners the plugin recorded in the course)."
            ),
        )
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be recorded.")

    def handle(self, *args, course_key, user_ids_file=None, dry_run=False, **options):
        user_ids = self._read_ids(user_ids_file) if user_ids_file is not None else None
        try:
            result = api.backfill_course_badge(course_key, user_ids, dry_run=dry_run, progress=self._progress)
        except ConfigurationError as err:
            raise CommandError(str(err)) from err
        self.stdout.write(self.style.SUCCESS(result.describe()))
        if result.recorded and not dry_run:
            self.stdout.write(
                "The backfill feeder issues them within the backfill share of each account's limit; those of "
                "badges that require staff approval wait in the course's approval queue first."
            )

    def _progress(self, result) -> None:
        self.stdout.write(f"... {result.learners} learner(s) read, {result.recorded} badge(s)")

    @staticmethod
    def _read_ids(path: Path) -> list[int]:
        try:
            lines = path.read_text().split()
        except OSError as err:
            raise CommandError(f"Cannot read {path}: {err.strerror}") from err
        ids = []
        for number, text in enumerate(lines, 1):
            if not text.isdigit():
                raise CommandError(f"{path}: item {number} ({text[:20]!r}) is not a user id")
            ids.append(int(text))
        return ids
