#!/usr/bin/env bash
# PostgreSQL's server binaries for the tests that run against a real server (tests/core/postgres_support.py):
# Debian's `postgresql` package, installed once when initdb is not on the machine.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "postgres-setup: apt-get install postgresql" >&2
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends postgresql >/dev/null
