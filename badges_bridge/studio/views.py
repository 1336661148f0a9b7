"""The Studio page for course staff: a course's badges, their set-up, preview, backfill, approvals and awards.

Served by Studio (the CMS) under ``badges_bridge/studio/<course id>/``. Every view answers 404 for an
unknown course, sends anonymous visitors to sign in, and answers 403 to anyone without Studio write
access to the course; every change is a CSRF-protected POST. The views only call
:mod:`badges_bridge.course_setup` and :mod:`badges_bridge.api`.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views import View
from django.views.decorators.csrf import csrf_protect

from badges_bridge import api, compat, course_setup
from badges_bridge.data import MANUAL_FAILURES
from badges_bridge.exceptions import ConfigurationError, ManualAwardError
from badges_bridge.forms import ManualAwardForm
from badges_bridge.models import BackfillRunState, CourseBadge, Criterion, IssuanceState
from badges_bridge.studio.forms import (
    CourseBadgeForm,
    ReviewForm,
    RevokeForm,
    SeriesFormSet,
    series_initial,
    series_problem_rows,
)

#: Ledger rows listed per page of a badge's issuances.
ISSUANCES_PER_PAGE = 25
#: Learners shown as a sample of those who already qualify.
PREVIEW_SAMPLE_SIZE = 10
#: The fields whose change means a new preview is shown after saving.
CRITERION_FIELDS = frozenset(
    {"criterion", "grade_threshold", "certificate_modes", "series", "series_required", "earned_after", "earned_before"}
)
#: Changes shown in a badge's history, newest first.
HISTORY_SHOWN = 50
#: Ledger states of a badge a staff member can revoke.
REVOCABLE = frozenset(
    {
        IssuanceState.ISSUED,
        IssuanceState.PENDING,
        IssuanceState.ISSUING,
        IssuanceState.FAILED,
        IssuanceState.WAITING_CONSENT,
    }
)


@method_decorator(csrf_protect, name="dispatch")
class StudioView(View):
    """A page about one course: sign-in, course and permission checks, and the shared context."""

    template_name = ""

    def dispatch(self, request: HttpRequest, *args: Any, course_id: str, **kwargs: Any) -> HttpResponse:
        """Sign-in first (as Studio does), then 404 for an unknown course, then 403 without write access."""
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        try:
            self.course_key = course_setup.course_key_or_404(course_id)
        except course_setup.CourseNotFoundError as err:
            raise Http404(_("No such course.")) from err
        if not course_setup.can_manage(request.user, self.course_key):
            raise PermissionDenied(_("Only the course team (Studio write access) can set up this course's badges."))
        return super().dispatch(request, *args, **kwargs)

    def badge_or_404(self, badge_id: int) -> CourseBadge:
        """The course's badge with this id (404 for another course's badge)."""
        badge = course_setup.course_badge_or_none(self.course_key, badge_id)
        if badge is None:
            raise Http404(_("No such badge in this course."))
        return badge

    def url(self, name: str, *args: Any) -> str:
        """A page of this course."""
        return reverse(f"badges_bridge:studio-{name}", args=[str(self.course_key), *args])

    def context(self, **extra: Any) -> dict[str, Any]:
        """What every page shows: the course and its links."""
        return {
            "course_key": self.course_key,
            "course_id": str(self.course_key),
            "course_name": compat.course_display_name(self.course_key),
            "course_url": self.url("course"),
            **extra,
        }

    def page(self, request: HttpRequest, template: str, status: int = 200, **extra: Any) -> HttpResponse:
        """Render a page; its messages and path are passed along (Studio's context processors may lack them)."""
        context = self.context(messages=messages.get_messages(request), page_path=request.path, **extra)
        return render(request, f"badges_bridge/studio/{template}", context, status=status)


class CourseView(StudioView):
    """GET: the course's badges with their counts, and the course's badges switch."""

    http_method_names = ["get"]

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.page(
            request,
            "course.html",
            summaries=course_setup.summaries(self.course_key),
            course_enabled=api.course_badges_enabled(self.course_key),
            templates_available=course_setup.allowed_templates(self.course_key).exists(),
        )


class CourseSwitchView(StudioView):
    """POST ``enabled=1|0``: turn the course's badges on or off (the Course App toggle)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        enabled = request.POST.get("enabled") == "1"
        api.set_course_badges_enabled(self.course_key, enabled, request.user)
        if enabled:
            messages.success(request, _("Badges are on for this course: learners who meet a criterion earn them."))
        else:
            messages.success(
                request,
                _("Badges are off for this course: nothing new is issued. Badges already issued stay with learners."),
            )
        return HttpResponseRedirect(self.url("course"))


class BadgeFormView(StudioView):
    """GET: the add or edit form. POST: validate on the server and save, recording who changed what."""

    http_method_names = ["get", "post"]

    def get(self, request: HttpRequest, badge_id: int | None = None) -> HttpResponse:
        badge = self._badge(badge_id)
        rows = SeriesFormSet(prefix="series", initial=series_initial(badge))
        return self._render(request, CourseBadgeForm(instance=badge, series_rows=rows), rows)

    def post(self, request: HttpRequest, badge_id: int | None = None) -> HttpResponse:
        badge = self._badge(badge_id)
        before = course_setup.stored_snapshot(badge)
        rows = SeriesFormSet(request.POST, prefix="series")
        form = CourseBadgeForm(request.POST, instance=badge, series_rows=rows)
        form_ok = form.is_valid()  # validates every field and the model, even when a series row is wrong
        if not (form_ok and (rows.is_valid() or form.cleaned_data.get("criterion") != Criterion.SERIES)):
            return self._render(request, form, rows, status=400)
        created = badge.pk is None
        change = course_setup.save_course_badge(form.instance, request.user, before)
        if change is None:
            messages.info(request, _("Nothing changed."))
            return HttpResponseRedirect(self.url("badge", badge.pk))
        text = _("Badge added (version %(version)d).") if created else _("Badge saved (version %(version)d).")
        messages.success(request, text % {"version": form.instance.version})
        target = self.url("badge", form.instance.pk)
        if created or CRITERION_FIELDS & set(change.changes):
            target += "?preview=1#bb-preview"
        return HttpResponseRedirect(target)

    def _badge(self, badge_id: int | None) -> CourseBadge:
        return self.badge_or_404(badge_id) if badge_id is not None else CourseBadge(course_key=self.course_key)

    def _render(self, request: HttpRequest, form: CourseBadgeForm, rows, status: int = 200) -> HttpResponse:
        badge = form.instance
        return self.page(
            request,
            "badge_form.html",
            status=status,
            form=form,
            rows=rows,
            bad_rows=series_problem_rows(badge, rows) if rows.is_bound and "series" in form.errors else set(),
            badge=badge if badge.pk else None,
            errors=form.errors_in_order() if form.is_bound else [],
        )


class BadgeView(StudioView):
    """GET: one badge: criterion, counts, preview, backfill, approval queue, issuances, history."""

    http_method_names = ["get"]

    def get(self, request: HttpRequest, badge_id: int) -> HttpResponse:
        badge = self.badge_or_404(badge_id)
        summary = next(item for item in course_setup.summaries(self.course_key) if item.badge.pk == badge.pk)
        preview = None
        if request.GET.get("preview") == "1":
            preview = api.preview_course_badge(badge.pk, sample_size=PREVIEW_SAMPLE_SIZE)
        queue = list(course_setup.approval_queue(badge))
        issuances = Paginator(course_setup.badge_issuances(badge), ISSUANCES_PER_PAGE).get_page(request.GET.get("page"))
        return self.page(
            request,
            "badge.html",
            badge=badge,
            summary=summary,
            preview=preview,
            preview_names=course_setup.usernames(preview.sample) if preview else [],
            backfill=course_setup.latest_backfill(badge),
            running_states=[BackfillRunState.QUEUED, BackfillRunState.RUNNING],
            queue=queue,
            review_form=ReviewForm(queue_ids=[row.pk for row in queue]),
            issuances=issuances,
            revocable=REVOCABLE,
            history=[_change_row(change) for change in course_setup.history(badge)[:HISTORY_SHOWN]],
            course_enabled=api.course_badges_enabled(self.course_key),
            deletable=not badge.has_issuances(),
            payload=_payload(badge),
        )


def _payload(badge: CourseBadge) -> str:
    """The body the badge service would receive, as indented JSON (or why it cannot be shown)."""
    try:
        body = api.issue_payload_preview(badge.pk)
    except ConfigurationError as err:
        return _("Not available: %(error)s") % {"error": err}
    return json.dumps(body, indent=2, sort_keys=True, default=str)


def _change_row(change) -> dict[str, Any]:
    """One line of a badge's history: when, who, which version, and what changed (field: before → after)."""
    what = str(change.action)
    if change.action == "changed":
        what += ": " + "; ".join(
            f"{name.replace('_', ' ')}: {_shown(before)} → {_shown(after)}"
            for name, (before, after) in change.changes.items()
        )
    return {
        "at": change.at,
        "who": change.changed_by.username if change.changed_by else "",
        "version": change.version,
        "text": what,
    }


def _shown(value: Any) -> str:
    if value in (None, "", []):
        return "—"
    if isinstance(value, list):
        return ", ".join(str(item.get("course_key", item)) if isinstance(item, dict) else str(item) for item in value)
    return str(value)


class BadgeEnableView(StudioView):
    """POST ``enabled=1|0``: enable or disable one badge."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, badge_id: int) -> HttpResponse:
        badge = self.badge_or_404(badge_id)
        enabled = request.POST.get("enabled") == "1"
        course_setup.set_enabled(badge, enabled, request.user)
        if enabled:
            messages.success(request, _("Badge enabled: learners who meet its criterion earn it."))
        else:
            messages.success(request, _("Badge disabled: nothing new is issued. Badges already issued stay."))
        return HttpResponseRedirect(self.url("badge", badge.pk))


class BadgeDeleteView(StudioView):
    """GET: confirm. POST: delete a badge that has no issuance (one that has can only be disabled)."""

    http_method_names = ["get", "post"]

    def get(self, request: HttpRequest, badge_id: int) -> HttpResponse:
        badge = self.badge_or_404(badge_id)
        return self.page(request, "badge_delete.html", badge=badge, deletable=not badge.has_issuances())

    def post(self, request: HttpRequest, badge_id: int) -> HttpResponse:
        badge = self.badge_or_404(badge_id)
        name = badge.template.name
        try:
            course_setup.delete_course_badge(badge, request.user)
        except ConfigurationError as err:
            messages.error(request, str(err))
            return HttpResponseRedirect(self.url("badge", badge.pk))
        messages.success(request, _("Badge %(name)s deleted.") % {"name": name})
        return HttpResponseRedirect(self.url("course"))


class BackfillView(StudioView):
    """POST: start a backfill of the badge (learners who already qualify get it, in throttled batches)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, badge_id: int) -> HttpResponse:
        badge = self.badge_or_404(badge_id)
        try:
            _run, created = course_setup.start_backfill(badge, request.user)
        except ConfigurationError as err:
            messages.error(request, str(err))
        else:
            if created:
                messages.success(
                    request, _("Backfill started: learners who already qualify are queued for their badge.")
                )
            else:
                messages.info(request, _("A backfill of this badge is already running; its progress is below."))
        return HttpResponseRedirect(self.url("badge", badge.pk) + "#bb-backfill")


