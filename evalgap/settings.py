"""evalgap settings: everything comes from the environment.

Defaults give the embedded demo: SQLite, tasks run in-process, a local Label Studio.
Secrets can also be read from files (`<NAME>_FILE`), as container orchestrators mount them.
Production (docker-compose.yml): DJANGO_SECRET_KEY(_FILE) is required (without it, and without
DJANGO_DEBUG, the app refuses to start), DJANGO_HTTPS=true behind a TLS-terminating proxy, and
DATABASE_URL(_FILE) names a role that owns no table (the migrate service uses the owner's).
"""
import hashlib
import os
import sys
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = BASE_DIR / ".run"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None


def secret(name: str, default: str = "") -> str:
    path = env.str(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text().strip()
    return env.str(name, default=default)


DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = secret("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    # Sessions, password resets and pseudonyms are signed with it: a key everyone can read in this file
    # is acceptable only in debug and under pytest (scripts/demo.sh and scripts/test.sh set a real one).
    if not (DEBUG or "pytest" in sys.modules):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) is not set: refusing to start "
                                   "(set DJANGO_DEBUG=true for a throwaway local run)")
    SECRET_KEY = "insecure-debug-only-key-never-used-in-production"
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Served over HTTPS (a TLS-terminating proxy in front sets X-Forwarded-Proto): secure cookies, HSTS,
# redirects to https. Label Studio's webhook and the health check come from inside the deployment's
# network over plain HTTP, so they are not redirected.
HTTPS = env.bool("DJANGO_HTTPS", default=False)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^api/labelling/webhook/$", r"^healthz/$"]
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "django_celery_beat",
    "core",
    "llm",
    "production",
    "releases",
    "taxonomy",
    "labelling",
    "testsets",
    "generation",
    "evaluation",
    "shadow",
    "gate",
    "dashboard",
    "proxy",
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

ROOT_URLCONF = "evalgap.urls"
WSGI_APPLICATION = "evalgap.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# The URL carries the password, so it may come from a file (DATABASE_URL_FILE). In production it names
# a role with DML rights only: the tables (and the triggers that keep frozen test sets frozen) belong
# to the migration role, which the migrate service alone uses.
DATABASES = {"default": env.db_url_config(secret("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo writes from one process; a busy timeout avoids "database is locked" on bursts.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = Path(env.str("EVALGAP_MEDIA_ROOT", default=str(BASE_DIR / "media")))

LOGIN_URL = "/accounts/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every view states who may call it (core.roles.Allow); a view that does not serves no one.
    "DEFAULT_PERMISSION_CLASSES": ["core.roles.DenyAll"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "core.roles.CappedPagination",
    "PAGE_SIZE": 100,
}
# List endpoints: rows per page by default, and the most `?limit=` may ask for.
API_PAGE_SIZE = env.int("API_PAGE_SIZE", default=100)
API_MAX_PAGE_SIZE = env.int("API_MAX_PAGE_SIZE", default=1000)
SPECTACULAR_SETTINGS = {"TITLE": "evalgap API", "VERSION": "0.1.0"}

# --- Celery: with no broker configured, tasks run in-process (the embedded demo).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
# Exactly once under crashes: a task is acknowledged only when it has finished (acks_late); a
# worker child killed mid-task gives its message back at once (reject_on_worker_lost), and one whose
# whole worker died is redelivered by Redis after the visibility timeout. Every task claims its job
# (core.jobs), so a redelivered or duplicated message does nothing twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The longest task (a large spooled ingest, a push of a whole month, a generation run) is stopped
# at the soft limit (the job fails with the reason), killed at the hard one.
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=3600)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=CELERY_TASK_TIME_LIMIT - 300)
# Redis redelivers an unacknowledged message after this many seconds: above the hard time limit and
# the longest retry countdown (a retry waiting for its countdown holds its message unacknowledged),
# or a task still running would be delivered a second time.
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=2 * CELERY_TASK_TIME_LIMIT)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
# The broker restarting is survived: the worker reconnects for ever, sending retries a few times.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 5, "interval_start": 0.5, "interval_step": 1.0,
                                    "interval_max": 5.0}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# --- Jobs (core.jobs): a "running" job whose heartbeat is older than this is presumed dead and is
