"""URLs of the course staff API, relative to ``api/badges_bridge/v1/`` (see badges_bridge.rest_api.v1.urls).

Course ids are course keys in the URL path, as edx-platform's own APIs take them
(``course-v1:Org+Course+Run``; old ``Org/Course/Run`` keys too).
"""

from django.urls import re_path

from badges_bridge.rest_api.v1 import staff_views as views

#: A course key in a URL path, as edx-platform's COURSE_ID_PATTERN matches it.
COURSE_ID_PATTERN = r"(?P<course_id>[^/+]+(?:/|\+)[^/+]+(?:/|\+)[^/?]+)"
COURSE = rf"^courses/{COURSE_ID_PATTERN}/"
BADGE = rf"{COURSE}badges/(?P<badge_id>[0-9]+)/"

urlpatterns = [
    re_path(rf"{COURSE}badges/$", views.CourseBadgesView.as_view(), name="staff-badges"),
    re_path(rf"{BADGE}$", views.CourseBadgeView.as_view(), name="staff-badge"),
    re_path(rf"{BADGE}history/$", views.BadgeHistoryView.as_view(), name="staff-badge-history"),
    re_path(rf"{BADGE}preview/$", views.BadgePreviewView.as_view(), name="staff-badge-preview"),
    re_path(rf"{BADGE}backfill/$", views.BadgeBackfillView.as_view(), name="staff-badge-backfill"),
    re_path(rf"{BADGE}approvals/$", views.ApprovalsView.as_view(), name="staff-badge-approvals"),
    re_path(rf"{BADGE}approvals/approve/$", views.ApproveView.as_view(), name="staff-badge-approve"),
    re_path(rf"{BADGE}approvals/decline/$", views.DeclineView.as_view(), name="staff-badge-decline"),
    re_path(rf"{BADGE}awards/$", views.ManualAwardView.as_view(), name="staff-badge-awards"),
    re_path(rf"{COURSE}templates/$", views.CourseTemplatesView.as_view(), name="staff-templates"),
    re_path(rf"{COURSE}issuances/$", views.IssuancesView.as_view(), name="staff-issuances"),
    re_path(
        rf"{COURSE}issuances/(?P<issuance_id>[0-9]+)/revoke/$",
        views.RevokeIssuanceView.as_view(),
        name="staff-issuance-revoke",
    ),
]
