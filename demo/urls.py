"""URLs of the demo project: the admin, a sign-in page, and the plugin's LMS URLs mounted where the LMS mounts them."""

from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path, re_path

urlpatterns = [
    path("admin/", admin.site.urls),
    # Learners sign in here (the LMS has its own sign-in page); the admin's form serves any active user.
    path("accounts/login/", LoginView.as_view(template_name="admin/login.html"), name="login"),
    re_path(r"^", include(("badges_bridge.urls", "badges_bridge"), namespace="badges_bridge")),
]
