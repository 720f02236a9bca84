"""Configuration classes, all read from the environment."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

INSTANCE_DIR = Path(__file__).resolve().parent / "instance"


def _database_url(default: str) -> str:
    return normalize_database_url(os.environ.get("DATABASE_URL", default))


def normalize_database_url(url: str) -> str:
    """postgres:// and postgresql:// URLs get the psycopg 3 driver SQLAlchemy needs named."""
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgres://")
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


# Only for development and tests: production refuses to start with it.
DEV_SECRET_KEY = "dev-only-not-secret"


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


class Config:
    ENV_NAME = "development"
    SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)
    SQLALCHEMY_DATABASE_URI = _database_url(f"sqlite:///{INSTANCE_DIR / 'exchange.db'}")
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    # PostgreSQL ends a session of the service left idle inside a transaction this long (0:
    # never): an open transaction holds the evidence log's sealer back until it ends.
    DATABASE_IDLE_IN_TRANSACTION_SECONDS = _int("DATABASE_IDLE_IN_TRANSACTION_SECONDS", 60)
    MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 1024 * 1024)
    JSON_SORT_KEYS = False

    API_TITLE = "Data-trading marketplace"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "docs"
    OPENAPI_SWAGGER_UI_URL = "/docs/assets/"

    IDEMPOTENCY_KEY_TTL_HOURS = _int("IDEMPOTENCY_KEY_TTL_HOURS", 24)
    # How long a second request with the same key waits for the first before answering 409.
    IDEMPOTENCY_LOCK_TIMEOUT_MS = _int("IDEMPOTENCY_LOCK_TIMEOUT_MS", 10_000)

    ORDER_PAYMENT_TTL_MINUTES = _int("ORDER_PAYMENT_TTL_MINUTES", 30)
    ORDER_AUTO_ACCEPT_DAYS = _int("ORDER_AUTO_ACCEPT_DAYS", 7)
    # Delivered later than ORDER_LATE_DELIVERY_DAYS after payment: a late_delivery finding;
    # still undelivered ORDER_DELIVERY_DAYS after payment: refunded in full by the scheduler,
    # a non_delivery finding.
    ORDER_LATE_DELIVERY_DAYS = _int("ORDER_LATE_DELIVERY_DAYS", 3)
    ORDER_DELIVERY_DAYS = _int("ORDER_DELIVERY_DAYS", 7)
    # An unpaid order holds its licenses until it is paid, cancelled or expires: one buyer
    # holds at most this many of a limited listing's licenses unpaid (409 beyond).
    UNPAID_LICENSES_PER_BUYER_PER_LISTING = _int("UNPAID_LICENSES_PER_BUYER_PER_LISTING", 10)
    # A buyer's unpaid orders cancelled or left to expire: the this-many-th within one window
    # (windows of so many hours, counted from the epoch in UTC) is a credit finding, one per
    # window.
    ABANDONED_ORDERS_FINDING_COUNT = _int("ABANDONED_ORDERS_FINDING_COUNT", 5)
    ABANDONED_ORDERS_WINDOW_HOURS = _int("ABANDONED_ORDERS_WINDOW_HOURS", 24)
    # Access tokens to a merchant's API under an `api` licence live this long (never past
    # the licence's end); the merchant's API introspects them on every call.
    LICENSE_TOKEN_TTL_SECONDS = _int("LICENSE_TOKEN_TTL_SECONDS", 900)
    # A demand posted without expires_at stays open this long.
    DEMAND_TTL_DAYS = _int("DEMAND_TTL_DAYS", 30)
    # Matching scores at most this many candidates per demand (the cheapest that pass every
    # hard constraint), so its cost does not grow with the catalog.
    MATCH_CANDIDATES = _int("MATCH_CANDIDATES", 200)
    # Recent deals (completed orders) of a category that price guidance weighs.
    DEAL_WINDOW_DAYS = _int("DEAL_WINDOW_DAYS", 90)
    # Settlement: the platform's fee off the top of every order, in basis points; the daily
    # run's schedule (cron, SCHEDULER_TIMEZONE); orders settled per transaction.
    PLATFORM_FEE_BPS = _int("PLATFORM_FEE_BPS", 500)
    SETTLEMENT_CRON = os.environ.get("SETTLEMENT_CRON", "0 2 * * *")
    SETTLEMENT_BATCH_SIZE = _int("SETTLEMENT_BATCH_SIZE", 500)
    # Settlement runs take turns: a run asked for through the API waits this long for the
    # run in progress, then answers 409 (the daily job and the CLI wait as long as it takes).
    # Below gunicorn's timeout.
    SETTLEMENT_RUN_WAIT_SECONDS = _int("SETTLEMENT_RUN_WAIT_SECONDS", 10)
    # Where bank_file payout batches are written for the operator.
    PAYOUT_FILE_DIR = os.environ.get("PAYOUT_FILE_DIR", str(INSTANCE_DIR / "payouts"))
    # Stripe Connect transfers (stripe_connect payouts): another API base if set.
    STRIPE_CONNECT_API_BASE = os.environ.get("STRIPE_CONNECT_API_BASE")
    # Stripe: a secret key turns it on; STRIPE_API_BASE points the SDK elsewhere (localstripe).
    STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY")
    STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET")
    STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE")
    STRIPE_MAX_NETWORK_RETRIES = _int("STRIPE_MAX_NETWORK_RETRIES", 2)
    # "stripe" once a Stripe key is configured, else "offline" (bank transfer, confirmed by
    # an operator).
    PAYMENT_PROVIDER = os.environ.get("PAYMENT_PROVIDER",
                                      "stripe" if STRIPE_SECRET_KEY else "offline")

    # The single-machine default (make run) hosts the scheduler in the web process; with
    # several web hosts, run one dedicated `flask scheduler run` instead.
    SCHEDULER_IN_WEB = os.environ.get("SCHEDULER_IN_WEB", "false").lower() == "true"
    SCHEDULER_TIMEZONE = os.environ.get("SCHEDULER_TIMEZONE", "Asia/Shanghai")

    # Abuse limits (app/limits.py); counters in Redis when REDIS_URL is set, else in memory.
    REDIS_URL = os.environ.get("REDIS_URL")
    RATE_LIMITS_ENABLED = os.environ.get("RATE_LIMITS_ENABLED", "true").lower() == "true"
    RATE_LIMIT_AUTH_FAILURES = os.environ.get("RATE_LIMIT_AUTH_FAILURES", "20 per minute")
    RATE_LIMIT_REGISTRATION = os.environ.get("RATE_LIMIT_REGISTRATION", "10 per hour")
    RATE_LIMIT_KEY_ISSUANCE = os.environ.get("RATE_LIMIT_KEY_ISSUANCE", "10 per hour")
    RATE_LIMIT_TRADING = os.environ.get("RATE_LIMIT_TRADING", "120 per minute")
    RATE_LIMIT_DISPUTES = os.environ.get("RATE_LIMIT_DISPUTES", "20 per hour")
    # Several deployments may share one Redis: each counts under its own prefix.
    RATE_LIMIT_KEY_PREFIX = os.environ.get("RATE_LIMIT_KEY_PREFIX", "exchange")
    # Proxies in front of the service that append to X-Forwarded-For (a load balancer: 1).
    # Each client's address for the limits is read there only when this is set; otherwise
    # the header is the client's to forge.
    TRUSTED_PROXY_HOPS = _int("TRUSTED_PROXY_HOPS", 0)

    # GET /metrics wants it as a bearer token; unset, production does not serve the metrics.
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN")

    # The evidence log: its name in checkpoints, how soon a committed audit entry is sealed
    # into the tree (the sealer runs this often), and the checkpoints' signing key (a signer
    # key string, or a file holding one; development generates instance/log-signing.key).
    LOG_ORIGIN = os.environ.get("LOG_ORIGIN", "exchange.local/log")
    LOG_MAX_MERGE_DELAY_SECONDS = _int("LOG_MAX_MERGE_DELAY_SECONDS", 1)
    # How often the sealer runs: an entry waits up to one interval, then for its batch, so a
    # fraction of the delay it must keep within.
    LOG_SEAL_INTERVAL_SECONDS = float(os.environ.get("LOG_SEAL_INTERVAL_SECONDS",
                                                     LOG_MAX_MERGE_DELAY_SECONDS / 4))
    # Entries one sealer transaction integrates at most (a backlog takes several batches).
    LOG_SEAL_BATCH_SIZE = _int("LOG_SEAL_BATCH_SIZE", 10_000)
    LOG_SIGNING_KEY = os.environ.get("LOG_SIGNING_KEY")
    LOG_SIGNING_KEY_FILE = os.environ.get("LOG_SIGNING_KEY_FILE")
    # Where the public reaches the exchange: printed vouchers and certificates carry a QR code
    # of its verification page (PUBLIC_BASE_URL/public/verify?document=<number>).
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000")

    # Data artifacts (app/storage.py): where uploaded files live, `file://<directory>` (the
    # single-machine default, under instance/) or `s3://<bucket>` on any S3-compatible store
    # (S3_ENDPOINT_URL for one that is not AWS; credentials and region from the usual AWS_*
    # variables). Uploads past ARTIFACT_MAX_BYTES are refused (413); download links, S3
    # presigned or signed by the service itself, last DOWNLOAD_URL_TTL_SECONDS.
    ARTIFACT_STORAGE = os.environ.get("ARTIFACT_STORAGE", f"file://{INSTANCE_DIR / 'artifacts'}")
    S3_ENDPOINT_URL = os.environ.get("S3_ENDPOINT_URL")
    ARTIFACT_MAX_BYTES = _int("ARTIFACT_MAX_BYTES", 2 * 1024**3)
    DOWNLOAD_URL_TTL_SECONDS = _int("DOWNLOAD_URL_TTL_SECONDS", 300)

    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
    LOG_JSON = os.environ.get("LOG_JSON", "true").lower() == "true"


