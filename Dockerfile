# sqlsluice proxy image.  Built by docker-compose.yml; listens on 6543.
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY sqlsluice ./sqlsluice
RUN pip install --no-cache-dir .

ENV SLUICE_HOME=/var/lib/sluice \
    SLUICE_CONFIG=/etc/sluice/sluice.toml
COPY docker/sluice.toml /etc/sluice/sluice.toml
EXPOSE 6543
CMD ["sluice", "serve", "--listen", "0.0.0.0:6543"]
