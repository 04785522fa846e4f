# syntax=docker/dockerfile:1
# One image with both binaries, compiled here in a Rust image (needs Docker Hub):
#   docker build -t taquilla:local .
#   docker run ... taquilla:local api        (the default command)
#   docker run ... taquilla:local worker     (or: worker migrate, worker ensure-storage)
# Both apply the embedded migrations at start-up. docker-compose.yml runs the whole stack.
# Without Docker Hub, deploy/docker/build-images.sh builds the same image from release
# binaries on a Debian base made with debootstrap (deploy/docker/app/Dockerfile; the runtime
# layer, deploy/docker/app/setup.sh, is shared).

ARG BASE=debian:bookworm-slim

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep downloaded crates and compiled dependencies between builds, so a
# source change rebuilds only the workspace crates. target/ is a cache mount, hence the copy.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release -p taquilla-api -p taquilla-worker \
 && mkdir -p /out \
 && cp target/release/api target/release/worker /out/

FROM ${BASE}
COPY deploy/docker/app/setup.sh /tmp/setup.sh
RUN sh /tmp/setup.sh && rm /tmp/setup.sh
COPY --from=builder /out/api /out/worker /usr/local/bin/
WORKDIR /var/lib/taquilla
USER 10001:10001
ENV HOST=0.0.0.0 \
    PORT=8080 \
    EXPORT_DIR=/var/lib/taquilla/exports \
    OUTBOX_DIR=/var/lib/taquilla/outbox \
    WORKER_HEALTH_FILE=/tmp/taquilla-worker.health
EXPOSE 8080
CMD ["api"]
