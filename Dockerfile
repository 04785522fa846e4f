# syntax=docker/dockerfile:1
# One image with both binaries:
#   docker build -t taquilla .
#   docker run ... taquilla api        (the default command)
#   docker run ... taquilla worker     (or: worker migrate)
# Both apply the embedded migrations at start-up. See docker-compose.yml for a full stack.

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

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin taquilla
COPY --from=builder /out/api /out/worker /usr/local/bin/
USER taquilla
ENV HOST=0.0.0.0 \
    PORT=8080
EXPOSE 8080
CMD ["api"]
