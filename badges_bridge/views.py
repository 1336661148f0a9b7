"""The learner page in the LMS: the learner's badges, the badges they can earn, sharing and privacy choices.

Server-rendered; every change is a POST form with CSRF protection that goes through
:mod:`badges_bridge.api` and comes back to the page with a message.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.csrf import csrf_protect

from badges_bridge import api, compat
from badges_bridge.learner import CURRENT_STATUSES


def _back() -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("badges_bridge:learner-page"))


class LearnerPageView(LoginRequiredMixin, View):
    """GET: the signed-in learner's badges page."""

    http_method_names = ["get"]

    def get(self, request: HttpRequest) -> HttpResponse:
        """Render the page for the requester (never for anyone else)."""
        user_id = request.user.pk
        badges = api.learner_badges(user_id)
        available = api.available_badges(user_id)
        privacy = api.learner_privacy(user_id, badges, available)
        context = {
            "base_template": compat.learner_base_template(),
            "current": [badge for badge in badges if badge.status in CURRENT_STATUSES],
            "past": [badge for badge in badges if badge.status not in CURRENT_STATUSES],
            "available": available,
            "privacy": privacy,
        }
        return render(request, "badges_bridge/learner/my_badges.html", context)


@method_decorator(csrf_protect, name="dispatch")
class LearnerFormView(LoginRequiredMixin, View):
    """A POST form of the learner page; subclasses apply one choice."""

    http_method_names = ["post"]
    #: Accepted values of the form's ``choice`` field.
    choices: tuple[str, ...] = ()

    def post(self, request: HttpRequest, **kwargs) -> HttpResponse:
        """Apply the posted choice and go back to the page."""
        choice = request.POST.get("choice", "")
        if choice not in self.choices:
            return HttpResponseBadRequest(_("Unknown choice."))
        messages.success(request, self.apply(request.user.pk, choice))
        return _back()

    def apply(self, user_id: int, choice: str) -> str:
        """Apply the choice; return the message shown on the page."""
        raise NotImplementedError


class ConsentView(LearnerFormView):
    """POST ``choice=give`` or ``choice=withdraw``: the learner's consent to sending their data."""

    choices = ("give", "withdraw")

    def apply(self, user_id: int, choice: str) -> str:
        """Record the consent or its withdrawal."""
        if choice == "give":
            api.set_consent(user_id, True)
            return _("Thank you: your badges will be sent to the badge services.")
        api.set_consent(user_id, False)
        return _("Consent withdrawn: nothing more will be sent about you. Badges you already have stay yours.")


class OptOutView(LearnerFormView):
    """POST ``choice=out`` or ``choice=in``: the learner's opt-out of new badges."""

    choices = ("out", "in")

    def apply(self, user_id: int, choice: str) -> str:
        """Record the opt-out or the opt-in."""
        if choice == "out":
            api.set_opt_out(user_id, True)
            return _("You opted out: no new badge will be sent. Badges you already have stay yours.")
        api.set_opt_out(user_id, False)
        return _("You opted back in: badges you earn will be sent again.")


@method_decorator(csrf_protect, name="dispatch")
class RevokeView(LoginRequiredMixin, View):
    """POST: revoke one of the learner's own badges, after they confirmed it."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, issuance_id: int) -> HttpResponse:
        """Revoke the badge when the learner ticked the confirmation; the reason is optional."""
        if request.POST.get("confirm") != "yes":
            messages.error(request, _("Tick the confirmation box to revoke the badge."))
            return _back()
        if api.learner_revoke(request.user.pk, issuance_id, request.POST.get("reason", "")):
            messages.success(request, _("The badge will be revoked at the badge service."))
        else:
            messages.error(request, _("This badge cannot be revoked."))
        return _back()
