#!/usr/bin/env bash
# README command 1: set up a fresh Debian 12 machine and run Bulwark's demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
exec node bin/bulwark.js demo "$@"
