#!/usr/bin/env bash
# install-postgres.sh - make the PostgreSQL server binaries (initdb,
# postgres) available for the tests.
#
# Idempotent: does nothing when initdb is on PATH or in Debian's
# /usr/lib/postgresql/<version>/bin. Otherwise installs Debian's postgresql
# package without letting it start a system cluster (the tests run initdb
# in a temporary directory and start their own server on a free loopback
# port), and stops one if the package started it anyway.
set -euo pipefail

find_initdb() {
    if command -v initdb >/dev/null 2>&1; then
        command -v initdb
        return 0
    fi
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1 || true)
    if [ -n "$found" ]; then
        echo "$found"
        return 0
    fi
    return 1
}

if initdb_path=$(find_initdb); then
    echo "install-postgres: $("$initdb_path" --version)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

bash "$(dirname "$0")/apt-install-quiet.sh" postgresql

# Should the package's cluster have started anyway, stop it.
if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters --no-header 2>/dev/null | while read -r ver name _; do
        $SUDO pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
    done
fi

initdb_path=$(find_initdb) || {
    echo "install-postgres: initdb still not found after installing postgresql" >&2
    exit 1
}
echo "install-postgres: $("$initdb_path" --version)"
