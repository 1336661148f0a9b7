"""The learner API: the signed-in learner's badges, the badges they can earn, and their privacy choices.

JWT and session authentication (edx-drf-extensions), paginated lists, and an OpenAPI schema.
Learners see their own data only; global staff may ask for a user with ``?username=``.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, extend_schema
from edx_rest_framework_extensions.auth.jwt.authentication import JwtAuthentication
from edx_rest_framework_extensions.auth.session.authentication import SessionAuthenticationAllowInactiveUser
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from badges_bridge import api
from badges_bridge.rest_api.v1 import schema  # noqa: F401 - registers the JWT scheme for the schema
from badges_bridge.rest_api.v1.permissions import target_user_id
from badges_bridge.rest_api.v1.serializers import (
    AvailableBadgeSerializer,
    LearnerBadgeSerializer,
    LearnerPrivacySerializer,
    PrivacyChoiceSerializer,
)

USERNAME = OpenApiParameter(
    "username", str, description="Global staff only: whose data to read (default: the requester's own)."
)


class LearnerPagination(PageNumberPagination):
    """Pages of 50 by default; ``page_size`` up to 100."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 100


class LearnerAPIView(GenericAPIView):
    """Authentication, permissions and pagination shared by the learner API."""

    # JWT first: its WWW-Authenticate header makes an anonymous request a 401 rather than a 403.
    authentication_classes = (JwtAuthentication, SessionAuthenticationAllowInactiveUser)
    permission_classes = (IsAuthenticated,)
    pagination_class = LearnerPagination
    schema = AutoSchema()


@extend_schema(parameters=[USERNAME])
class LearnerBadgesView(LearnerAPIView, ListAPIView):
    """The learner's badges, newest first: issued, on their way, revoked, expired and declined."""

    serializer_class = LearnerBadgeSerializer

    def get_queryset(self) -> list:
        """The badges of the user the request is about (a list: the API returns no models)."""
        return api.learner_badges(target_user_id(self.request))


@extend_schema(parameters=[USERNAME])
class AvailableBadgesView(LearnerAPIView, ListAPIView):
    """Badges of the learner's enrolled courses they can still earn, with the criterion and their progress."""

    serializer_class = AvailableBadgeSerializer

    def get_queryset(self) -> list:
        """The available badges of the user the request is about."""
        return api.available_badges(target_user_id(self.request))


class PrivacySchema(AutoSchema):
    """The privacy view's schema: ``?username=`` on GET, the choice as PATCH's body (no method decorators, which
    would depend on the platform's DEFAULT_SCHEMA_CLASS)."""

    def get_override_parameters(self) -> list:
        """``username`` for reads only: choices are always the requester's own."""
        return [USERNAME] if self.method == "GET" else []

    def get_request_serializer(self):
        """PATCH takes a choice."""
        return PrivacyChoiceSerializer() if self.method == "PATCH" else None


class PrivacyView(LearnerAPIView):
    """The learner's consent and opt-out choices, and what each provider receives about them."""

    pagination_class = None
    serializer_class = LearnerPrivacySerializer
    schema = PrivacySchema()

    def get(self, request: Request) -> Response:
        """Read the choices and what is sent to whom."""
        privacy = api.learner_privacy(target_user_id(request))
        return Response(LearnerPrivacySerializer(privacy).data)

    def patch(self, request: Request) -> Response:
        """Change the requester's own choices (never another user's)."""
        choice = PrivacyChoiceSerializer(data=request.data)
        choice.is_valid(raise_exception=True)
        if "consent" in choice.validated_data:
            api.set_consent(request.user.pk, choice.validated_data["consent"])
        if "opted_out" in choice.validated_data:
            api.set_opt_out(request.user.pk, choice.validated_data["opted_out"])
        return Response(LearnerPrivacySerializer(api.learner_privacy(request.user.pk)).data)
