"""IotWatt settings. Everything an operator changes comes from environment variables."""

import os
from datetime import datetime
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ImproperlyConfigured(f"{name} must be a whole number of at least 1, not {raw!r}")
    return value


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "insecure-development-key-change-me")
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "import_export",
    "assets",
    "telemetry",
    "control",
    "reports",
    "notifications",
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

ROOT_URLCONF = "iotwatt.urls"
WSGI_APPLICATION = "iotwatt.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/iotwatt"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

REST_FRAMEWORK = {
    # Token first: an anonymous request is answered 401 with "WWW-Authenticate: Token".
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Password guessing on /api/auth/token/ is slowed per client address (kept in the process's cache).
    "DEFAULT_THROTTLE_RATES": {"token": os.environ.get("API_TOKEN_RATE", "10/min")},
    "DEFAULT_PARSER_CLASSES": [
        "assets.parsers.DepthSafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Pagination is set on the API's viewsets (assets.views.Pagination: 50 a page, ?page_size= up to 500):
    # a DEFAULT_PAGINATION_CLASS in assets would be imported while DRF's generics are being defined.
}

SPECTACULAR_SETTINGS = {
    # Swagger UI served from the app itself, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "TITLE": "IotWatt API",
    "DESCRIPTION": "Organisations, sites, the asset tree, devices, channels and energy per local period. "
    "Authenticate with a token (POST /api/auth/token/, then `Authorization: Token <key>`) or a session.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Separate request and response components, so read-only fields never appear as inputs.
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "MembershipRoleEnum": "assets.models.Membership.Role",
        "ChannelRoleEnum": "assets.models.Channel.Role",
        "PeriodEnum": ["hour", "day", "month"],
        "ChangeSetStateEnum": "control.models.ChangeSet.State",
        "ParameterStateEnum": "control.models.DeviceParameter.State",
        "BulkChangeStateEnum": "control.models.BulkChange.State",
    },
}

# CSV exports: a cell starting with = + - @ is written as text, so a spreadsheet never runs it.
IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT = True

# Celery: Redis is both the broker and the result backend. The MQTT bridge waits
# on the result of each ingest batch before it acknowledges the batch's messages.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ACKS_LATE = True  # a batch whose worker dies is delivered again
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "300"))}
# The queue the bridge sends batches to; workers take it with `-Q`. Separate test runs use their own.
INGEST_QUEUE = os.environ.get("INGEST_QUEUE", "ingest")
CELERY_TASK_ROUTES = {"telemetry.tasks.ingest_batch": {"queue": INGEST_QUEUE}}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# MQTT: the broker devices publish to and the bridge subscribes on.
MQTT_URL = os.environ.get("MQTT_URL", "mqtt://127.0.0.1:1883")
# "5" for MQTT v5 (Mosquitto), "3.1.1" for brokers without v5 (the embedded demo broker).
MQTT_PROTOCOL = os.environ.get("MQTT_PROTOCOL", "5")
if MQTT_PROTOCOL not in {"5", "3.1.1"}:
    raise ImproperlyConfigured(f'MQTT_PROTOCOL must be "5" or "3.1.1", not {MQTT_PROTOCOL!r}')
# One per bridge process: the broker keeps each client id's session (subscriptions, unacknowledged messages).
MQTT_CLIENT_ID = os.environ.get("MQTT_CLIENT_ID", "iotwatt-bridge-1").strip()
if not MQTT_CLIENT_ID:
    raise ImproperlyConfigured("MQTT_CLIENT_ID must name this bridge (unique per bridge process)")


def _topic_filters(name: str, default: str) -> list[str]:
    filters = [t.strip() for t in os.environ.get(name, default).split(",") if t.strip()]
    for topic_filter in filters:
        if topic_filter.startswith("$share/"):
            raise ImproperlyConfigured(f"{name}: give {topic_filter!r} without $share/<group>/; MQTT_SHARED_GROUP adds it")
    return filters


