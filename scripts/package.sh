#!/usr/bin/env bash
# Builds the Function App package that `az functionapp deployment source config-zip` takes:
#   dist/kvrotator-functionapp.zip = host.json + the function folders + the linux/amd64 kvrotator binary
# (mode 0755 kept in the zip). README "Deploy" shows how to use it.
#
#   ./scripts/package.sh                 version from `git describe`, output in dist/
#   KVROTATOR_VERSION=1.2.3 ./scripts/package.sh
#   KVROTATOR_DIST=/tmp/out ./scripts/package.sh
#   KVROTATOR_BUILD_TAGS="kvrotator_no_postgres kvrotator_no_sendgrid" ./scripts/package.sh   # leave providers out
#
# The binary is the lean build (-tags lean): the handler and the operator commands, without the Key
# Vault emulator, the demo and the test host simulator.
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
  go build -trimpath -tags "lean ${KVROTATOR_BUILD_TAGS:-}" -ldflags "-s -w -X main.version=$version" -o "$stage/kvrotator" ./cmd/kvrotator

echo "==> writing $zip"
# Run the zip tool for the build machine, not for linux/amd64 (GOOS/GOARCH above apply to the build only).
go run ./scripts/zipapp -root . -binary "$stage/kvrotator" -o "$zip"

echo "==> $zip ($(wc -c <"$zip") bytes)"
