#!/usr/bin/env bash
# Mutation testing (docs/testing.md): mutmut changes the modules listed in pyproject's
# [tool.mutmut] one small edit at a time and runs the unit tests that reach the changed
# function (tests/unit only: tests/integration needs a Docker engine). A mutant no test
# notices is a behaviour no unit test pins, or an equivalent change.
#
#   scripts/mutation.sh                        every module
#   scripts/mutation.sh scheduler/runner.py    these modules only (paths or dotted names)
#
# Resumable: verdicts stay in mutants/ (git-ignored) and a second run tests only the
# mutants without one (mutmut re-makes those of functions changed since). A named module
# whose source changed after its mutants were made is tested whole. `rm -rf mutants`
# starts afresh. Read the survivors with `.venv/bin/mutmut results` and
# `.venv/bin/mutmut show NAME`. Runs niced, with MUTATION_CHILDREN (default 2) workers.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

# shellcheck source=scripts/venv.sh
. "$here/scripts/venv.sh"

children=${MUTATION_CHILDREN:-2}
mutmut=(nice -n 19 "$venv/bin/mutmut")

# The module paths to report on: the named ones, or every one pyproject lists.
modules=$("$venv/bin/python" - "$@" <<'EOF'
import sys
import tomllib
from pathlib import Path

listed = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"]
named = []
for arg in sys.argv[1:]:
    path = arg if arg.endswith(".py") else arg.replace(".", "/") + ".py"
    path = path.removeprefix("./")
    if path not in listed:
        sys.exit(f"mutation.sh: {arg} is not one of pyproject's [tool.mutmut] only_mutate: {listed}")
    named.append(path)
print("\n".join(named or listed))
EOF
)

if [ $# -eq 0 ]; then
  "${mutmut[@]}" run --max-children "$children"
else
  # Only the mutants of these modules without a verdict (mutmut re-tests every mutant it
  # is given by name, so the names given are the ones still to do).
  mapfile -t todo < <("$venv/bin/python" - $modules <<'EOF'
import json
import os
import sys
from pathlib import Path

for path in sys.argv[1:]:
    meta, copy = Path("mutants", path + ".meta"), Path("mutants", path)
    if not meta.exists() or os.path.getmtime(path) >= os.path.getmtime(copy):
        print(path.removesuffix(".py").replace("/", ".") + ".*")  # new or changed: all of it
        continue
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    print("\n".join(name for name, code in codes.items() if code is None))
EOF
  )
  names=()
  for name in "${todo[@]}"; do [ -n "$name" ] && names+=("$name"); done
  if [ ${#names[@]} -eq 0 ]; then
    echo "== every mutant of these modules has a verdict (rm their mutants/*.meta to redo them)"
  else
    "${mutmut[@]}" run --max-children "$children" "${names[@]}"
  fi
fi

echo
echo "== mutants per module (score = killed / mutants; docs/testing.md discounts equivalents)"
"$venv/bin/python" - $modules <<'EOF'
import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

columns = ["killed", "survived", "timeout", "no tests", "other"]
print(f"{'module':28} {'mutants':>7} " + " ".join(f"{c:>8}" for c in columns) + "   score")
totals: Counter[str] = Counter()
for path in sys.argv[1:]:
    meta = Path("mutants", path + ".meta")
    codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
    counts = Counter(status_by_exit_code[code] for code in codes.values())
    row = {c: counts.pop(c, 0) for c in columns[:-1]}
    row["other"] = sum(counts.values())  # not checked, suspicious, segfault, ...
    totals.update({"mutants": len(codes), **row})
    score = f"{100 * row['killed'] / len(codes):6.1f}%" if codes else "     -"
    print(f"{path:28} {len(codes):7} " + " ".join(f"{row[c]:8}" for c in columns) + f"  {score}")
    if counts:
        print(f"{'':28} other: {dict(counts)}")
if len(sys.argv) > 2:
    n = totals["mutants"]
    score = f"{100 * totals['killed'] / n:6.1f}%" if n else "     -"
    print(f"{'total':28} {n:7} " + " ".join(f"{totals[c]:8}" for c in columns) + f"  {score}")
EOF