# re-queued or failed by the sweeper (beat, every JOB_SWEEP_SECONDS).
JOB_STALE_SECONDS = env.int("JOB_STALE_SECONDS", default=900)
JOB_SWEEP_SECONDS = env.int("JOB_SWEEP_SECONDS", default=300)
if CELERY_VISIBILITY_TIMEOUT <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("CELERY_VISIBILITY_TIMEOUT must exceed CELERY_TASK_TIME_LIMIT: Redis would deliver a "
                               "running task a second time")

# --- Ingest
# Bodies above this size are spooled to disk and ingested by a worker (202 + job id).
INGEST_SYNC_MAX_BYTES = env.int("INGEST_SYNC_MAX_BYTES", default=1_000_000)
INGEST_SPOOL_DIR = Path(env.str("INGEST_SPOOL_DIR", default=str(MEDIA_ROOT / "ingest-spool")))
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=200 * 1024 * 1024)
INGEST_BATCH_SIZE = env.int("INGEST_BATCH_SIZE", default=20_000)
# Poison limits: a line longer than this is rejected unread (it is skipped in blocks, never held whole);
# a text field longer than this (a JSON field: its JSON text) is rejected with the field's name.
INGEST_MAX_LINE_BYTES = env.int("INGEST_MAX_LINE_BYTES", default=16 * 1024 * 1024)
INGEST_MAX_FIELD_CHARS = env.int("INGEST_MAX_FIELD_CHARS", default=1_000_000)

# --- Test set exports
# A frozen version of at most this many items is exported inside the request (its JSON formats take
# well under 0.1 s per 10k items from the column store); a larger one by a worker: POST answers 202
# and an export job to poll, whose file is then downloaded.
EXPORT_SYNC_MAX_ITEMS = env.int("EXPORT_SYNC_MAX_ITEMS", default=20_000)


# --- Implicit signals (definitions: production/signal_definitions.py, docs/signals.md)
# A next query within this many seconds of the answer is a reaction to it (rephrase/follow-up).
SIGNALS_WINDOW_SECONDS = env.int("SIGNALS_WINDOW_SECONDS", default=300)
# No reaction, and the user's next activity is leaving (navigate_away / close) within this many
# seconds of the answer: abandoned. No reaction and no such evidence: session_ended (neutral).
SIGNALS_ABANDON_SECONDS = env.int("SIGNALS_ABANDON_SECONDS", default=120)
# Rephrase flag: P(re-ask | the two queries) at the base rate below >= this threshold.
SIGNALS_REPHRASE_THRESHOLD = env.float("SIGNALS_REPHRASE_THRESHOLD", default=None)  # None: the detector's own
# Share of consecutive query pairs in this traffic that are re-asks: the prior the detector's
# probability is calibrated to (its training pairs were balanced, i.e. 0.5).
SIGNALS_REPHRASE_PRIOR = env.float("SIGNALS_REPHRASE_PRIOR", default=0.1)
SIGNALS_SEMANTIC = env.bool("SIGNALS_SEMANTIC", default=True)
SIGNALS_FAILURE_ON_THUMBS_DOWN = env.bool("SIGNALS_FAILURE_ON_THUMBS_DOWN", default=True)
SIGNALS_FAILURE_ON_ESCALATION = env.bool("SIGNALS_FAILURE_ON_ESCALATION", default=True)
# P(answer failed) carried by each explicit event, combined with the re-ask probability as
# independent evidence (noisy-OR). Stated assumptions, not fitted: no labelled data calibrates
# them yet (labels from Label Studio can, see docs/signals.md).
SIGNALS_FAILURE_PROBABILITY = {
    "human_override": env.float("SIGNALS_P_HUMAN_OVERRIDE", default=0.95),
    "thumbs_down": env.float("SIGNALS_P_THUMBS_DOWN", default=0.7),
    "escalated": env.float("SIGNALS_P_ESCALATED", default=0.6),
}
# The rephrase detector's sentence encoder: the ONNX graph built from the shipped weights
# (python -m rephrase.encoder build), and the CPU threads onnxruntime uses (0: min(2, cores)).
REPHRASE_ENCODER_DIR = Path(env.str("REPHRASE_ENCODER_DIR", default=str(RUN_DIR / "encoder")))
REPHRASE_ENCODER_THREADS = env.int("REPHRASE_ENCODER_THREADS", default=0)
# Run detection after each ingest (a Celery task; in-process when no broker is configured).
SIGNALS_DETECT_AFTER_INGEST = env.bool("SIGNALS_DETECT_AFTER_INGEST", default=bool(CELERY_BROKER_URL))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}

