# The exchange's one image: web hosts run gunicorn (the default command), the scheduler runs
# `flask scheduler run`, and migrations run `flask db upgrade` once per release.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    APP_ENV=production FLASK_APP=app BIND=0.0.0.0:8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics

WORKDIR /srv/exchange
COPY pyproject.toml requirements.lock ./
COPY config.py gunicorn.conf.py ./
COPY app ./app
COPY listings ./listings
COPY orders ./orders
COPY settlement ./settlement
COPY credit ./credit
COPY oversight ./oversight
COPY migrations ./migrations
# Editable: the code (and migrations/ beside it) is run from /srv/exchange itself.
RUN pip install -c requirements.lock -e . \
    && useradd --system --home /srv/exchange exchange \
    && mkdir -p /srv/exchange/instance /tmp/metrics \
    && chown exchange /srv/exchange/instance /tmp/metrics

USER exchange
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
