"""URLs of the test project: the admin and the plugin's LMS URLs, mounted as the LMS mounts them."""

from django.contrib import admin
from django.urls import include, re_path

urlpatterns = [
    re_path(r"^admin/", admin.site.urls),
    re_path(r"^", include(("badges_bridge.urls", "badges_bridge"), namespace="badges_bridge")),
]
