# syntax=docker/dockerfile:1
# chat-realtime: `manage.py serve` (uvicorn) serving chat_realtime.asgi:application.
#
#   docker build -t chat-realtime .
#   docker compose up            # with MySQL, Redis and MongoDB (see docker-compose.yml)
#
# Configuration comes from the environment at run time (see .env.example);
# nothing secret is baked into the image.
#
# The base is pinned to Debian bookworm: its libmariadb3 (Connector/C 3.3) talks
# to MySQL 8.4's default self-signed TLS certificate without extra options,
# whereas Connector/C 3.4 (trixie) verifies the server certificate by default.

# --- Builder: compile wheels (mysqlclient needs a compiler and the headers) ---
FROM python:3.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libmariadb-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build
COPY requirements.txt .
RUN pip wheel --wheel-dir /wheels -r requirements.txt


# --- Runtime: only the shared libraries, the wheels and the project ---------
FROM python:3.11-slim-bookworm

ENV DEBUG=false \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb3 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

COPY requirements.txt .
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels -r requirements.txt

# The code stays owned by root (read-only for the app user).
COPY . .

# Static files are collected into the image (STATIC_ROOT=/app/var/static).
# Settings refuse DEBUG=false without strong secrets, so this one step gets a
# throwaway pair generated on the spot; they live only in this RUN's shell.
RUN DEBUG=false \
    SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \
    ACCESS_TOKEN_SECRET="$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \
    python manage.py collectstatic --noinput

# Non-root user; only var/ (media, and anything else the app writes) is theirs.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /app/var/media \
    && chown app:app /app/var /app/var/media
USER app

EXPOSE 8000

# No curl in slim: ask /healthz (which also queries the database) with urllib,
# naming the first of ALLOWED_HOSTS so Django's host check lets it through.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request as r; host = (os.environ.get('ALLOWED_HOSTS') or 'localhost').split(',')[0].strip().lstrip('.').replace('*', 'localhost'); r.urlopen(r.Request('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), headers={'Host': host}), timeout=4)" || exit 1

# Apply migrations, then hand the process over to the server (exec: it gets the signals).
CMD ["sh", "-c", "python manage.py migrate --noinput && exec python manage.py serve --host 0.0.0.0 --port \"${PORT:-8000}\""]
