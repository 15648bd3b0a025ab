# sqlsluice proxy image.  Built by docker-compose.yml; listens on 6543.
FROM python:3.11-slim

# psql and pg_isready (the healthcheck); nothing recommended
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
EXPOSE 6543
# pg_isready gets an answer from sqlsluice's own wire server (an auth request counts)
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=6 \
    CMD pg_isready -q -h 127.0.0.1 -p 6543 -U app -d postgres || exit 1
CMD ["sluice", "serve", "--listen", "0.0.0.0:6543"]
