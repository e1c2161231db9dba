#!/usr/bin/env bash
# Builds the Function App package that `az functionapp deployment source config-zip` takes:
#   dist/kvrotator-functionapp.zip = host.json + the function folders + the linux/amd64 kvrotator binary
# (mode 0755 kept in the zip). README "Deploy" shows how to use it.
#
#   ./scripts/package.sh                 version from `git describe`, output in dist/
#   KVROTATOR_VERSION=1.2.3 ./scripts/package.sh
#   KVROTATOR_DIST=/tmp/out ./scripts/package.sh
#   KVROTATOR_PROVIDERS="random postgres" ./scripts/package.sh   # link only these providers (smaller, faster start)
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

# KVROTATOR_PROVIDERS: the providers to link, by the names secrets use in rotation-provider (aws-iam,
# entra-app-certificate, …) or by their build-tag names (awsiam, entraappcert, …); every other provider
# gets its kvrotator_no_<name> tag. Each cmd/kvrotator/provider_<name>.go links one provider.
tags="lean ${KVROTATOR_BUILD_TAGS:-}"
if [ -n "${KVROTATOR_PROVIDERS:-}" ]; then
  known=""
  for f in cmd/kvrotator/provider_*.go; do
    t="${f#cmd/kvrotator/provider_}"; known="$known ${t%.go}"
  done
  want=" "
  for p in ${KVROTATOR_PROVIDERS//,/ }; do
    t="$(echo "$p" | tr 'A-Z' 'a-z' | tr -d '-')"
    [ "$t" = "entraappcertificate" ] && t="entraappcert"
    case " $known " in
      *" $t "*) want="$want$t " ;;
      *) echo "package.sh: KVROTATOR_PROVIDERS names an unknown provider \"$p\" (known:$known)" >&2; exit 2 ;;
    esac
  done
  for t in $known; do
    case "$want" in *" $t "*) ;; *) tags="$tags kvrotator_no_$t" ;; esac
  done
  echo "==> providers:$want"
fi

echo "==> building kvrotator $version for linux/amd64"
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 \
  go build -trimpath -tags "$tags" -ldflags "-s -w -X main.version=$version" -o "$stage/kvrotator" ./cmd/kvrotator

echo "==> writing $zip"
# Run the zip tool for the build machine, not for linux/amd64 (GOOS/GOARCH above apply to the build only).
go run ./scripts/zipapp -root . -binary "$stage/kvrotator" -o "$zip"

echo "==> $zip ($(wc -c <"$zip") bytes)"
