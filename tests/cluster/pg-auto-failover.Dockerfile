# Postgres with pg_auto_failover, for docker-compose.pg-failover.yml: the same Debian packages
# the failover tests install (tests/api/formation.rs), on the official image's PGDG repository.
FROM postgres:15-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15-auto-failover pg-auto-failover-cli \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:$PATH
USER postgres
