"""Studio (CMS) URLs, mounted at the site's root by the plugin machinery (see apps.py).

* ``/badges_bridge/studio/<course id>/``: the course team's page of the course's badges, and the forms it posts to;
* ``/api/badges_bridge/v1/courses/<course id>/...``: the course staff API (and its OpenAPI schema at
  ``schema/staff/``), as in the LMS: course teams work in Studio.
"""

from django.urls import include, path

from badges_bridge.apps import LMS_URL_PREFIX, STUDIO_URL_PREFIX
from badges_bridge.rest_api.v1 import staff_urls
from badges_bridge.rest_api.v1.urls import staff_schema_view
from badges_bridge.studio import views

app_name = "badges_bridge"

STUDIO = f"{STUDIO_URL_PREFIX}<str:course_id>/"
BADGE = f"{STUDIO}badges/<int:badge_id>/"

urlpatterns = [
    path(STUDIO, views.CourseView.as_view(), name="studio-course"),
    path(f"{STUDIO}switch/", views.CourseSwitchView.as_view(), name="studio-course-switch"),
    path(f"{STUDIO}badges/add/", views.BadgeFormView.as_view(), name="studio-badge-add"),
    path(BADGE, views.BadgeView.as_view(), name="studio-badge"),
    path(f"{BADGE}edit/", views.BadgeFormView.as_view(), name="studio-badge-edit"),
    path(f"{BADGE}enable/", views.BadgeEnableView.as_view(), name="studio-badge-enable"),
    path(f"{BADGE}delete/", views.BadgeDeleteView.as_view(), name="studio-badge-delete"),
    path(f"{BADGE}backfill/", views.BackfillView.as_view(), name="studio-badge-backfill"),
    path(f"{BADGE}backfill/status/", views.BackfillStatusView.as_view(), name="studio-badge-backfill-status"),
    path(f"{BADGE}review/", views.ReviewView.as_view(), name="studio-badge-review"),
    path(f"{BADGE}award/", views.AwardView.as_view(), name="studio-badge-award"),
    path(f"{BADGE}issuances/<int:issuance_id>/revoke/", views.RevokeView.as_view(), name="studio-issuance-revoke"),
    path(f"{LMS_URL_PREFIX}v1/schema/staff/", staff_schema_view, name="staff-api-schema"),
    path(f"{LMS_URL_PREFIX}v1/", include(staff_urls.urlpatterns)),
]
