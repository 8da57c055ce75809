# The engine alone; docker-compose.yml adds PostgreSQL and Redis. The base image is
# pinned by tag, the Python packages by constraints.txt, so that a rebuild installs the
# same versions.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --create-home --uid 10001 app
WORKDIR /app

# Dependencies first, read from pyproject.toml alone and pinned by constraints.txt, so
# that a change to the code does not reinstall them.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY README.md ./
COPY sql ./sql
COPY order_engine ./order_engine
RUN pip install --no-deps .

USER app
ENV APP_ENV=production HOST=0.0.0.0 PORT=3000
EXPOSE 3000
# Liveness, not readiness: a database outage is no reason to restart a process that
# will serve again as soon as the database is back (/readyz tells a load balancer).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '3000') + '/livez', timeout=2)"
CMD ["order-engine", "serve"]
