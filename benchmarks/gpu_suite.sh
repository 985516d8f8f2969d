#!/usr/bin/env bash
# The one-GPU suite (benchmarks/gpu_suite.py); arguments pass through (see its --help).
# On a machine without CUDA it runs as a CPU smoke on tiny shapes (not GPU figures).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PYTHON" benchmarks/gpu_suite.py "$@"