# --- Label Studio (scripts/labelstudio.sh starts a local one; `scripts/labelstudio.sh env` prints these)
LABEL_STUDIO_URL = env.str("LABEL_STUDIO_URL", default="")
LABEL_STUDIO_API_KEY = secret("LABEL_STUDIO_API_KEY")
LABEL_STUDIO_PROJECT_TITLE = env.str("LABEL_STUDIO_PROJECT_TITLE", default="evalgap: production answers")
# Label Studio sends this static header with each webhook (it signs nothing); without it: 401.
LABEL_STUDIO_WEBHOOK_SECRET = secret("LABEL_STUDIO_WEBHOOK_SECRET")
LABEL_STUDIO_WEBHOOK_HEADER = "X-Evalgap-Secret"
# Where Label Studio reaches evalgap (for the webhook); empty: no webhook, pull only.
EVALGAP_PUBLIC_URL = env.str("EVALGAP_PUBLIC_URL", default="")

# A pull marks deleted an annotation missing from Label Studio's export only if it was received before
# the export began, less this many seconds: the web process (which receives webhooks) and the worker
# (which pulls) compare their own clocks; raise it if theirs may differ.
LABELLING_PULL_GRACE_SECONDS = env.int("LABELLING_PULL_GRACE_SECONDS", default=0)

# --- Personal data sent out (core/pii.py redacts; these key the pseudonyms of ids)
# Session and user ids reach Label Studio as keyed HMAC pseudonyms: the same id always gets the
# same pseudonym under one key, and without the key a guess cannot be checked. Set a key of its
# own (or a file) to keep pseudonyms stable across a SECRET_KEY rotation.
PII_PSEUDONYM_KEY = secret("PII_PSEUDONYM_KEY") or hashlib.sha256(
    b"evalgap-pii-pseudonym\x1f" + SECRET_KEY.encode()).hexdigest()

# --- Selection for labelling
LABELLING_SAMPLE_SIZE = env.int("LABELLING_SAMPLE_SIZE", default=100)
LABELLING_CONVERSATION_TURNS = 5  # earlier turns shown to the annotator
# Tasks per import request, at most: each request costs Label Studio ~0.1 s besides its tasks, so
# few and large (its import of 10k tasks peaks at ~720 MB). Tasks are rendered FIRST_CHUNK at a time:
# the first import is that small, so Label Studio starts at once; each later one takes what is ready.
LABELLING_PUSH_CHUNK = env.int("LABELLING_PUSH_CHUNK", default=10_000)
LABELLING_PUSH_FIRST_CHUNK = env.int("LABELLING_PUSH_FIRST_CHUNK", default=400)

# --- Promotion to test sets
# With several annotators, the share agreeing with the majority verdict needed to promote
# without an admin's resolution.
PROMOTION_MIN_AGREEMENT = env.float("PROMOTION_MIN_AGREEMENT", default=0.66)

