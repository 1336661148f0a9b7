"""The course staff API: a course's badges, templates, preview, backfill, approvals, manual awards and ledger.

The same rule as the Studio page applies (:func:`badges_bridge.course_setup.can_manage`, Studio write
access through :mod:`badges_bridge.compat`), checked in this order: no credentials, 401; a course key
that is malformed or names no course, 404; no write access to the course, 403; a badge or ledger row
of another course, 404. Authentication as in the learner API: an Open edX JWT (not one of a restricted
application) or the session (with CSRF checks on writes).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from edx_rest_framework_extensions.auth.jwt.authentication import JwtAuthentication
from edx_rest_framework_extensions.auth.session.authentication import SessionAuthenticationAllowInactiveUser
from edx_rest_framework_extensions.permissions import NotJwtRestrictedApplication
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from badges_bridge import api, course_setup
from badges_bridge.exceptions import ConfigurationError, ManualAwardError
from badges_bridge.models import BadgeIssuance, CourseBadge, IssuanceState
from badges_bridge.rest_api.v1 import schema  # noqa: F401 - registers the JWT scheme for the schema
from badges_bridge.rest_api.v1.staff_serializers import (
    AwaitingSerializer,
    BackfillRunSerializer,
    ChangeSerializer,
    CourseBadgeSerializer,
    DeclineSerializer,
    IdsSerializer,
    IssuanceSerializer,
    ManualAwardReportSerializer,
    ManualAwardRequestSerializer,
    PreviewSerializer,
    ReasonSerializer,
    ReviewResultSerializer,
    RowActionSerializer,
    TemplateSerializer,
)

#: Largest sample of qualifying learners a preview returns.
MAX_SAMPLE = 50


class Conflict(APIException):
    """409: the request is valid but the badge's state refuses it (e.g. delete a badge with awards)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The badge's current state does not allow this."
    default_code = "conflict"


class CanManageCourseBadges(BasePermission):
    """Studio write access to the URL's course (global staff have it for every course)."""

    message = "You need Studio write access to this course (course staff or instructor) to manage its badges."

    def has_permission(self, request: Request, view) -> bool:
        """401 without credentials; 404 for an unknown course; 403 without write access to it."""
        if not (request.user and request.user.is_authenticated):
            return False
        try:
            view.course_key = course_setup.course_key_or_404(view.kwargs["course_id"])
        except course_setup.CourseNotFoundError as err:
            raise NotFound(str(err)) from None
        if not course_setup.can_manage(request.user, view.course_key):
            raise PermissionDenied(self.message)
        return True


