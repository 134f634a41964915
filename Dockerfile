# syntax=docker/dockerfile:1.7
#
# BetterWorld backend image: one binary, `betterworld`, whose subcommand picks the role
# (serve | relay | project | guardrail | migrate | ...). Build with BuildKit (the default for
# `docker build` and `docker compose build`):
#
#   docker build -t betterworld:local .
#   docker run --rm betterworld:local --help

############################
# Builder
############################
FROM rust:1.95-bookworm AS builder

WORKDIR /src

# The whole workspace is needed at build time: every crate, the lock file, and the sqlx
# migrations and JetStream definitions, which are embedded in the binary.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY domain ./domain
COPY commands ./commands
COPY projections ./projections
COPY gateway ./gateway
COPY infra ./infra
COPY guardrail ./guardrail
COPY processes ./processes
COPY migrations ./migrations
COPY nats ./nats

# Cache mounts keep the crates.io registry, git checkouts and the target dir between builds.
# The target dir is a cache mount, so the binary is copied out in the same step.
RUN --mount=type=cache,id=betterworld-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=betterworld-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=betterworld-target,target=/src/target,sharing=locked \
    cargo build --release --locked --bin betterworld \
 && install -D -m 0755 target/release/betterworld /out/betterworld

############################
# Runtime
############################
FROM debian:bookworm-slim AS runtime

# ca-certificates is deliberately unpinned: it must follow Debian's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 betterworld \
 && useradd --system --uid 10001 --gid betterworld --home-dir /var/lib/betterworld \
      --create-home --shell /usr/sbin/nologin betterworld

COPY --from=builder /out/betterworld /usr/local/bin/betterworld

# In a container the listeners must bind all interfaces; compose/Kubernetes may override.
ENV BW_HTTP_ADDR=0.0.0.0:8080 \
    BW_OPS_ADDR=0.0.0.0:9090

# The betterworld user, by number so that runAsNonRoot-style checks can verify it.
USER 10001:10001
WORKDIR /var/lib/betterworld

# 8080: gateway HTTP API (+ /healthz /readyz /metrics); 9090: ops listener of relay/project.
EXPOSE 8080 9090

# No HEALTHCHECK: the image has no HTTP client and `betterworld` has no probe subcommand;
# orchestrators probe /healthz and /readyz over HTTP instead.

ENTRYPOINT ["betterworld"]
CMD ["serve"]
