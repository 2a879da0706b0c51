# Sourced by scripts/test.sh and scripts/mutation.sh: make $venv (the project's .venv, with
# the dev extras) unless it was made from this very pyproject.toml.
venv="$here/.venv"
stamp="$venv/.installed-$(sha256sum "$here/pyproject.toml" | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -e "$here[dev]"
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
