#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs dependencies, builds, runs every
# test (unit, simulation, real-process integration) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 600 "$@"
