"""URLs of the demo project: the admin, a sign-in page, and the plugin's LMS and Studio URLs, mounted at the root.

The LMS and Studio are two sites; here both sets of the plugin's URLs share one namespace, as one list.
"""

from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path, re_path

from badges_bridge import urls, urls_cms

urlpatterns = [
    path("admin/", admin.site.urls),
    # Learners sign in here (the LMS has its own sign-in page); the admin's form serves any active user.
    path("accounts/login/", LoginView.as_view(template_name="admin/login.html"), name="login"),
    re_path(r"^", include((urls.urlpatterns + urls_cms.urlpatterns, "badges_bridge"), namespace="badges_bridge")),
]
