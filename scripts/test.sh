#!/usr/bin/env bash
# Install everything the test suite needs (Python test dependencies and, where apt-get is
# available, Debian's Chromium for the browser tests), lint with ruff, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python -m pip install -q -r requirements-dev.txt -c constraints.txt
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: could not install chromium; browser tests will be skipped"
fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