class StaffPagination(PageNumberPagination):
    """Pages of 50 by default; ``page_size`` up to 200."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class StaffSchema(AutoSchema):
    """Per-method request and response serializers, read from the view's ``request_serializers`` and
    ``response_serializers`` (no method decorators, which would depend on the platform's DEFAULT_SCHEMA_CLASS)."""

    def get_request_serializer(self) -> Any:
        """The request body of this method (the view's serializer when it names none)."""
        serializers = getattr(self.view, "request_serializers", {})
        return serializers[self.method] if self.method in serializers else super().get_request_serializer()

    def get_response_serializers(self) -> Any:
        """The responses of this method (the view's serializer when it names none)."""
        serializers = getattr(self.view, "response_serializers", {})
        return serializers[self.method] if self.method in serializers else super().get_response_serializers()

    def get_tags(self) -> list[str]:
        """One tag for the whole staff API."""
        return ["course staff"]


class StaffAPIView(GenericAPIView):
    """Authentication, the course permission, pagination and error mapping shared by the staff API."""

    # JWT first: its WWW-Authenticate header makes an anonymous request a 401 rather than a 403.
    authentication_classes = (JwtAuthentication, SessionAuthenticationAllowInactiveUser)
    # A restricted application's JWT (an OAuth client acting with limited scopes) never manages course badges.
    permission_classes = (CanManageCourseBadges, NotJwtRestrictedApplication)
    parser_classes = (JSONParser, FormParser, MultiPartParser)
    pagination_class = StaffPagination
    schema = StaffSchema()
    #: Set by the permission: the URL's course.
    course_key = None

    def handle_exception(self, exc: Exception) -> Response:
        """A refusal of the badge's state (ConfigurationError) is a 409; a manual award that cannot start, a 400."""
        if isinstance(exc, ConfigurationError):
            exc = Conflict(str(exc))
        elif isinstance(exc, ManualAwardError):
            exc = ValidationError({"lines": [str(exc)]})
        return super().handle_exception(exc)

    def get_badge(self) -> CourseBadge:
        """The URL's course badge, of the URL's course (404 otherwise)."""
        badge = (
            CourseBadge.objects.select_related("template__account")
            .filter(pk=self.kwargs["badge_id"], course_key=self.course_key)
            .first()
        )
        if badge is None:
            raise NotFound("This course has no badge with this id.")
        return badge

    def badge_and_input(self, request: Request) -> tuple[CourseBadge, dict[str, Any]]:
        """The URL's course badge and the request body, validated by the view's serializer (400 otherwise)."""
        badge = self.get_badge()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return badge, serializer.validated_data

    def actor(self) -> str:
        """The audit log's name for the requester: their user id, never their name."""
        return f"staff:{self.request.user.pk}"

    def get_serializer_context(self) -> dict[str, Any]:
        """The course key is part of every serializer's context."""
        return {**super().get_serializer_context(), "course_key": self.course_key}


def _counts(course_key) -> dict[int, dict[str, int]]:
    return {summary.badge.pk: summary.counts for summary in course_setup.summaries(course_key)}


class CourseBadgesView(StaffAPIView):
    """The course's badges, with their criterion and expiry in words and their ledger counts; add one."""

    serializer_class = CourseBadgeSerializer
    pagination_class = None
    response_serializers = {"GET": CourseBadgeSerializer(many=True), "POST": {201: CourseBadgeSerializer}}

    def get(self, request: Request, course_id: str) -> Response:
        """List the course's badges."""
        summaries = course_setup.summaries(self.course_key)
        context = {**self.get_serializer_context(), "counts": {item.badge.pk: item.counts for item in summaries}}
        return Response(CourseBadgeSerializer([item.badge for item in summaries], many=True, context=context).data)

    def post(self, request: Request, course_id: str) -> Response:
        """Add a badge to the course (400 with a message on each bad field)."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        badge = serializer.save()
        context = {**self.get_serializer_context(), "counts": _counts(self.course_key)}
        return Response(CourseBadgeSerializer(badge, context=context).data, status=status.HTTP_201_CREATED)


class CourseBadgeView(StaffAPIView):
    """One course badge: read, change (``enabled: false`` disables it), delete (only without awards)."""

    serializer_class = CourseBadgeSerializer
    response_serializers = {"DELETE": {204: None}}

    def _render(self, badge: CourseBadge) -> dict[str, Any]:
        context = {**self.get_serializer_context(), "counts": _counts(self.course_key)}
        return CourseBadgeSerializer(badge, context=context).data

    def get(self, request: Request, course_id: str, badge_id: int) -> Response:
        """Read the badge."""
        return Response(self._render(self.get_badge()))

    def patch(self, request: Request, course_id: str, badge_id: int) -> Response:
        """Change some of the badge's fields (400 with a message on each bad field); the version is raised."""
        serializer = self.get_serializer(self.get_badge(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        return Response(self._render(serializer.save()))

    def delete(self, request: Request, course_id: str, badge_id: int) -> Response:
        """Delete the badge; 409 when it has awards in the ledger (disable it instead)."""
        course_setup.delete_course_badge(self.get_badge(), request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CourseTemplatesView(StaffAPIView):
    """The synced, active templates of the provider accounts this course's organisation may use."""

    serializer_class = TemplateSerializer
    pagination_class = None

    def get(self, request: Request, course_id: str) -> Response:
        """List the templates."""
        return Response(TemplateSerializer(course_setup.allowed_templates(self.course_key), many=True).data)


class BadgeHistoryView(StaffAPIView, ListAPIView):
    """The badge's change history, newest first: who changed what, when, and the version after it."""

    serializer_class = ChangeSerializer

    def get_queryset(self):
        """The badge's changes."""
        return course_setup.history(self.get_badge())


SAMPLE_SIZE = OpenApiParameter(
    "sample_size", int, description=f"How many qualifying learners to name (default 10, at most {MAX_SAMPLE})."
)


class PreviewSchema(StaffSchema):
    """The preview's ``sample_size`` parameter."""

    def get_override_parameters(self) -> list:
        """``sample_size``."""
        return [SAMPLE_SIZE]


class BadgePreviewView(StaffAPIView):
    """How many learners already meet the badge's criterion, some of them, and the request the provider gets."""

    serializer_class = PreviewSerializer
    pagination_class = None
    schema = PreviewSchema()

    def get(self, request: Request, course_id: str, badge_id: int) -> Response:
        """Compute the preview (from the platform's grades and certificates, else from what was recorded)."""
        badge = self.get_badge()
        preview = api.preview_course_badge(badge.pk, sample_size=self._sample_size())
        names = dict(get_user_model().objects.filter(pk__in=preview.sample).values_list("pk", "username"))
        data = {
            "qualify": preview.qualify,
            "already_recorded": preview.already_recorded,
            "learners_read": preview.learners_read,
            "source": preview.source,
            "sample": [names[user_id] for user_id in preview.sample if user_id in names],
            "payload": api.issue_payload_preview(badge.pk),
        }
        return Response(PreviewSerializer(data).data)

    def _sample_size(self) -> int:
        text = self.request.query_params.get("sample_size", "10")
        if not text.isdigit() or not 0 <= int(text) <= MAX_SAMPLE:
            raise ValidationError({"sample_size": [f"A whole number from 0 to {MAX_SAMPLE}."]})
        return int(text)


class BadgeBackfillView(StaffAPIView):
    """The badge's backfill: start one (202; 200 with the run already queued or running), or read its progress."""

    serializer_class = BackfillRunSerializer
    pagination_class = None
    request_serializers = {"POST": None}
    response_serializers = {"POST": {202: BackfillRunSerializer, 200: BackfillRunSerializer}}

    def get(self, request: Request, course_id: str, badge_id: int) -> Response:
        """The latest run and its progress (404 before the first)."""
        run = course_setup.latest_backfill(self.get_badge())
        if run is None:
            raise NotFound("No backfill was started for this badge yet.")
        return Response(BackfillRunSerializer(run).data)

    def post(self, request: Request, course_id: str, badge_id: int) -> Response:
        """Start a backfill of the course's learners for this badge (409 for a disabled badge or course)."""
        run, created = course_setup.start_backfill(self.get_badge(), request.user)
        code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
        return Response(BackfillRunSerializer(run).data, status=code)


class ApprovalsView(StaffAPIView, ListAPIView):
    """The learners who meet the badge's criterion and wait for approval, oldest first."""

    serializer_class = AwaitingSerializer

    def get_queryset(self):
        """The badge's rows awaiting approval (the same queue as the Studio page's)."""
        return course_setup.approval_queue(self.get_badge())


class ApproveView(StaffAPIView):
    """Approve awards of the approval queue: each is then issued."""

    serializer_class = IdsSerializer
    pagination_class = None
    response_serializers = {"POST": ReviewResultSerializer}

    def post(self, request: Request, course_id: str, badge_id: int) -> Response:
        """Approve the rows; rows not awaiting approval are skipped, with why."""
        badge, data = self.badge_and_input(request)
        result = api.approve_awards(badge.pk, data["ids"], request.user)
        return Response(ReviewResultSerializer(result).data)


class DeclineView(StaffAPIView):
    """Decline awards of the approval queue, with a reason; a declined award is never queued again on its own."""

    serializer_class = DeclineSerializer
    pagination_class = None
    response_serializers = {"POST": ReviewResultSerializer}

    def post(self, request: Request, course_id: str, badge_id: int) -> Response:
        """Decline the rows; rows not awaiting approval are skipped, with why."""
        badge, data = self.badge_and_input(request)
        result = api.decline_awards(badge.pk, data["ids"], request.user, data["reason"].strip())
        return Response(ReviewResultSerializer(result).data)


class ManualAwardView(StaffAPIView):
    """Award the badge by hand to learners named by username or e-mail address, with one result per line."""

    serializer_class = ManualAwardRequestSerializer
    pagination_class = None
    response_serializers = {"POST": ManualAwardReportSerializer}

    def post(self, request: Request, course_id: str, badge_id: int) -> Response:
        """Award (or with ``dry_run``, decide without writing); the audit log names the requester."""
        badge, data = self.badge_and_input(request)
        lines = data["lines"].splitlines()
        report = api.award_manually(badge.pk, lines, self.actor(), data["reason"].strip(), dry_run=data["dry_run"])
        return Response(ManualAwardReportSerializer(report).data)


STATE = OpenApiParameter("state", str, enum=IssuanceState.values, description="Only rows in this state.")
BADGE = OpenApiParameter("badge", int, description="Only rows of this course badge.")
USERNAME = OpenApiParameter("username", str, description="Only this learner's rows.")


class IssuancesSchema(StaffSchema):
    """The ledger list's filters."""

    def get_override_parameters(self) -> list:
        """``badge``, ``state`` and ``username``."""
        return [BADGE, STATE, USERNAME]


class IssuancesView(StaffAPIView, ListAPIView):
    """The course's ledger rows, newest first, filtered by ``badge``, ``state`` and ``username``."""

    serializer_class = IssuanceSerializer
    schema = IssuancesSchema()

    def get_queryset(self):
        """The course's rows, filtered (400 for a filter value that names nothing of this course)."""
        rows = BadgeIssuance.objects.filter(course_badge__course_key=self.course_key)
        params = self.request.query_params
        if params.get("badge"):
            badge = params["badge"]
            if not badge.isdigit() or not CourseBadge.objects.filter(pk=badge, course_key=self.course_key).exists():
                raise ValidationError({"badge": ["This course has no badge with this id."]})
            rows = rows.filter(course_badge_id=int(badge))
        if params.get("state"):
            if params["state"] not in IssuanceState.values:
                raise ValidationError({"state": [f"Choose one of: {', '.join(IssuanceState.values)}."]})
            rows = rows.filter(state=params["state"])
        if params.get("username"):
            rows = rows.filter(user__username=params["username"])
        return rows.select_related("user", "course_badge__template").order_by("-id")


class RevokeIssuanceView(StaffAPIView):
    """Revoke one learner's badge of this course, with a reason; the audit log names the requester."""

    serializer_class = ReasonSerializer
    pagination_class = None
    response_serializers = {"POST": RowActionSerializer}

    def post(self, request: Request, course_id: str, issuance_id: int) -> Response:
        """Revoke: the row is revoked at the provider by a task, or the result says why nothing was done."""
        row = BadgeIssuance.objects.filter(pk=issuance_id, course_badge__course_key=self.course_key).first()
        if row is None:
            raise NotFound("This course has no ledger row with this id.")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = api.revoke_issuance(row.pk, self.actor(), serializer.validated_data["reason"].strip())
        data = {
            "issuance_id": result.issuance_id,
            "outcome": result.outcome.value,
            "applied": result.applied,
            "message": result.message,
        }
        return Response(RowActionSerializer(data).data)
