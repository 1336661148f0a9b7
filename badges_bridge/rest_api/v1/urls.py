"""Version 1 of the learner-facing JSON API."""

from django.urls import path

from badges_bridge.rest_api.v1.views import LearnerBadgesView

urlpatterns = [
    path("badges/", LearnerBadgesView.as_view(), name="learner-badges"),
]