# Telemetry topic filters (comma-separated). Add the topics of third-party devices here, e.g. tele/+/SENSOR.
MQTT_TOPICS = _topic_filters("MQTT_TOPICS", "iotwatt/+/telemetry")
# Device status topic filters: retained, so every bridge subscribes to them plainly (see MQTT_SHARED_GROUP),
# e.g. tele/+/LWT (Tasmota), +/online (Shelly Gen2), +/status (ESPHome).
MQTT_STATUS_TOPICS = _topic_filters("MQTT_STATUS_TOPICS", "iotwatt/+/status")
# Bridges with the same group split the telemetry between them ($share/<group>/<filter>); empty (the
# default): every bridge receives every message. Empty by default because Mosquitto 2.0.11 drops what is
# published to a shared group after a broker restart until a bridge of the group reconnects (docs/scaling.md).
MQTT_SHARED_GROUP = os.environ.get("MQTT_SHARED_GROUP", "").strip()
if any(c in MQTT_SHARED_GROUP for c in "/+#"):
    raise ImproperlyConfigured(f"MQTT_SHARED_GROUP must be a plain name without / + #, not {MQTT_SHARED_GROUP!r}")
# Messages per ingest batch, and how long the bridge waits to fill one.
INGEST_BATCH_MAX_MESSAGES = int(os.environ.get("INGEST_BATCH_MAX_MESSAGES", "500"))
INGEST_BATCH_MAX_WAIT_S = float(os.environ.get("INGEST_BATCH_MAX_WAIT_S", "0.5"))
# Readings stamped later than arrival + this, or before the horizon, are dead letters (device clock faults).
INGEST_MAX_FUTURE_S = float(os.environ.get("INGEST_MAX_FUTURE_S", "3600"))
INGEST_OLDEST = datetime.fromisoformat(os.environ.get("INGEST_OLDEST", "2000-01-01T00:00:00+00:00"))
if INGEST_OLDEST.tzinfo is None:
    raise ImproperlyConfigured("INGEST_OLDEST needs a UTC offset, e.g. 2000-01-01T00:00:00+00:00")
# Energy rules (telemetry/energy/): defaults for a channel that sets none of its own.
# A counter step implying more power than this is a spike; a power sample above it is refused.
ENERGY_DEFAULT_MAX_POWER_W = float(os.environ.get("ENERGY_DEFAULT_MAX_POWER_W", "10000000"))
# Power samples further apart than this are not integrated: the gap lowers the coverage instead.
ENERGY_DEFAULT_MAX_GAP_S = float(os.environ.get("ENERGY_DEFAULT_MAX_GAP_S", "900"))
if ENERGY_DEFAULT_MAX_POWER_W <= 0 or ENERGY_DEFAULT_MAX_GAP_S <= 0:
    raise ImproperlyConfigured("ENERGY_DEFAULT_MAX_POWER_W and ENERGY_DEFAULT_MAX_GAP_S must be positive")
# A redelivered message stamped with its arrival time is matched against readings stored this long before it
# (telemetry/redelivery.py); a week, as long as the broker keeps a bridge's session.
INGEST_REDELIVERY_WINDOW_S = float(os.environ.get("INGEST_REDELIVERY_WINDOW_S", str(7 * 24 * 3600)))
# Batches a bridge has on their way to the workers at once (acknowledged in order as they commit).
INGEST_BATCHES_IN_FLIGHT = int(os.environ.get("INGEST_BATCHES_IN_FLIGHT", "4"))
if INGEST_BATCHES_IN_FLIGHT < 1:
    raise ImproperlyConfigured("INGEST_BATCHES_IN_FLIGHT must be at least 1")



# A payload larger than this (bytes) is a dead letter, kept only up to this size: the limit
# bounds what one message costs the worker and the database.
INGEST_MAX_PAYLOAD_BYTES = env_positive_int("INGEST_MAX_PAYLOAD_BYTES", 256 * 1024)
# Messages of topics no registered device claims wait for adoption as pending devices. Anyone
# who may publish to the broker can invent topics, so the store is bounded: at most this many
# messages kept per pending device (later ones are counted, not kept) ...
PENDING_MAX_MESSAGES_PER_DEVICE = env_positive_int("PENDING_MAX_MESSAGES_PER_DEVICE", 10_000)
# ... and at most this many pending devices (messages of further unknown devices are counted
# in one overflow entry, not kept).
PENDING_MAX_DEVICES = env_positive_int("PENDING_MAX_DEVICES", 1_000)
# How long the bridge waits for a batch to be committed before it sends it again.
INGEST_BATCH_TIMEOUT_S = float(os.environ.get("INGEST_BATCH_TIMEOUT_S", "60"))
# /metrics (Prometheus) is open when empty; set it to ask scrapers for `Authorization: Bearer <token>`.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