# --- LLM endpoints (llm/client.py is the one module that calls an LLM). Each role may have its own
# <ROLE>_BASE_URL / <ROLE>_API_KEY; without them the OPENAI_* ones are used.
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")
OPENAI_API_KEY = secret("OPENAI_API_KEY")
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=60.0)
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=5)  # transient errors (429, timeout, 5xx) per request
LLM_MAX_INVALID = env.int("LLM_MAX_INVALID", default=2)  # re-asks after output that does not validate
LLM_BACKOFF_SECONDS = env.float("LLM_BACKOFF_SECONDS", default=2.0)
LLM_BACKOFF_MAX_SECONDS = env.float("LLM_BACKOFF_MAX_SECONDS", default=60.0)
# Everything sent to an LLM passes the PII redactor (core/pii.py) unless this is off.
LLM_REDACT_PII = env.bool("LLM_REDACT_PII", default=True)
# A release names the environment variable that holds its key (Release.api_key_env, so no key is
# stored in the database); those variables (or their <NAME>_FILE) are read here, at start, like
# every other setting. Only names ending in _KEY, and none of this project's own secrets: a release
# record cannot have DJANGO_SECRET_KEY or the Label Studio token sent to its base URL.
_NOT_RELEASE_KEYS = {"DJANGO_SECRET_KEY", "PII_PSEUDONYM_KEY", "LABEL_STUDIO_API_KEY"}
RELEASE_API_KEYS = {name: secret(name) for name in {n.removesuffix("_FILE") for n in os.environ}
                    if name.endswith("_KEY") and name not in _NOT_RELEASE_KEYS}

# --- Targeted case generation
GENERATION_BASE_URL = env.str("GENERATION_BASE_URL", default="")
GENERATION_API_KEY = secret("GENERATION_API_KEY")
GENERATION_MODEL = env.str("GENERATION_MODEL", default="gpt-4o-mini")
GENERATION_TEMPERATURE = env.float("GENERATION_TEMPERATURE", default=0.9)
GENERATION_DEFAULT_N = env.int("GENERATION_DEFAULT_N", default=10)
GENERATION_SEED_EXAMPLES = env.int("GENERATION_SEED_EXAMPLES", default=8)
GENERATION_DEDUP_THRESHOLD = env.float("GENERATION_DEDUP_THRESHOLD", default=0.5)
GENERATION_DEDUP_SEMANTIC = env.bool("GENERATION_DEDUP_SEMANTIC", default=True)
GENERATION_TESTSET = env.str("GENERATION_TESTSET", default="production")
GENERATION_REVIEW_PROJECT_TITLE = env.str("GENERATION_REVIEW_PROJECT_TITLE", default="evalgap: generated cases review")
# Prices per 1,000 tokens, for the cost recorded on each run (0: unknown).
GENERATION_PRICE_PER_1K_PROMPT_TOKENS = env.float("GENERATION_PRICE_PER_1K_PROMPT_TOKENS", default=0.0)
GENERATION_PRICE_PER_1K_COMPLETION_TOKENS = env.float("GENERATION_PRICE_PER_1K_COMPLETION_TOKENS", default=0.0)

# --- Offline scores and offline <-> production correlation (evaluation app)
# The grader compares a release's answer with a test item's reference answer (temperature 0).
# Its own endpoint, else OPENAI_BASE_URL / OPENAI_API_KEY. No default model: pick a grader from
# another model family than the releases it grades (self-preference bias).
GRADER_BASE_URL = env.str("GRADER_BASE_URL", default="")
GRADER_API_KEY = secret("GRADER_API_KEY")
GRADER_MODEL = env.str("GRADER_MODEL", default="")
GRADER_PRICE_PER_1K_PROMPT_TOKENS = env.float("GRADER_PRICE_PER_1K_PROMPT_TOKENS", default=0.0)
GRADER_PRICE_PER_1K_COMPLETION_TOKENS = env.float("GRADER_PRICE_PER_1K_COMPLETION_TOKENS", default=0.0)
# Items answered and graded at once, and the spending cap of one offline run (candidate + grader).
OFFLINE_CONCURRENCY = env.int("OFFLINE_CONCURRENCY", default=4)
OFFLINE_MAX_USD = env.float("OFFLINE_MAX_USD", default=5.0)
# Production quality of a release: its turns on the first N days it served (same post-release
# window for every release, so seasonality and novelty effects compare like with like).
CORRELATION_WINDOW_DAYS = env.int("CORRELATION_WINDOW_DAYS", default=7)
# Releases in the rolling rank correlation, and the fewest for which a number is given at all.
CORRELATION_LAST_K = env.int("CORRELATION_LAST_K", default=12)
CORRELATION_MIN_RELEASES = env.int("CORRELATION_MIN_RELEASES", default=8)
# Item level: a week's AUC needs this many graded served answers (and both outcomes among them).
CORRELATION_ITEM_MIN_PER_WEEK = env.int("CORRELATION_ITEM_MIN_PER_WEEK", default=20)
CORRELATION_AUC_FLOOR = env.float("CORRELATION_AUC_FLOOR", default=0.6)
# The weekly alarms' change test (core.stats.change): a CUSUM of the weeks' shortfall in standard
# errors, allowance k, alarm above h. At k 0.5, h 5 a year of weekly checks with nothing changed
# alarms ~0.005-0.033 times a quarter (benchmarks/sim_alarm.py; benchmarks/README.md).
CORRELATION_CUSUM_K = env.float("CORRELATION_CUSUM_K", default=0.5)
CORRELATION_CUSUM_H = env.float("CORRELATION_CUSUM_H", default=5.0)
# Alarms are posted as JSON to this URL (Slack-compatible "text" field); empty: stored and shown only.
ALARM_WEBHOOK_URL = env.str("ALARM_WEBHOOK_URL", default="")
ALARM_POST_ATTEMPTS = env.int("ALARM_POST_ATTEMPTS", default=3)  # per try; the beat task tries again later
ALARM_POST_BACKOFF_SECONDS = env.float("ALARM_POST_BACKOFF_SECONDS", default=2.0)
ALARM_POST_TIMEOUT_SECONDS = env.float("ALARM_POST_TIMEOUT_SECONDS", default=10.0)

