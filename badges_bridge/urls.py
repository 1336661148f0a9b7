"""LMS URLs, mounted under ``api/badges_bridge/`` by the plugin machinery."""

from django.urls import include, path

from badges_bridge.webhooks import ProviderWebhookView

app_name = "badges_bridge"

urlpatterns = [
    path("v1/", include("badges_bridge.rest_api.v1.urls")),
    path("webhooks/<str:token>/", ProviderWebhookView.as_view(), name="provider-webhook"),
]
