"""Version 1 of the learner API and of the course staff API, and their OpenAPI schemas."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from badges_bridge import __version__
from badges_bridge.rest_api.v1 import staff_urls
from badges_bridge.rest_api.v1.views import AvailableBadgesView, LearnerBadgesView, PrivacyView

#: Where the LMS mounts this module (see badges_bridge.urls), for the paths of the schema.
PREFIX = "api/badges_bridge/v1/"

api_patterns = [
    path("badges/", LearnerBadgesView.as_view(), name="learner-badges"),
    path("badges/available/", AvailableBadgesView.as_view(), name="learner-available-badges"),
    path("privacy/", PrivacyView.as_view(), name="learner-privacy"),
]

schema_view = SpectacularAPIView.as_view(
    patterns=[path(PREFIX, include(api_patterns))],
    authentication_classes=[],
    permission_classes=[],
    custom_settings={
        "TITLE": "badges_bridge learner API",
        "DESCRIPTION": (
            "The signed-in learner's badges, the badges they can earn and their privacy choices. "
            "Authenticate with an Open edX JWT ('Authorization: JWT <token>') or the LMS session."
        ),
        "VERSION": __version__,
    },
)

staff_schema_view = SpectacularAPIView.as_view(
    patterns=[path(PREFIX, include(staff_urls.urlpatterns))],
    authentication_classes=[],
    permission_classes=[],
    custom_settings={
        "TITLE": "badges_bridge course staff API",
        "DESCRIPTION": (
            "A course's badges, the templates it may use, preview, backfill, the approval queue, manual awards, "
            "revocations and the course's ledger, for users with Studio write access to the course (global staff: "
            "every course). Authenticate with an Open edX JWT ('Authorization: JWT <token>') or the session "
            "(writes then need the CSRF token). Course ids are course keys in the path (course-v1:Org+Course+Run)."
        ),
        "VERSION": __version__,
    },
)

urlpatterns = [
    *api_patterns,
    path("schema/", schema_view, name="learner-api-schema"),
    path("schema/staff/", staff_schema_view, name="staff-api-schema"),
    *staff_urls.urlpatterns,
]