# --- The pairwise judge (shadow evaluation, judge calibration). Its own endpoint and key, else the
# OPENAI_* ones; a judge from another model family than either side is the documented advice.
JUDGE_BASE_URL = env.str("JUDGE_BASE_URL", default="")
JUDGE_API_KEY = secret("JUDGE_API_KEY")
JUDGE_MODEL = env.str("JUDGE_MODEL", default="")
JUDGE_PRICE_PER_1K_PROMPT_TOKENS = env.float("JUDGE_PRICE_PER_1K_PROMPT_TOKENS", default=0.0)
JUDGE_PRICE_PER_1K_COMPLETION_TOKENS = env.float("JUDGE_PRICE_PER_1K_COMPLETION_TOKENS", default=0.0)
# Requests in flight at once (each pair is asked twice, in both orders).
JUDGE_CONCURRENCY = env.int("JUDGE_CONCURRENCY", default=32)
# The prompt file shadow/prompts/<version>.txt; every verdict records it.
JUDGE_PROMPT_VERSION = env.str("JUDGE_PROMPT_VERSION", default="judge-v2")

# --- Shadow evaluation (replay: evalgap asks the candidate itself; mirror: the gateway sent its answers)
SHADOW_SAMPLE_SIZE = env.int("SHADOW_SAMPLE_SIZE", default=150)  # turns per day, whole conversations
# The salt of the session hash that decides which conversations are replayed; independent of any
# rollout bucketing. Changing it draws a different sample.
SHADOW_SAMPLE_SALT = env.str("SHADOW_SAMPLE_SALT", default="evalgap-shadow-v1")
SHADOW_CONCURRENCY = env.int("SHADOW_CONCURRENCY", default=8)
# Spend on replayed candidate answers per release per UTC day; empty: no cap.
_shadow_cap = env.str("SHADOW_MAX_USD_PER_DAY", default="10").strip()
SHADOW_MAX_USD_PER_DAY = float(_shadow_cap) if _shadow_cap else None
# Prices of the candidates' tokens (their cost is what the daily budget counts).
SHADOW_PRICE_PER_1K_PROMPT_TOKENS = env.float("SHADOW_PRICE_PER_1K_PROMPT_TOKENS", default=0.0)
SHADOW_PRICE_PER_1K_COMPLETION_TOKENS = env.float("SHADOW_PRICE_PER_1K_COMPLETION_TOKENS", default=0.0)
SHADOW_CONVERSATION_TURNS = env.int("SHADOW_CONVERSATION_TURNS", default=10)  # earlier turns sent along
# The fixed horizon of the decision: better/worse only with at least this many judged pairs over
# at least this many days (docs/shadow.md).
SHADOW_MIN_PAIRS = env.int("SHADOW_MIN_PAIRS", default=1000)
SHADOW_MIN_DAYS = env.int("SHADOW_MIN_DAYS", default=7)
SHADOW_REPORT_DAYS = env.int("SHADOW_REPORT_DAYS", default=7)
# The monthly human audit of the judge: judged pairs sent to Label Studio as pairwise tasks.
SHADOW_AUDIT_SAMPLE = env.int("SHADOW_AUDIT_SAMPLE", default=50)
SHADOW_AUDIT_PROJECT_TITLE = env.str("SHADOW_AUDIT_PROJECT_TITLE", default="evalgap: shadow pairwise audit")

