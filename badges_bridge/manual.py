"""Manual awards: course staff award a badge to a list of learners, whatever the criterion says.

Each input line names one learner by username or e-mail address (a pasted list, or the first
column of a CSV file with an optional ``username`` or ``email`` header row; blank lines and lines
starting with ``#`` are ignored). Every line gets one result (:class:`~badges_bridge.data.ManualResult`).
The awards go through the ledger (:func:`badges_bridge.ledger.manual_award`) and the usual tasks;
see ADR 0014. Usernames and e-mail addresses are never logged: only ids and counts.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import re
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q

from badges_bridge import ledger
from badges_bridge.data import ManualAwardLine, ManualAwardReport, ManualResult
from badges_bridge.exceptions import ManualAwardError
from badges_bridge.ledger import Work
from badges_bridge.models import BadgeTemplate, CourseBadge, CourseSettings

log = logging.getLogger(__name__)

#: Most input lines (blank lines and comments included) one manual award reads.
MAX_LINES = 10_000
#: Header cells of a CSV file's first row, skipped.
HEADERS = frozenset({"username", "user", "email", "e-mail", "mail"})
#: What Django accepts in a username.
_USERNAME = re.compile(r"^[\w.@+-]{1,150}$")
#: Lookups per query when resolving the learners.
_CHUNK = 200

_LEDGER_RESULTS = {
    ledger.ManualOutcome.AWARDED: ManualResult.AWARDED,
    ledger.ManualOutcome.ALREADY_HELD: ManualResult.ALREADY_HELD,
    ledger.ManualOutcome.NOT_ALLOWED: ManualResult.NOT_ALLOWED,
}


def parse_lines(lines: Iterable[str]) -> tuple[list[tuple[int, str, str]], list[ManualAwardLine]]:
    """Split the input into (line number, text, value) to look up and the lines that are bad already.

    Raises :class:`ManualAwardError` when there are more than :data:`MAX_LINES` lines.
    """
    wanted: list[tuple[int, str, str]] = []
    bad: list[ManualAwardLine] = []
    first = True
    for number, raw in enumerate(lines, start=1):
        if number > MAX_LINES:
            raise ManualAwardError(f"too many lines: at most {MAX_LINES} lines can be awarded at once")
        text = raw.strip().lstrip("\ufeff").strip()
        if not text or text.startswith("#"):
            continue
        try:
            cells = [cell.strip() for cell in next(csv.reader([text]))]
        except csv.Error:
            bad.append(ManualAwardLine(number, text, ManualResult.BAD_LINE, "not a CSV line"))
            first = False
            continue
        while cells and not cells[-1]:
            cells.pop()
        if first and len(cells) >= 1 and cells[0].lower() in HEADERS:
            first = False
            continue
        first = False
        if len(cells) != 1:
            detail = "more than one value" if len(cells) > 1 else "no value"
            bad.append(ManualAwardLine(number, text, ManualResult.BAD_LINE, detail))
            continue
        problem = _problem(cells[0])
        if problem:
            bad.append(ManualAwardLine(number, text, ManualResult.BAD_LINE, problem))
        else:
            wanted.append((number, text, cells[0]))
    return wanted, bad


def _problem(value: str) -> str:
    """Why ``value`` is neither a plausible e-mail address nor a plausible username ('' when it is one)."""
    if "@" in value and "." in value.rsplit("@", 1)[-1]:
        try:
            validate_email(value)
        except ValidationError:
            return "not a valid e-mail address"
        return ""
    if not _USERNAME.match(value):
        return "not a valid username or e-mail address"
    return ""


def _resolve(values: list[str]) -> tuple[dict[str, int], dict[str, int], set[str]]:
    """Users by username and by lower-cased e-mail address; e-mail addresses of several accounts."""
    users = get_user_model().objects
    names = sorted(set(values))  # a username may contain "@": an exact username match wins
    mails = sorted({value.lower() for value in values if "@" in value})
    by_name: dict[str, int] = {}
    for start in range(0, len(names), _CHUNK):
        by_name.update(users.filter(username__in=names[start : start + _CHUNK]).values_list("username", "pk"))
    by_mail: dict[str, int] = {}
    shared: set[str] = set()
    for start in range(0, len(mails), _CHUNK):
        query = Q()
        for mail in mails[start : start + _CHUNK]:
            query |= Q(email__iexact=mail)
        for email, pk in users.filter(query).values_list("email", "pk"):
            key = email.lower()
            if key in by_mail and by_mail[key] != pk:
                shared.add(key)
            by_mail[key] = pk
    return by_name, by_mail, shared


def badge_refusal(badge: CourseBadge) -> str:
    """Why nothing may be awarded for this course badge ('' when it may)."""
    if not badge.enabled:
        return "the course badge is disabled"
    if badge.template.state != BadgeTemplate.State.ACTIVE:
        return f"the badge template is {badge.template.get_state_display().lower()}, not active"
    if CourseSettings.objects.filter(course_key=badge.course_key, badges_enabled=False).exists():
        return "badges are switched off in this course"
    return ""


def award(
    course_badge_id: int, lines: Iterable[str], actor: str, reason: str = "", *, dry_run: bool = False
) -> tuple[ManualAwardReport, list[Work]]:
    """Award the course badge to the learners of ``lines``; the report and the work to queue after commit.

    With ``dry_run``, every line is decided as it would be, then everything is rolled back.
    """
    badge = CourseBadge.objects.select_related("template").filter(pk=course_badge_id).first()
    if badge is None:
        raise ManualAwardError(f"no course badge with id {course_badge_id}")
    wanted, bad = parse_lines(lines)
    by_name, by_mail, shared = _resolve([value for _number, _text, value in wanted])
    refusal = badge_refusal(badge)
    report = ManualAwardReport(course_badge_id=course_badge_id, dry_run=dry_run)
    results = list(bad)
    work: list[Work] = []
    seen: dict[int, int] = {}
    # Each award commits on its own (one row locked at a time); a dry run rolls them all back.
    with transaction.atomic() if dry_run else contextlib.nullcontext():
        for number, text, value in wanted:
            if value not in by_name and value.lower() in shared:
                detail = "several accounts have this e-mail address; use the username"
                results.append(ManualAwardLine(number, text, ManualResult.UNKNOWN_USER, detail))
                continue
            user_id = by_name.get(value) if value in by_name else by_mail.get(value.lower())
            if user_id is None:
                results.append(ManualAwardLine(number, text, ManualResult.UNKNOWN_USER, "no such user"))
                continue
            if user_id in seen:
                detail = f"the same learner as line {seen[user_id]}"
                results.append(ManualAwardLine(number, text, ManualResult.DUPLICATE_LINE, detail))
                continue
            seen[user_id] = number
            if refusal:
                results.append(ManualAwardLine(number, text, ManualResult.NOT_ALLOWED, refusal))
                continue
            outcome, detail, item = ledger.manual_award(user_id, course_badge_id, actor, reason)
            issuance_id = item.issuance_id if item else None
            results.append(ManualAwardLine(number, text, _LEDGER_RESULTS[outcome], detail, issuance_id))
            if item is not None:
                work.append(item)
        if dry_run:
            transaction.set_rollback(True)
            work = []
    report.lines = sorted(results, key=lambda line: line.number)
    log.info(
        "badges_bridge: manual award of course badge %s by %s%s: %s",
        course_badge_id,
        actor,
        " (dry run)" if dry_run else "",
        report.summary(),
    )
    return report, work
