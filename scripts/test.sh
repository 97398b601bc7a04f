#!/usr/bin/env bash
# The project's test command (README "Tests"): install the package with its test extras
# into the current Python, then run the Rust tests and the Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[train,test]"
cargo test -p sw2s-core --release
python -m pytest -q