# --- The release gate (gate app): ship / block / insufficient_evidence for a candidate release.
# These are the policy's defaults; the server's YAML file (GATE_POLICY_FILE) overrides any of them by
# key, and a request or release_gate --policy may only tighten the result (gate/policy.py validates
# it: a bad file is an error naming the key). See docs/gate.md, "Shipping a model change".
GATE_POLICY_FILE = env.str("GATE_POLICY_FILE", default="")
GATE_POLICY = {
    # The test set the offline scores are read on; empty: the one of the candidate's latest scored run.
    "testset": env.str("GATE_TESTSET", default="") or None,
    # Offline: candidate minus baseline (paired by item) may be at most this much below 0.
    "offline_margin": env.float("GATE_OFFLINE_MARGIN", default=0.02),
    # Offline scores on an older frozen version than the latest are stale (not evidence) unless allowed.
    "allow_stale_version": env.bool("GATE_ALLOW_STALE_VERSION", default=False),
    # The production evidence that can make a release ship: shadow, ab, either, both (offline never alone).
    "accept": env.str("GATE_ACCEPT", default="either"),
    # Shadow: no difference passes when the win rate's lower bound reaches 0.5 minus this.
    "non_inferiority_margin": env.float("GATE_NON_INFERIORITY_MARGIN", default=0.05),
    # Shadow: the least evidence read (the intervals are confidence sequences, valid at every look:
    # docs/gate.md), over the last N days of pairs.
    "min_shadow_pairs": env.int("GATE_MIN_SHADOW_PAIRS", default=SHADOW_MIN_PAIRS),
    "min_shadow_days": env.int("GATE_MIN_SHADOW_DAYS", default=SHADOW_MIN_DAYS),
    "shadow_window_days": env.int("GATE_SHADOW_WINDOW_DAYS", default=SHADOW_REPORT_DAYS),
    # Shadow: a judge that disagrees with itself on more swapped pairs than this is not evidence.
    "max_inconsistent_rate": env.float("GATE_MAX_INCONSISTENT_RATE", default=0.3),
    # Shadow: the share of pairs whose served answer the baseline gave (else the pairs compare
    # the candidate with something else).
    "min_baseline_share": env.float("GATE_MIN_BASELINE_SHARE", default=0.9),
    # A/B (a canary): each rate of the candidate may be at most this much worse (absolute).
    "ab_margin": env.float("GATE_AB_MARGIN", default=0.02),
    "min_ab_turns": env.int("GATE_MIN_AB_TURNS", default=1000),
    "min_ab_days": env.int("GATE_MIN_AB_DAYS", default=7),
    "ab_window_days": env.int("GATE_AB_WINDOW_DAYS", default=14),
    # Signals where more is better (all others: fewer is better).
    "higher_is_better": env.list("GATE_HIGHER_IS_BETTER", default=["copied", "thumbs_up"]),
    # Signals shown but never judged either way (session_ended: the exchange simply ended there).
    "neutral_signals": env.list("GATE_NEUTRAL_SIGNALS", default=["session_ended"]),
}