# Readings storage (telemetry/partitions.py). "auto": a TimescaleDB hypertable when the
# database offers the extension, else native monthly partitions; "timescale" or "native" force one.
# Read by the migration that converts the readings table, so choose it before the first migrate.
READINGS_STORAGE = os.environ.get("READINGS_STORAGE", "auto").strip().lower()
if READINGS_STORAGE not in {"auto", "timescale", "native"}:
    raise ImproperlyConfigured(f'READINGS_STORAGE must be "auto", "timescale" or "native", not {READINGS_STORAGE!r}')


def env_whole_number(name: str, default: int | None, unit: str) -> int | None:
    """A whole number (at least 1) from the environment; unset gives the default, empty gives None (off)."""
    value = os.environ.get(name)
    if value is None:
        return default
    if not value.strip():
        return None
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number of {unit}, or empty for none, not {value!r}") from None
    if number < 1:
        raise ImproperlyConfigured(f"{name} must be at least 1 ({unit}), or empty for none, not {value!r}")
    return number


# Readings older than this are dropped a whole partition (native) or chunk (TimescaleDB) at a time; unset keeps them all.
READINGS_RETENTION_DAYS = env_whole_number("READINGS_RETENTION_DAYS", None, "days")
# TimescaleDB only: chunks older than this are compressed (by channel, ordered by time); empty turns compression off.
TIMESCALE_COMPRESS_AFTER_DAYS = env_whole_number("TIMESCALE_COMPRESS_AFTER_DAYS", 7, "days")
# Native partitions only: monthly partitions created ahead by `manage.py reading_partitions` and at migrate.
READINGS_PARTITIONS_AHEAD_MONTHS = env_whole_number("READINGS_PARTITIONS_AHEAD_MONTHS", 3, "months") or 0
# Celery beat runs the readings storage upkeep (partitions ahead, retention, policies) every six hours,
# on the ingest queue: the workers the README starts take only that queue.
CELERY_BEAT_SCHEDULE = {
    "readings-storage-upkeep": {"task": "telemetry.tasks.maintain_reading_storage", "schedule": 6 * 3600.0},
}
CELERY_TASK_ROUTES["telemetry.tasks.maintain_reading_storage"] = {"queue": INGEST_QUEUE}
CELERY_TASK_ROUTES["telemetry.tasks.rebuild_channel_energy"] = {"queue": INGEST_QUEUE}

# Device parameters (control/): change sets go out on their own queue, so a backlog of ingest batches
# never delays them; workers take it with `-Q ingest,control`.
CONTROL_QUEUE = os.environ.get("CONTROL_QUEUE", "control")
CELERY_TASK_ROUTES["control.tasks.*"] = {"queue": CONTROL_QUEUE}


def env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        value = float(raw) if raw is not None else default
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ImproperlyConfigured(f"{name} must be a number of seconds above 0, not {raw!r}")
    return value


# A change set is sent up to this many times, waiting base, 2x base, 4x base ... (at most the cap) for
# the answer after each send, then it has timed out. The defaults give up after about 4.5 minutes.
CONTROL_MAX_ATTEMPTS = env_positive_int("CONTROL_MAX_ATTEMPTS", 5)
CONTROL_RETRY_BASE_S = env_seconds("CONTROL_RETRY_BASE_S", 10.0)
CONTROL_RETRY_MAX_S = env_seconds("CONTROL_RETRY_MAX_S", 120.0)
if CONTROL_RETRY_MAX_S >= CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]:
    # Redis hands a task scheduled further ahead than the visibility timeout to a second worker.
    raise ImproperlyConfigured("CONTROL_RETRY_MAX_S must be below CELERY_VISIBILITY_TIMEOUT")
CONTROL_PUBLISH_TIMEOUT_S = env_seconds("CONTROL_PUBLISH_TIMEOUT_S", 10.0)
# A delivery step this late (a worker died holding its task) is taken by Celery beat's minute sweep.
CONTROL_STALL_AFTER_S = env_seconds("CONTROL_STALL_AFTER_S", 60.0)
CELERY_BEAT_SCHEDULE["control-resume-stalled-deliveries"] = {"task": "control.tasks.resume_stalled_deliveries", "schedule": 60.0}
# The configuration agent's MQTT client id (one per agent process; its session keeps answers while it is down).
CONTROL_AGENT_CLIENT_ID = os.environ.get("CONTROL_AGENT_CLIENT_ID", "iotwatt-config-agent-1").strip() or "iotwatt-config-agent-1"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
