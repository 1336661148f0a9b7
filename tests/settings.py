"""Django settings for the test suite.

SQLite by default. ``BADGES_BRIDGE_TEST_DB=mysql`` switches to the MariaDB/MySQL
server described by the ``BADGES_BRIDGE_MYSQL_*`` variables (defaults: root
without password on 127.0.0.1:3306), as Open edX runs on MySQL.
``BADGES_BRIDGE_TEST_SETTINGS`` (a JSON object) overrides plugin and Celery
settings last: the fault tests start worker processes with their own lease,
timeouts, retry delays and queue through it.
"""

import json
import os

SECRET_KEY = "insecure-test-key"  # noqa: S105 - tests only
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "badges_bridge",
]
STATIC_URL = "static/"

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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

if os.environ.get("BADGES_BRIDGE_TEST_DB") == "mysql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": os.environ.get("BADGES_BRIDGE_MYSQL_NAME", "test"),
            "USER": os.environ.get("BADGES_BRIDGE_MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("BADGES_BRIDGE_MYSQL_PASSWORD", ""),
            "HOST": os.environ.get("BADGES_BRIDGE_MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("BADGES_BRIDGE_MYSQL_PORT", "3306"),
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {
                "NAME": os.environ.get("BADGES_BRIDGE_MYSQL_TEST_NAME", "test_badges_bridge"),
                "CHARSET": "utf8mb4",
            },
        }
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "badges-bridge-tests"}}

CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = "memory://"

LMS_ROOT_URL = "http://lms.example.com"
LOGIN_URL = "/login"
PLATFORM_NAME = "Example Academy"

# The LMS's JWT settings, as edx-drf-extensions reads them (tests sign tokens with this secret).
JWT_AUTH = {
    "JWT_ISSUERS": [
        {
            "ISSUER": "http://lms.example.com/oauth2",
            "AUDIENCE": "lms-key",
            "SECRET_KEY": "jwt-test-secret-long-enough-for-hs256",
        }
    ],
    "JWT_ISSUER": "http://lms.example.com/oauth2",
    "JWT_AUDIENCE": "lms-key",
    "JWT_SECRET_KEY": "jwt-test-secret-long-enough-for-hs256",
    "JWT_AUTH_HEADER_PREFIX": "JWT",
    "JWT_ALGORITHM": "HS256",
    "JWT_VERIFY_EXPIRATION": True,
    "JWT_PUBLIC_SIGNING_JWK_SET": None,
}

# Fast retries so that tests do not wait.
BADGES_BRIDGE_RETRY_BASE_SECONDS = 0
BADGES_BRIDGE_RETRY_MAX_SECONDS = 0
BADGES_BRIDGE_HTTP_TIMEOUT = (2.0, 2.0)

# BADGES_BRIDGE_TEST_CELERY=worker: tasks go through a real broker (Redis by default) to a real
# worker process started by the integration tests, instead of running eagerly in the test process.
if os.environ.get("BADGES_BRIDGE_TEST_CELERY") == "worker":
    CELERY_TASK_ALWAYS_EAGER = False
    CELERY_BROKER_URL = os.environ.get("BADGES_BRIDGE_TEST_BROKER", "redis://127.0.0.1:6379/15")
    CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = False
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 3}
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ.get("BADGES_BRIDGE_TEST_CACHE", "redis://127.0.0.1:6379/14"),
            "KEY_PREFIX": "badges-bridge-tests",
        }
    }

# BADGES_BRIDGE_TEST_SETTINGS='{"BADGES_BRIDGE_LEASE_SECONDS": 2, "BADGES_BRIDGE_HTTP_TIMEOUT": [2, 10]}':
# settings for one process (a worker started by a test, or the load test's workers), applied last.
_OVERRIDES = json.loads(os.environ.get("BADGES_BRIDGE_TEST_SETTINGS") or "{}")
if not isinstance(_OVERRIDES, dict):
    raise ValueError("BADGES_BRIDGE_TEST_SETTINGS must be a JSON object of setting names and values")
for _name, _value in _OVERRIDES.items():
    if not _name.startswith(("BADGES_BRIDGE_", "CELERY_")):
        raise ValueError(
            f"BADGES_BRIDGE_TEST_SETTINGS may only set BADGES_BRIDGE_* and CELERY_* settings, not {_name!r}"
        )
    globals()[_name] = tuple(_value) if isinstance(_value, list) else _value  # JSON has no tuples
