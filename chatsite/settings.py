"""One settings module; everything that differs between machines comes from the environment.

Embedded default: SQLite (WAL) + in-memory channel layer + the offline demo provider.
Production: DATABASE_URL (PostgreSQL), REDIS_URL (channel layer, cache, stream relay),
DJANGO_ENV=production (secure cookies, required SECRET_KEY / ALLOWED_HOSTS).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from chatsite.chat_settings import ChatSettings

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc


def env_int(name: str, default: int) -> int:
    return int(env_float(name, default))


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool) -> bool:
    """1/0, true/false, yes/no, on/off in any case; anything else stops start-up (counting
    only "1" as on turned EMAIL_USE_TLS=true into TLS off, without a word)."""
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be one of 1/0, true/false, yes/no, on/off; got {os.environ[name]!r}"
    )


PRODUCTION = env("DJANGO_ENV") == "production"
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)

if PRODUCTION:
    SECRET_KEY = env("SECRET_KEY")
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_ENV=production")
    ALLOWED_HOSTS = [h.strip() for h in env("ALLOWED_HOSTS").split(",") if h.strip()]
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DJANGO_ENV=production")
else:
    SECRET_KEY = env("SECRET_KEY", "dev-only-insecure-key-change-me-in-production-0123456789")
    ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "allauth",
    "allauth.account",
    "conversations",
]

MIDDLEWARE = [
    # Outermost, so its latency is the whole stack's; sync-only like the rest of the stack.
    "conversations.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before CSRF, the first to read a form: text that is not UTF-8 is refused, not mangled.
    "conversations.middleware.RefuseUndecodableFormsMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # Signed out (another tab) or suspended: says why, instead of a bare login page.
    "conversations.middleware.SignedOutMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "conversations.context_processors.flashes",
            ],
        },
    },
]

# Database: SQLite in WAL mode by default, DATABASE_URL (PostgreSQL) in production.
if env("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(env("DATABASE_URL"), conn_max_age=0)}
    # A process-wide connection pool: under ASGI each request's sync code runs in a thread
    # of its own, so Django's persistent connections are never reused and every request
    # paid a new connection (docs/performance.md: a chat start took twice as long).
    # It also caps the connections one process opens (PostgreSQL allows 100 by default).
    # PostgreSQL only (postgis too): other backends refuse the option.
    if DATABASES["default"]["ENGINE"].endswith(("postgresql", "postgis")) and env_bool(
        "DATABASE_POOL", True
    ):
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 2,
            "max_size": env_int("DATABASE_POOL_SIZE", 20),
            "timeout": 10,
        }
    # Lets parallel test runs on one server use separate test databases.
    if env("TEST_DATABASE_NAME"):
        DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME")}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
        }
    }
if DATABASES["default"]["ENGINE"].endswith(("sqlite3", "spatialite")):
    # The embedded default, or SQLite through DATABASE_URL: readers never wait for the
    # writer (WAL), and a writer waits for another instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
            ),
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: the channel layer (low-rate events only), the cache (rate limits) and the token relay.
REDIS_URL = env("REDIS_URL")
REDIS_PREFIX = env("REDIS_PREFIX", "streamchat")
# A Redis that stops answering (a partition, a paused host) costs the cache's callers a
# second (redis-py 8 waits 5 s by default, older versions forever).
REDIS_SOCKET_OPTIONS = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # channels-redis blocks 5 s per receive; redis-py 8 gives up reading after
                # 5 s by default, so every idle receive failed. Read longer than it blocks.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
                "prefix": REDIS_PREFIX,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "chatsite.redis_cache.SharedRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_PREFIX,
            "OPTIONS": REDIS_SOCKET_OPTIONS,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Django's database sessions, their per-request read prepared once (conversations/sessions.py).
SESSION_ENGINE = "conversations.sessions"
# Django's and allauth's, the signed-in user's read prepared (conversations/auth_backends.py).
AUTHENTICATION_BACKENDS = [
    "conversations.auth_backends.ModelBackend",
    "conversations.auth_backends.AuthenticationBackend",
]

# allauth: email + password, no username, no email round trip for the self-hosted default.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
# auth.User keeps a unique `username`: allauth fills it from the email (None would store ""
# for everyone, and the second signup would fail on the unique constraint).
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", "none")
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_RATE_LIMITS = {"login_failed": env("LOGIN_RATE_LIMIT", "10/m/ip,5/5m/key")}
# Single sign-on with OpenID Connect (allauth's socialaccount), only when OIDC_CLIENT_ID is
# set: otherwise socialaccount is not installed at all. The login page then offers
# "Sign in with <OIDC_NAME>"; a first sign-in creates the account from the provider's email.
OIDC_CLIENT_ID = env("OIDC_CLIENT_ID")
if OIDC_CLIENT_ID:
    missing = [name for name in ("OIDC_CLIENT_SECRET", "OIDC_SERVER_URL") if not env(name)]
    if missing:
        raise ImproperlyConfigured(f"OIDC_CLIENT_ID is set: {' and '.join(missing)} must be too")
    INSTALLED_APPS += [
        "allauth.socialaccount",
        "allauth.socialaccount.providers.openid_connect",
    ]
    SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": env("OIDC_PROVIDER_ID", "sso"),
                    "name": env("OIDC_NAME", "Single sign-on"),
                    "client_id": OIDC_CLIENT_ID,
                    "secret": env("OIDC_CLIENT_SECRET"),
                    # The issuer URL; /.well-known/openid-configuration is read from it.
                    "settings": {"server_url": env("OIDC_SERVER_URL"), "oauth_pkce_enabled": True},
                }
            ]
        }
    }
    SOCIALACCOUNT_EMAIL_REQUIRED = True
    # A provider's verified email signs in the local account that has it (and connects it),
    # instead of asking the user to pick another address: only with a provider you trust.
    SOCIALACCOUNT_EMAIL_AUTHENTICATION = env_bool("OIDC_EMAIL_AUTHENTICATION", False)
    SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "conversation_list"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
# Email (password resets): printed to the console in development, SMTP in production.
EMAIL_BACKEND_PATH = env(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
MAILERS: dict[str, dict[str, Any]] = {"default": {"BACKEND": EMAIL_BACKEND_PATH}}
if EMAIL_BACKEND_PATH == "django.core.mail.backends.smtp.EmailBackend":
    MAILERS["default"]["OPTIONS"] = {
        "host": env("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 587),
        "username": env("EMAIL_HOST_USER"),
        "password": env("EMAIL_HOST_PASSWORD"),
        "use_tls": env_bool("EMAIL_USE_TLS", True),
        "timeout": env_float("EMAIL_TIMEOUT", 10),
    }
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "webmaster@localhost")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# collectstatic in production; whitenoise serves the hashed, compressed copies from here.
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "staticfiles"))) if PRODUCTION else None
WHITENOISE_USE_FINDERS = not PRODUCTION  # serve static/ straight from the apps in development

# Attachments are stored through the `default` storage: files under MEDIA_ROOT unless
# STORAGES says otherwise (an S3 bucket through django-storages: see the README). MEDIA_URL
# is never served as such: every file goes through a view that checks its owner.
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / "media")))

# CSP: no inline scripts or styles; htmx is configured by a <meta> tag and our modules.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Load balancers probe, and Prometheus scrapes, the processes over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    CSRF_TRUSTED_ORIGINS = [o for o in env("CSRF_TRUSTED_ORIGINS").split(",") if o]
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

# /metrics (conversations/metrics_views.py): for this bearer token, or from these addresses
# (comma-separated IPs or networks: "10.0.0.0/8,127.0.0.1"); anyone else gets a 404.
METRICS_TOKEN = env("METRICS_TOKEN")
try:
    METRICS_ALLOWED_IPS = [
        ipaddress.ip_network(raw.strip(), strict=False)
        for raw in env("METRICS_ALLOWED_IPS").split(",")
        if raw.strip()
    ]
except ValueError as exc:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {exc}") from exc

# The chat itself. Every limit and timeout is configurable from the environment.
CHAT: ChatSettings = {
    # "demo" (offline, the default), "openai" (any OpenAI-compatible server) or "anthropic"
    # (Anthropic's Messages API); without CHAT_PROVIDER, the one whose key is set.
    "PROVIDER": env(
        "CHAT_PROVIDER",
        "openai" if env("OPENAI_API_KEY") else "anthropic" if env("ANTHROPIC_API_KEY") else "demo",
    ),
    "MODEL": env("CHAT_MODEL", env("OPENAI_MODEL", "")),
    # Several endpoints at once, as JSON (docs/models.md); without it, the one above and any
    # other whose key is set.
    "ENDPOINTS": env("CHAT_ENDPOINTS"),
    # Each endpoint's model list: fetched with this timeout, kept this long (seconds), and
    # asked again this soon after a failure.
    "MODEL_LIST_TIMEOUT": env_float("CHAT_MODEL_LIST_TIMEOUT", 3),
    "MODEL_LIST_TTL": env_float("CHAT_MODEL_LIST_TTL", 300),
    "MODEL_LIST_RETRY": env_float("CHAT_MODEL_LIST_RETRY", 30),
    "OPENAI_BASE_URL": env("OPENAI_BASE_URL"),
    "OPENAI_API_KEY": env("OPENAI_API_KEY"),
    "ANTHROPIC_BASE_URL": env("ANTHROPIC_BASE_URL"),
    "ANTHROPIC_API_KEY": env("ANTHROPIC_API_KEY"),
    # The Messages API needs a limit on the answer's length (it has no default).
    "ANTHROPIC_MAX_TOKENS": env_int("ANTHROPIC_MAX_TOKENS", 4096),
    "DEMO_TOKEN_INTERVAL": env_float("DEMO_TOKEN_INTERVAL", 0.03),
    # Browser tests only: the demo answers a prompt starting with "echo:" with its text.
    "DEMO_ECHO": env_bool("DEMO_ECHO", False),
    "MAX_MESSAGE_CHARS": 10_000,
    # After a conversation's first answer, a short call of its own asks the model for a title.
    "MODEL_TITLES": env_bool("CHAT_MODEL_TITLES", False),
    "CONTEXT_MESSAGES": env_int("CHAT_CONTEXT_MESSAGES", 40),
    # Timeouts (seconds).
    "CONNECT_TIMEOUT": env_float("CHAT_CONNECT_TIMEOUT", 10),
    "FIRST_TOKEN_TIMEOUT": env_float("CHAT_FIRST_TOKEN_TIMEOUT", 60),
    "IDLE_TIMEOUT": env_float("CHAT_IDLE_TIMEOUT", 30),
    "TOTAL_TIMEOUT": env_float("CHAT_TOTAL_TIMEOUT", 600),
    # Retries before the first token: bounded attempts, exponential backoff, full jitter.
    "RETRY_ATTEMPTS": env_int("CHAT_RETRY_ATTEMPTS", 3),
    "RETRY_BASE_DELAY": env_float("CHAT_RETRY_BASE_DELAY", 0.5),
    "RETRY_MAX_DELAY": env_float("CHAT_RETRY_MAX_DELAY", 8),
    # Persistence and relay.
    "CHECKPOINT_SECONDS": env_float("CHAT_CHECKPOINT_SECONDS", 2),
    "TICK_SECONDS": env_float("CHAT_TICK_SECONDS", 0.04),
    "HEARTBEAT_SECONDS": env_float("CHAT_HEARTBEAT_SECONDS", 15),
    "STALE_STREAM_SECONDS": env_float("CHAT_STALE_STREAM_SECONDS", 90),
    # Rate limits.
    "MESSAGES_PER_MINUTE": env_int("CHAT_MESSAGES_PER_MINUTE", 20),
    "CONCURRENT_STREAMS": env_int("CHAT_CONCURRENT_STREAMS", 3),
    "UPLOADS_PER_MINUTE": env_int("CHAT_UPLOADS_PER_MINUTE", 30),
    "CONVERSATIONS_PER_PAGE": 50,
    "MESSAGES_PER_PAGE": 50,
    # Attachments (conversations/services/attachments.py): bytes per file, files per message,
    # bytes per user in all, an image's pixels, the characters of a document's text that go
    # into the model's context, and how long an upload never sent is kept (hours).
    "ATTACHMENT_MAX_BYTES": env_int("CHAT_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024),
    "ATTACHMENTS_PER_MESSAGE": env_int("CHAT_ATTACHMENTS_PER_MESSAGE", 5),
    "ATTACHMENT_STORAGE_PER_USER": env_int("CHAT_ATTACHMENT_STORAGE_PER_USER", 200 * 1024 * 1024),
    "ATTACHMENT_MAX_PIXELS": env_int("CHAT_ATTACHMENT_MAX_PIXELS", 40_000_000),
    "ATTACHMENT_TEXT_CHARS": env_int("CHAT_ATTACHMENT_TEXT_CHARS", 20_000),
    "ATTACHMENT_UNSENT_HOURS": env_int("CHAT_ATTACHMENT_UNSENT_HOURS", 24),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "chatsite.logging.PlainFormatter"},
        "json": {"()": "chatsite.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",  # the process manager collects stdout
            "formatter": "json" if env_bool("LOG_JSON", PRODUCTION) else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
