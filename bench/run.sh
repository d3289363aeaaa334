#!/usr/bin/env bash
# The benchmarks in one command (options: bench/run.py --help). Needs the set-up of scripts/test.sh (venv, images, PKI).
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
exec python "$ROOT/bench/run.py" "$@"