# --- judgeslots: the judge's per-field caps (docs/judge.md) ---
# The judge's user message is assembled from fields capped on their own, so the redactor's
# per-message cut (core.pii.FIELD_MAX_CHARS) never reaches it: the whole message (at most 90% of
# that cut), each answer and the user's message (whole, or the pair is unjudged with the reason),
# the conversation so far (its oldest part left out first); the contexts get the room left.
JUDGE_PROMPT_MAX_CHARS = env.int("JUDGE_PROMPT_MAX_CHARS", default=90_000)
JUDGE_ANSWER_MAX_CHARS = env.int("JUDGE_ANSWER_MAX_CHARS", default=30_000)
JUDGE_QUERY_MAX_CHARS = env.int("JUDGE_QUERY_MAX_CHARS", default=20_000)
JUDGE_HISTORY_MAX_CHARS = env.int("JUDGE_HISTORY_MAX_CHARS", default=10_000)

# --- otlp: the OTLP/HTTP trace receiver (POST /api/otlp/v1/traces) ---
# The largest request body, after gzip is undone (an exporter's batch is far smaller: 512 spans).
OTLP_MAX_BODY_BYTES = env.int("OTLP_MAX_BODY_BYTES", default=32 * 1024 * 1024)

# --- proxy: the mirroring proxy (docs/proxy-and-events.md) ---
# Where a proxy's turns wait (one folder per source) when evalgap's database cannot take them.
PROXY_SPOOL_DIR = Path(env.str("PROXY_SPOOL_DIR", default=str(MEDIA_ROOT / "proxy-spool")))
# Sessions are in or out of a release's shadow share by sha256(salt, release, session id).
PROXY_SHADOW_SALT = env.str("PROXY_SHADOW_SALT", default="evalgap-proxy-v1")
PROXY_QUEUE_SIZE = env.int("PROXY_QUEUE_SIZE", default=10_000)  # lines waiting for the writer; then spooled
PROXY_SHADOW_QUEUE_SIZE = env.int("PROXY_SHADOW_QUEUE_SIZE", default=1_000)  # candidate calls; then dropped
PROXY_SHADOW_WORKERS = env.int("PROXY_SHADOW_WORKERS", default=4)

# --- redactor: what one API response may redact, spool files, the proxy header ---
# A list response redacts at most this many characters in full (a page of 20 turns with 100k-
# character fields took 14.5 s); past it, each further field shows its first API_REDACT_FIELD_FLOOR
# characters and says how many were not shown (benchmarks/bench_redacted_list.py).
API_REDACT_MAX_CHARS = env.int("API_REDACT_MAX_CHARS", default=200_000)
API_REDACT_FIELD_FLOOR = env.int("API_REDACT_FIELD_FLOOR", default=1_000)
# How long a spooled ingest body (raw personal data) may stay on disk: a finished job's spool file is
# deleted at once (production.tasks.ingest_spool_purge, hourly); any file older than this is deleted
# whatever its job, and a job still waiting on it is failed.
INGEST_SPOOL_MAX_DAYS = env.int("INGEST_SPOOL_MAX_DAYS", default=3)
# DJANGO_HTTPS says the site is served over HTTPS; the header saying a request came over it is
# trusted only with DJANGO_BEHIND_PROXY=true: where the app's port is reachable by the proxy alone
# (docker-compose.yml binds web to 127.0.0.1) and the proxy overwrites the header.
BEHIND_PROXY = env.bool("DJANGO_BEHIND_PROXY", default=False)
if not BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = None

# --- privacy: erasure and retention of raw text (docs/privacy.md) ---
# Days a turn's raw text is kept (its timestamp, else when it arrived); older text is dropped by the
# daily "apply RAW_RETENTION_DAYS" beat row and `manage.py apply_retention`, signals and labels stay.
# Empty: keep forever.
_raw_retention_days = env.str("RAW_RETENTION_DAYS", default="").strip()
if _raw_retention_days and not (_raw_retention_days.isdigit() and int(_raw_retention_days) > 0):
    raise ImproperlyConfigured(f"RAW_RETENTION_DAYS: {_raw_retention_days!r} is not a positive number of days "
                               "(leave it empty to keep raw text forever)")
RAW_RETENTION_DAYS = int(_raw_retention_days) if _raw_retention_days else None

