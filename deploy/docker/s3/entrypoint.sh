#!/bin/sh
# `weed server` with its S3 gateway on 127.0.0.1:$S3_PORT and every other port of the server
# pinned to the next seven ($S3_PORT+1 .. +7), like scripts/lib/services.sh: with host
# networking nothing may land on a random or default port. AWS semantics for buckets (no
# auto-create: `worker ensure-storage` creates the app's). Credentials: AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY, both required.
set -eu
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID is required}"
: "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY is required}"
p=$S3_PORT
mkdir -p /data/store /data/logs
exec weed -logdir=/data/logs server -dir=/data/store \
  -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -s3 -s3.port="$p" -s3.port.grpc=$((p + 1)) -s3.port.iceberg=0 -s3.port.lance=0 \
  -s3.autoCreateBucket=false -s3.allowDeleteBucketNotEmpty=false \
  -master.port=$((p + 2)) -master.port.grpc=$((p + 3)) -master.telemetry=false \
  -master.volumeSizeLimitMB=64 -volume.port=$((p + 4)) -volume.port.grpc=$((p + 5)) -volume.max=0 \
  -filer -filer.port=$((p + 6)) -filer.port.grpc=$((p + 7)) "$@"