class BackfillStatusView(StudioView):
    """GET: the latest backfill's progress as JSON (the badge page refreshes its progress bar with it)."""

    http_method_names = ["get"]

    def get(self, request: HttpRequest, badge_id: int) -> HttpResponse:
        run = course_setup.latest_backfill(self.badge_or_404(badge_id))
        if run is None:
            return JsonResponse({"state": None})
        return JsonResponse(
            {
                "state": run.state,
                "state_label": str(run.get_state_display()),
                "running": run.state in (BackfillRunState.QUEUED, BackfillRunState.RUNNING),
                "total": run.total,
                "read": run.read,
                "recorded": run.recorded,
                "existing": run.existing,
                "not_met": run.not_met,
                "message": run.message,
                "text": render_to_string("badges_bridge/studio/_backfill_state.html", {"run": run}).strip(),
            }
        )


class ReviewView(StudioView):
    """POST: approve, or decline with a reason, the selected learners of the approval queue."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, badge_id: int) -> HttpResponse:
        badge = self.badge_or_404(badge_id)
        queue_ids = list(course_setup.approval_queue(badge).values_list("pk", flat=True))
        form = ReviewForm(request.POST, queue_ids=queue_ids)
        if not form.is_valid():
            for messages_ in form.errors.values():
                for text in messages_:
                    messages.error(request, text)
            return HttpResponseRedirect(self.url("badge", badge.pk) + "#bb-approvals")
        ids = form.cleaned_data["issuances"]
        if form.cleaned_data["decision"] == "approve":
            result = api.approve_awards(badge.pk, ids, request.user)
            done = ngettext("%(count)d learner approved.", "%(count)d learners approved.", len(result.done))
        else:
            result = api.decline_awards(badge.pk, ids, request.user, form.cleaned_data["reason"].strip())
            done = ngettext("%(count)d learner declined.", "%(count)d learners declined.", len(result.done))
        messages.success(request, done % {"count": len(result.done)})
        for issuance_id, why in result.skipped:
            messages.warning(request, _("Row #%(id)d not changed: %(why)s") % {"id": issuance_id, "why": why})
        return HttpResponseRedirect(self.url("badge", badge.pk) + "#bb-approvals")


class AwardView(StudioView):
    """GET: the manual award form. POST: award the badge by hand, with one result per line."""

    http_method_names = ["get", "post"]

    def get(self, request: HttpRequest, badge_id: int) -> HttpResponse:
        return self._render(request, self.badge_or_404(badge_id), ManualAwardForm())

    def post(self, request: HttpRequest, badge_id: int) -> HttpResponse:
        badge = self.badge_or_404(badge_id)
        form = ManualAwardForm(request.POST, request.FILES)
        if not form.is_valid():
            return self._render(request, badge, form, status=400)
        data = form.cleaned_data
        try:
            report = api.award_manually(
                badge.pk, data["lines"], course_setup.staff_actor(request.user), data["reason"].strip()
            )
        except ManualAwardError as err:
            form.add_error(None, str(err))
            return self._render(request, badge, form, status=400)
        return self._render(request, badge, ManualAwardForm(), report=report)

    def _render(self, request, badge, form, status: int = 200, report=None) -> HttpResponse:
        return self.page(
            request, "award.html", status=status, badge=badge, form=form, report=report, failures=MANUAL_FAILURES
        )


class RevokeView(StudioView):
    """GET: confirm, with a reason. POST: revoke one learner's badge of this course."""

    http_method_names = ["get", "post"]

    def get(self, request: HttpRequest, badge_id: int, issuance_id: int) -> HttpResponse:
        badge, row = self._row(badge_id, issuance_id)
        return self.page(request, "revoke.html", badge=badge, row=row, form=RevokeForm())

    def post(self, request: HttpRequest, badge_id: int, issuance_id: int) -> HttpResponse:
        badge, row = self._row(badge_id, issuance_id)
        form = RevokeForm(request.POST)
        if not form.is_valid():
            return self.page(request, "revoke.html", status=400, badge=badge, row=row, form=form)
        result = api.revoke_issuance(row.pk, course_setup.staff_actor(request.user), form.cleaned_data["reason"])
        level = messages.success if result.applied else messages.warning
        level(
            request, _("Revoke of %(user)s's badge: %(result)s") % {"user": row.user.username, "result": result.message}
        )
        return HttpResponseRedirect(self.url("badge", badge.pk) + "#bb-issuances")

    def _row(self, badge_id: int, issuance_id: int):
        badge = self.badge_or_404(badge_id)
        row = course_setup.badge_issuances(badge).filter(pk=issuance_id).first()
        if row is None:
            raise Http404(_("No such award of this badge."))
        return badge, row
