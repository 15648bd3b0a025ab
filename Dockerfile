# sqlsluice proxy image.  Built by docker-compose.yml; listens on 6543.
FROM python:3.11-slim

# psql and pg_isready (for the operator); nothing recommended
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*

# an unprivileged user owns the state directory (rewrite store, query log, LLM ledger)
RUN groupadd --system sluice \
    && useradd --system --gid sluice --home-dir /var/lib/sluice --shell /usr/sbin/nologin sluice \
    && mkdir -p /var/lib/sluice /etc/sluice \
    && chown sluice:sluice /var/lib/sluice

WORKDIR /app
COPY pyproject.toml README.md ./
COPY sqlsluice ./sqlsluice
RUN pip install --no-cache-dir .

ENV SLUICE_HOME=/var/lib/sluice \
    SLUICE_CONFIG=/etc/sluice/sluice.toml
COPY docker/sluice.toml /etc/sluice/sluice.toml
VOLUME ["/var/lib/sluice"]
USER sluice
# 6543: the PostgreSQL wire protocol; 6544: /metrics, /healthz and the web console ([http] listen)
EXPOSE 6543 6544
# /healthz answers 200 when the backend answers SELECT 1 (503 otherwise, and while shutting down)
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=6 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6544/healthz', timeout=3)" || exit 1
CMD ["sluice", "serve", "--listen", "0.0.0.0:6543"]
