"""Award a course badge by hand to a list of learners (usernames or e-mail addresses)."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from opaque_keys import InvalidKeyError
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api
from badges_bridge.data import MANUAL_FAILURES
from badges_bridge.exceptions import ManualAwardError
from badges_bridge.models import CourseBadge


class Command(BaseCommand):
    """``badges_bridge_award <course_key> [--badge-id N] (--file F | --users a,b) --actor USERNAME [--reason TEXT]``"""

    help = (
        "Award a course badge by hand, whatever its criterion says, to learners named by username or e-mail "
        "address, and print one result per line. The awards go through the ledger and the usual tasks; the "
        "revoke policy never takes them back. Exits with a non-zero status when any line failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("course_key", help="The course, e.g. course-v1:Org+Course+Run.")
        parser.add_argument(
            "--badge-id", type=int, default=None, help="The course badge (optional when the course has only one)."
        )
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument(
            "--file",
            type=Path,
            help="A text or CSV file: one username or e-mail address a line (first column; optional header row).",
        )
        source.add_argument("--users", help="Usernames or e-mail addresses, comma separated.")
        parser.add_argument("--actor", required=True, help="Username of the staff member who awards the badge.")
        parser.add_argument("--reason", default="", help="Why the badge is awarded (kept in the audit log).")
        parser.add_argument("--dry-run", action="store_true", help="Show the results without awarding anything.")

    def handle(self, *args, course_key, badge_id=None, file=None, users=None, actor, reason="", dry_run=False, **opts):
        badge = self._badge(course_key, badge_id)
        actor_id = get_user_model().objects.filter(username=actor).values_list("pk", flat=True).first()
        if actor_id is None:
            raise CommandError(f"No user with the username {actor!r} (--actor)")
        lines = self._read(file) if file is not None else users.split(",")
        try:
            report = api.award_manually(badge.pk, lines, f"admin:user#{actor_id}", reason, dry_run=dry_run)
        except ManualAwardError as err:
            raise CommandError(str(err)) from err
        for line in report.lines:
            text = f"line {line.number}: {line.text}: {line.result.value}" + (
                f" ({line.detail})" if line.detail else ""
            )
            self.stdout.write(self.style.ERROR(text) if line.result in MANUAL_FAILURES else text)
        summary = ("Dry run, nothing awarded: " if dry_run else "") + report.summary()
        if report.failed:
            self.stdout.write(summary)
            raise CommandError("some lines failed; see their results above")
        self.stdout.write(self.style.SUCCESS(summary))

    @staticmethod
    def _badge(course_key: str, badge_id: int | None) -> CourseBadge:
        try:
            key = CourseKey.from_string(course_key)
        except InvalidKeyError as err:
            raise CommandError(f"Not a course key: {course_key!r}") from err
        badges = list(CourseBadge.objects.filter(course_key=key).order_by("pk"))
        if badge_id is not None:
            badges = [badge for badge in badges if badge.pk == badge_id]
            if not badges:
                raise CommandError(f"No course badge with id {badge_id} in {course_key}")
        if not badges:
            raise CommandError(f"The course {course_key} has no course badge")
        if len(badges) > 1:
            ids = ", ".join(str(badge.pk) for badge in badges)
            raise CommandError(f"The course {course_key} has several course badges ({ids}): choose one with --badge-id")
        return badges[0]

    @staticmethod
    def _read(path: Path) -> list[str]:
        try:
            return path.read_text(encoding="utf-8-sig").splitlines()
        except OSError as err:
            raise CommandError(f"Cannot read {path}: {err.strerror}") from err
        except UnicodeDecodeError as err:
            raise CommandError(f"Cannot read {path}: it is not UTF-8 text") from err
