"""Django settings of the demo host project.

A minimal stand-in for the LMS: SQLite, the admin, an in-process (eager) Celery
app and a local-memory cache. ``demo/run.py`` recreates the database on every
run; ``demo/manage.py`` uses the same file afterwards.

Environment variables:

``BADGES_BRIDGE_DEMO_DB``
    Path of the SQLite file (default: ``demo.sqlite3`` next to this file).
``BADGES_BRIDGE_DEMO_DEBUG``
    ``1`` (default) serves the admin's static files under ``runserver``; ``run.py`` sets ``0``.
"""

import os
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
DATABASE_PATH = Path(os.environ.get("BADGES_BRIDGE_DEMO_DB") or DEMO_DIR / "demo.sqlite3")

# Only for this throw-away demo; never reuse it for a real site.
SECRET_KEY = "badges-bridge-demo-insecure-secret-key"
DEBUG = os.environ.get("BADGES_BRIDGE_DEMO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "demo.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
FORMS_URLFIELD_ASSUME_HTTPS = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "badges_bridge",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

STATIC_URL = "static/"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATABASE_PATH,
        # A throw-away database: skip the disk flushes of every commit.
        "OPTIONS": {"init_command": "PRAGMA synchronous=OFF;"},
    }
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "badges-bridge-demo"}}

# Celery runs every task in-process, as soon as it is queued (see demo/celery_app.py).
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = "memory://"

LMS_ROOT_URL = "http://lms.demo.example"

# Retries within seconds instead of minutes, so that the demo shows them.
BADGES_BRIDGE_RETRY_BASE_SECONDS = 0.2
BADGES_BRIDGE_RETRY_MAX_SECONDS = 1
BADGES_BRIDGE_REDRIVE_GRACE_SECONDS = 0
BADGES_BRIDGE_HTTP_TIMEOUT = (2.0, 5.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"short": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "short"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        # The demo provokes failures on purpose and reports them in its summary.
        "badges_bridge": {"level": os.environ.get("BADGES_BRIDGE_DEMO_LOG_LEVEL", "ERROR")},
        # Noise of an in-process project: the memory broker has no host, New Relic is not installed.
        "kombu.connection": {"level": "ERROR"},
        "edx_django_utils.monitoring": {"level": "ERROR"},
    },
}
