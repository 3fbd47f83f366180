#!/usr/bin/env bash
# Installs what the test suite needs and the machine lacks. Go itself must
# be present; the Go modules come through the module proxy on first build.
# Extra Debian packages may be named as arguments.
set -euo pipefail

# Debian packages the tests need:
#   postgresql  server binaries (initdb, postgres) that the PostgreSQL
#               catalog test runs as a private server in a temporary
#               directory; the package also creates the postgres user the
#               server runs as when the tests run as root.
#   mariadb-server  mariadbd and mariadb-install-db, which the CDC tests run
#               as a private server with a row-based binary log.
#   clickhouse-server  the server the audit tests run privately (Debian's
#               18.16: native protocol).
required=(postgresql mariadb-server clickhouse-server)

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

if command -v dpkg-query >/dev/null && command -v apt-get >/dev/null; then
	need=()
	for pkg in "${required[@]}" "$@"; do
		installed "$pkg" || need+=("$pkg")
	done
	if [ ${#need[@]} -gt 0 ]; then
		if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
		$SUDO apt-get update
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"
	fi
else
	echo "not a Debian system: install these (or their equivalents) yourself: ${required[*]} $*" >&2
fi
command -v go >/dev/null || { echo "Go 1.26 or newer is required (https://go.dev/dl/)" >&2; exit 1; }
go mod download
