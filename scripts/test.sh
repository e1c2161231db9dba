#!/usr/bin/env bash
# The one test command (README "Quick start"; .ci/run runs exactly this).
# On a fresh Debian machine it installs what the tests need, then runs gofmt, go vet, staticcheck and
# every test under the race detector. Safe to run twice: installs are skipped when already present.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

log() { printf '==> %s\n' "$*"; }

# Debian packages (only what is missing; apt-get needs root, which CI has).
need_pkgs=()
command -v gcc >/dev/null 2>&1 || need_pkgs+=(gcc libc6-dev) # the race detector needs cgo
command -v git >/dev/null 2>&1 || need_pkgs+=(git)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

command -v go >/dev/null 2>&1 || { echo "Go is required (expected at /usr/local/go)" >&2; exit 1; }
log "$(go version)"

log "downloading Go modules"
go mod download
go mod verify >/dev/null

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2; echo "$unformatted" >&2; exit 1
fi

log "go vet"
go vet ./...

log "staticcheck (pinned in go.mod as a tool)"
go tool staticcheck ./...

# Azurite (blob leases, DESIGN.md "Real parts in tests"): installed into the git-ignored .tools/azurite,
# never started here. Tests start their own azurite-blob (free port, temporary workspace) through
# internal/azuritetest, so this command is safe to run twice and tests may run in parallel.
AZURITE_VERSION=3.35.0
AZURITE_DIR="$PWD/.tools/azurite"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "installing Debian packages: nodejs npm"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
installed=$(node -p "try { require('$AZURITE_DIR/node_modules/azurite/package.json').version } catch (e) { '' }" 2>/dev/null || true)
if [ "$installed" != "$AZURITE_VERSION" ] || [ ! -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ]; then
  log "installing azurite@$AZURITE_VERSION into .tools/azurite (node $(node --version))"
  mkdir -p "$AZURITE_DIR"
  npm install --prefix "$AZURITE_DIR" --no-audit --no-fund --save-exact --loglevel=error "azurite@$AZURITE_VERSION" >/dev/null
else
  log "azurite@$AZURITE_VERSION already installed in .tools/azurite"
fi
export KVROTATOR_AZURITE_BLOB="$AZURITE_DIR/node_modules/.bin/azurite-blob"
export KVROTATOR_REQUIRE_AZURITE=1

# install_server_pkg PACKAGE: installs a Debian server package without starting its service (a temporary
# policy-rc.d, left alone if the machine already has one): the tests start their own throwaway servers.
install_server_pkg() {
  local pkg=$1 policy=/usr/sbin/policy-rc.d status=0
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing Debian package: $pkg (its service is not started)"
  if [ -e "$policy" ]; then
    policy=""
  else
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
  fi
  { $SUDO apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null; } || status=$?
  [ -z "$policy" ] || $SUDO rm -f "$policy"
  [ "$status" -eq 0 ] || { echo "installing $pkg failed" >&2; exit "$status"; }
}

# PostgreSQL (providers/postgres, DESIGN.md "Real parts in tests"): only the server binaries are needed.
# Tests start their own throwaway clusters through internal/pgtest (initdb + postgres on a free loopback
# port, as the postgres OS user when run as root), so the package's own service is kept from starting
# during the install by a temporary policy-rc.d (left alone if the machine already has one).
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  install_server_pkg postgresql
fi
export KVROTATOR_REQUIRE_POSTGRES=1

# MariaDB (providers/mysql): internal/mysqltest runs mariadb-install-db and mariadbd on a free loopback
# port, TLS only, with a test CA.
if [ ! -x /usr/sbin/mariadbd ] || [ ! -x /usr/bin/mariadb-install-db ]; then
  install_server_pkg mariadb-server
fi
export KVROTATOR_REQUIRE_MARIADB=1

# Redis (providers/redis): internal/redistest runs redis-server with its own redis.conf on a free loopback
# port (TLS with a test CA).
if [ ! -x /usr/bin/redis-server ]; then
  install_server_pkg redis-server
fi
export KVROTATOR_REDIS_SERVER=/usr/bin/redis-server
export KVROTATOR_REQUIRE_REDIS=1

# Chromium (the status page test, cmd/kvrotator/statuspage_test.go): Debian's package, run headless by
# the test itself with a fresh profile and no network but loopback.
if [ ! -x /usr/bin/chromium ]; then
  log "installing Debian package: chromium"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
export KVROTATOR_CHROMIUM=/usr/bin/chromium
export KVROTATOR_REQUIRE_CHROMIUM=1

log "go test -race"
go test -race -count=1 -timeout 30m ./...

log "all tests passed"
