"""URLs of the demo project: the admin, and the plugin's LMS URLs mounted where the LMS mounts them."""

from django.contrib import admin
from django.urls import include, path, re_path

urlpatterns = [
    path("admin/", admin.site.urls),
    re_path(r"^", include(("badges_bridge.urls", "badges_bridge"), namespace="badges_bridge")),
]
