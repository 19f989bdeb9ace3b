# SPDX-License-Identifier: MIT
# One image for the five services and the choreo CLI (Debian bookworm, as locally):
# stage build runs `make all`, stage test runs `make check`, stage runtime is slim
# and runs as a non-root user. compose.yaml builds the runtime target.

# ---------------------------------------------------------------- build
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config librdkafka-dev libjansson-dev uuid-dev \
      libsqlite3-dev libmicrohttpd-dev libpq-dev check \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY events/ events/
COPY schemas/ schemas/
COPY services/ services/
COPY cli/ cli/
RUN make all

# ---------------------------------------------------------------- test
FROM build AS test
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      json-schema-test-suite \
 && rm -rf /var/lib/apt/lists/*
COPY tests/ tests/
RUN make check

# ---------------------------------------------------------------- runtime
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libjansson4 libuuid1 libsqlite3-0 libmicrohttpd12 libpq5 curl \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 choreo \
 && useradd --system --uid 10001 --gid choreo --home-dir /var/lib/choreo \
      --create-home --shell /usr/sbin/nologin choreo
COPY --from=build /src/build/bin/ /usr/local/bin/
COPY --from=build /src/schemas/ /usr/share/choreo/schemas/
ENV CHOREO_SCHEMA_DIR=/usr/share/choreo/schemas \
    CHOREO_DATA_DIR=/var/lib/choreo \
    CHOREO_HTTP_ADDR=0.0.0.0:8080
USER choreo
WORKDIR /var/lib/choreo
VOLUME ["/var/lib/choreo"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
CMD ["choreo", "--help"]