# --- gatepolicy: guardrails on latency and cost (gate/guardrails.py) ---
# The largest candidate/served ratio allowed (null/empty: no limit). A ratio shown above its limit
# (its 95 % interval entirely above) blocks; the server's values are the floor a request may only tighten.
GATE_POLICY.update({
    "max_latency_p50_ratio": env.float("GATE_MAX_LATENCY_P50_RATIO", default=None),
    "max_latency_p95_ratio": env.float("GATE_MAX_LATENCY_P95_RATIO", default=1.5),
    "max_cost_ratio": env.float("GATE_MAX_COST_RATIO", default=1.5),
})
# --- gatestats: the statistics of the ship decision (issue #18, items 1-5) ---
# Shadow: which decisive win rate decides: "calibrated" (the judge corrected by the human audit,
# prediction-powered), "judge" (the judge's own), or "auto": calibrated once the audit holds
# min_audited_pairs human-picked pairs of the window, else the judge's with its measured bias named.
GATE_POLICY["shadow_decides_on"] = env.str("GATE_SHADOW_DECIDES_ON", default="auto")
GATE_POLICY["min_audited_pairs"] = env.int("GATE_MIN_AUDITED_PAIRS", default=100)
# A/B: the share of sessions the canary is declared to get; a split off it (sample-ratio mismatch,
# chi-square p < ab_srm_alpha) makes the A/B evidence insufficient.
GATE_POLICY["ab_expected_share"] = env.float("GATE_AB_EXPECTED_SHARE", default=0.5)
GATE_POLICY["ab_srm_alpha"] = env.float("GATE_AB_SRM_ALPHA", default=0.001)
# --- ledger: one spend ledger for every LLM purpose (docs/spend.md) ---
# <PURPOSE>_MAX_USD_PER_DAY: each purpose's daily cap in USD over all runs and processes (UTC day);
# default 10, empty = no cap. A request is reserved at its worst case before it is sent.
def _cap(name: str, default: str = "10") -> float | None:
    value = env.str(name, default=default).strip()
    return float(value) if value else None


# Replay's cap was SHADOW_MAX_USD_PER_DAY (per release, read once per run): still read as its default.
REPLAY_MAX_USD_PER_DAY = _cap("REPLAY_MAX_USD_PER_DAY", env.str("SHADOW_MAX_USD_PER_DAY", default="10"))
JUDGE_MAX_USD_PER_DAY = _cap("JUDGE_MAX_USD_PER_DAY")
GRADER_MAX_USD_PER_DAY = _cap("GRADER_MAX_USD_PER_DAY")
GENERATION_MAX_USD_PER_DAY = _cap("GENERATION_MAX_USD_PER_DAY")
CALIBRATION_MAX_USD_PER_DAY = _cap("CALIBRATION_MAX_USD_PER_DAY")
AUDIT_MAX_USD_PER_DAY = _cap("AUDIT_MAX_USD_PER_DAY")
# Sent as max_tokens when a caller names none: the bound of an answer's cost in the reservation.
LLM_MAX_TOKENS = env.int("LLM_MAX_TOKENS", default=4096)
# Shadow lines (mirrored answers) are accepted only from these sources (names, comma-separated;
# empty: from none), at most this many per release per UTC day (empty: no limit).
SHADOW_MIRROR_SOURCES = env.list("SHADOW_MIRROR_SOURCES", default=[])
_mirror_cap = env.str("SHADOW_MIRROR_MAX_PER_RELEASE_PER_DAY", default="5000").strip()
SHADOW_MIRROR_MAX_PER_RELEASE_PER_DAY = int(_mirror_cap) if _mirror_cap else None
# --- failfit: the failure model fitted on labels (evaluation.services.failure_model, docs/failure-model.md) ---
# Below this many labelled production turns (or this many of either class: judged incorrect /
# correct) nothing is fitted and detection keeps the stated weights above.
FAILURE_MODEL_MIN_LABELS = env.int("FAILURE_MODEL_MIN_LABELS", default=200)
FAILURE_MODEL_MIN_PER_CLASS = env.int("FAILURE_MODEL_MIN_PER_CLASS", default=30)
FAILURE_MODEL_L2 = env.float("FAILURE_MODEL_L2", default=1.0)  # ridge on the coefficients (weights scaled to mean 1)
FAILURE_MODEL_FOLDS = env.int("FAILURE_MODEL_FOLDS", default=5)  # held-out evaluation: stratified K-fold
