#!/usr/bin/env bash
# Builds the Function App package that `az functionapp deployment source config-zip` takes:
#   dist/kvrotator-functionapp.zip = host.json + the function folders + the linux/amd64 kvrotator binary
# (mode 0755 kept in the zip). README "Deploy" shows how to use it.
#
#   ./scripts/package.sh                 version from `git describe`, output in dist/
#   KVROTATOR_VERSION=1.2.3 ./scripts/package.sh
#   KVROTATOR_DIST=/tmp/out ./scripts/package.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

version="${KVROTATOR_VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
dist="${KVROTATOR_DIST:-dist}"
zip="$dist/kvrotator-functionapp.zip"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

echo "==> building kvrotator $version for linux/amd64"
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 \
  go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$stage/kvrotator" ./cmd/kvrotator

echo "==> writing $zip"
# Run the zip tool for the build machine, not for linux/amd64 (GOOS/GOARCH above apply to the build only).
go run ./scripts/zipapp -root . -binary "$stage/kvrotator" -o "$zip"

echo "==> $zip ($(wc -c <"$zip") bytes)"
