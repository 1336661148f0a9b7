"""Learner view: the badges of the signed-in user."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views import View

from badges_bridge import api


class LearnerBadgesView(View):
    """GET: the signed-in learner's badges, with their states and public URLs."""

    http_method_names = ["get"]

    def get(self, request: HttpRequest) -> JsonResponse:
        """List the badges; 401 for anonymous users."""
        if not request.user.is_authenticated:
            return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
        badges = [badge.as_dict() for badge in api.learner_badges(request.user.pk)]
        return JsonResponse({"count": len(badges), "results": badges})
