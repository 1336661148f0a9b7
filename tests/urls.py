"""URLs of the test project: the admin and the plugin's LMS and Studio URLs, mounted as the platform mounts them.

The LMS and Studio are two sites; here both sets of URLs share one namespace, as one list (their names differ).
"""

from django.contrib import admin
from django.urls import include, re_path

from badges_bridge import urls, urls_cms

urlpatterns = [
    re_path(r"^admin/", admin.site.urls),
    re_path(r"^", include((urls.urlpatterns + urls_cms.urlpatterns, "badges_bridge"), namespace="badges_bridge")),
]
