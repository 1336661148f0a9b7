"""Whose data a request of the learner API may read."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request


def target_user_id(request: Request) -> int:
    """The user the request is about: the requester, or with ``?username=`` a user global staff ask for.

    Raises PermissionDenied (403) when a learner asks for someone else, NotFound (404) when staff
    name an unknown user.
    """
    user = request.user
    username = request.query_params.get("username", "").strip()
    if not username or username == user.username:
        return user.pk
    if not user.is_staff:
        raise PermissionDenied("Learners can only see their own badges.")
    other = get_user_model().objects.filter(username=username).values_list("pk", flat=True).first()
    if other is None:
        raise NotFound(f"No user is named {username!r}.")
    return other
