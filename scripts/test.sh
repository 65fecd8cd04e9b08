#!/usr/bin/env bash
# Installs what the tests need and runs every test:
#   1. system packages (redis-server, postgresql) when missing,
#   2. a virtualenv in build/test-venv with floodwall and its test extras,
#   3. the C tests, plain and under AddressSanitizer + UndefinedBehaviorSanitizer,
#   4. pytest over tests/python (real servers started by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ -x .ci/install-redis.sh ] || [ -f .ci/install-redis.sh ]; then
  bash .ci/install-redis.sh
fi
if [ -f .ci/install-postgres.sh ]; then
  bash .ci/install-postgres.sh
fi

venv="$root/build/test-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q ".[test]"

echo "== C tests"
cmake -S . -B build/ctest -DFW_BUILD_TESTS=ON -DFW_BUILD_PYTHON=OFF >/dev/null
cmake --build build/ctest -j2 >/dev/null
ctest --test-dir build/ctest --output-on-failure

echo "== C tests under ASan + UBSan"
cmake -S . -B build/ctest-asan -DFW_BUILD_TESTS=ON -DFW_BUILD_PYTHON=OFF \
  -DFW_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/ctest-asan -j2 >/dev/null
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/ctest-asan --output-on-failure

echo "== Python tests"
# run from a directory where ./python is not importable: the installed wheel is tested
cd "$root/tests"
"$venv/bin/python" -m pytest -c "$root/pyproject.toml" --rootdir "$root" "$root/tests/python" "$@"
