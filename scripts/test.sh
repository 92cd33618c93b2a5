#!/usr/bin/env bash
# The README's test command: installs what it needs, builds, and runs every test. Ends with
# `N passed, N failed, N skipped` over all stages. Usage: scripts/test.sh [pytest args...]
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/setup.sh" || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
export PATH="$top/.venv/bin:$PATH"
results="$top/test-results"
rm -rf "$results"
mkdir -p "$results"
missing=()

stage() { printf '\n==== %s\n' "$*"; }

# 1. Release build (static, stripped, warnings as errors) into plugins/modules, and its unit tests.
stage "build (ci preset: static, -Werror) and unit tests"
if cmake --preset ci >"$results/cmake-ci.log" 2>&1 && cmake --build --preset ci; then
  file plugins/modules/* | grep -v '\.yml:' | sed 's/^/  /'
  ctest --preset ci --output-junit "$results/ctest-ci.xml" | tail -3
else
  tail -20 "$results/cmake-ci.log"; missing+=("build-ci")
fi

# 2. The same unit tests under AddressSanitizer + UndefinedBehaviorSanitizer.
stage "unit tests under ASan + UBSan"
if cmake --preset asan >"$results/cmake-asan.log" 2>&1 && cmake --build --preset asan; then
  ctest --preset asan --output-junit "$results/ctest-asan.xml" | tail -3
else
  tail -20 "$results/cmake-asan.log"; missing+=("build-asan")
fi

# 3. Integration (real ansible-playbook), lint, the lab VM and the playbook on it.
stage "pytest: integration, lint, lab"
pytest -p no:cacheprovider --junitxml="$results/pytest.xml" "$@"
rc=$?
if [ "$rc" -ne 0 ] && [ ! -s "$results/pytest.xml" ]; then missing+=("pytest"); fi

stage "summary"
reports=()
for f in "$results"/*.xml; do [ -e "$f" ] && reports+=("$f"); done
missing_args=()
for m in "${missing[@]}"; do missing_args+=(--missing "$m"); done
python3 "$top/scripts/junit_summary.py" "${reports[@]}" "${missing_args[@]}"
