#!/usr/bin/env bash
# README command 2: lint, type-check and run every test, integration tests
# against a real Docker engine included. Installs and starts what it needs.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -x).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

"$here/scripts/engine.sh"

venv="$here/.venv"
stamp="$venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -e ".[dev]"
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi

echo "== ruff"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
echo "== mypy --strict"
"$venv/bin/mypy"
echo "== pytest"
"$venv/bin/pytest" "$@"