class DevelopmentConfig(Config):
    LOG_JSON = os.environ.get("LOG_JSON", "false").lower() == "true"


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True
    SQLALCHEMY_DATABASE_URI = _database_url("sqlite://")
    SCHEDULER_IN_WEB = False
    LOG_JSON = False
    IDEMPOTENCY_LOCK_TIMEOUT_MS = 5_000
    STRIPE_MAX_NETWORK_RETRIES = 0
    # The suite hammers endpoints on purpose; tests of the limits turn them on.
    RATE_LIMITS_ENABLED = False
    # Never the development instance/ directory: tests that keep artifacts name their own.
    ARTIFACT_STORAGE = f"file://{Path(tempfile.gettempdir()) / 'exchange-test-artifacts'}"


class ProductionConfig(Config):
    ENV_NAME = "production"
    DEBUG = False
    TESTING = False
    LOG_JSON = True
    PROPAGATE_EXCEPTIONS = False
    # Behind TLS: browsers keep to HTTPS for a year.
    HSTS_SECONDS = _int("HSTS_SECONDS", 31_536_000)

    @classmethod
    def validate(cls) -> None:
        """Refuse to start without the settings production cannot guess or must not share."""
        problems = [f"{name} is required" for name in ("SECRET_KEY", "DATABASE_URL")
                    if not os.environ.get(name)]
        if os.environ.get("SECRET_KEY") == DEV_SECRET_KEY or \
                len(os.environ.get("SECRET_KEY", "x" * 32)) < 32:
            problems.append("SECRET_KEY must be a random value of at least 32 characters")
        provider = os.environ.get("PAYMENT_PROVIDER",
                                  "stripe" if os.environ.get("STRIPE_SECRET_KEY") else "offline")
        if provider == "stripe" and not (
                os.environ.get("STRIPE_SECRET_KEY") and os.environ.get("STRIPE_WEBHOOK_SECRET")):
            problems.append("the stripe provider needs STRIPE_SECRET_KEY and "
                            "STRIPE_WEBHOOK_SECRET")
        if not (os.environ.get("LOG_SIGNING_KEY") or os.environ.get("LOG_SIGNING_KEY_FILE")):
            problems.append("LOG_SIGNING_KEY or LOG_SIGNING_KEY_FILE is required")
        storage = os.environ.get("ARTIFACT_STORAGE")  # unset: the instance directory
        if storage is not None and not re.fullmatch(r"file://.+|s3://[^/]+(/.*)?", storage):
            problems.append("ARTIFACT_STORAGE must be file://<directory> or s3://<bucket>")
        if problems:
            raise RuntimeError("production configuration: " + "; ".join(problems))


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_from_env() -> type[Config]:
    """The configuration class named by APP_ENV (development by default)."""
    name = os.environ.get("APP_ENV", "development")
    try:
        return CONFIGS[name]
    except KeyError:
        raise RuntimeError(f"APP_ENV must be one of {sorted(CONFIGS)}, not {name!r}") from None
