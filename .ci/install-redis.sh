#!/usr/bin/env bash
# install-redis.sh - make redis-server and redis-cli available for the tests.
#
# Idempotent: does nothing when redis-server is already on PATH. Otherwise
# installs Debian's redis-server package without letting it start a system
# server (the tests start their own on free loopback ports, with
# --save '' --appendonly no), and stops one if the package started it anyway.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    echo "install-redis: $(redis-server --version | head -n1)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

bash "$(dirname "$0")/apt-install-quiet.sh" redis-server redis-tools

# Should a service have started anyway, stop it: it would hold port 6379.
if [ -f /run/redis/redis-server.pid ]; then
    $SUDO service redis-server stop >/dev/null 2>&1 || \
        $SUDO kill "$(cat /run/redis/redis-server.pid)" 2>/dev/null || true
fi

echo "install-redis: $(redis-server --version | head -n1)"
