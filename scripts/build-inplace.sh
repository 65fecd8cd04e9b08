#!/usr/bin/env bash
# Developer build: compiles the engine and the extension into build/dev and
# copies the extension next to the Python sources, so that
# `PYTHONPATH=python pytest` runs against the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/dev -DFW_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/dev -j2
cp build/dev/_native*.so python/floodwall/
