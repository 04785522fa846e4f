#!/bin/sh
# The app image's runtime layer, run by both app Dockerfiles (/Dockerfile, which compiles the
# binaries in a Rust image, and deploy/docker/app/Dockerfile, which takes release binaries
# built on the host), so both images are the same apart from where the binaries come from.
set -eu
apt-get update
# curl: the compose healthcheck of the api (Kubernetes probes it over HTTP itself).
apt-get install -y --no-install-recommends ca-certificates curl
rm -rf /var/lib/apt/lists/*
useradd --system --uid 10001 --user-group --home-dir /var/lib/taquilla --no-create-home \
  --shell /usr/sbin/nologin taquilla
# The working directory and the default export and outbox directories belong to the app's
# user: relative paths resolve here, not under / (which uid 10001 cannot write). A volume
# mounted on exports/ starts with this owner.
install -d -o taquilla -g taquilla -m 0750 /var/lib/taquilla /var/lib/taquilla/exports \
  /var/lib/taquilla/outbox
