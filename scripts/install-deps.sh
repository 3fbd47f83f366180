#!/usr/bin/env bash
# Installs what the test suite needs and the machine lacks. Go itself must
# be present; the Go modules come through the module proxy on first build.
set -euo pipefail

need=()
# (Debian packages the integration tests need are added here as features
# that need them land; the foundation needs only Go.)
for pkg in "$@"; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
	$SUDO apt-get update
	$SUDO apt-get install -y "${need[@]}"
fi
command -v go >/dev/null || { echo "Go 1.26 or newer is required (https://go.dev/dl/)" >&2; exit 1; }
go mod download
