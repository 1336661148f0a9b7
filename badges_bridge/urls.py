"""LMS URLs, mounted at the site's root by the plugin machinery (see apps.py).

* ``/api/badges_bridge/v1/``: the learner API (and its OpenAPI schema at ``schema/``);
* ``/api/badges_bridge/webhooks/<token>/``: provider notifications (one secret URL per account);
* ``/badges_bridge/my-badges/``: the learner page, and the forms it posts to.
"""

from django.urls import include, path

from badges_bridge import views
from badges_bridge.apps import LMS_URL_PREFIX
from badges_bridge.webhooks import ProviderWebhookView

app_name = "badges_bridge"

urlpatterns = [
    path(f"{LMS_URL_PREFIX}v1/", include("badges_bridge.rest_api.v1.urls")),
    path(f"{LMS_URL_PREFIX}webhooks/<str:token>/", ProviderWebhookView.as_view(), name="provider-webhook"),
    path("badges_bridge/my-badges/", views.LearnerPageView.as_view(), name="learner-page"),
    path("badges_bridge/my-badges/consent/", views.ConsentView.as_view(), name="learner-consent"),
    path("badges_bridge/my-badges/opt-out/", views.OptOutView.as_view(), name="learner-opt-out"),
    path("badges_bridge/my-badges/<int:issuance_id>/revoke/", views.RevokeView.as_view(), name="learner-revoke"),
]
