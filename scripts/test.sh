#!/usr/bin/env bash
# The README's test command: installs what it needs, builds, and runs every test. Ends with
# `N passed, N failed, N skipped` over all stages. Usage: scripts/test.sh [pytest args...]
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

"$top/scripts/setup.sh" || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
export PATH="$top/.venv/bin:$PATH"
results="$top/test-results"
rm -rf "$results"
mkdir -p "$results"
missing=()

# Each stage's wall time is printed when the next one starts (and listed again at the end).
stage_name="" stage_t0=$(date +%s) times=()
stage() {
  local now; now=$(date +%s)
  if [ -n "$stage_name" ]; then
    times+=("$(printf '%5d s  %s' $((now - stage_t0)) "$stage_name")")
    printf '\n(%d s: %s)\n' $((now - stage_t0)) "$stage_name"
  fi
  stage_name="$*" stage_t0=$now
  printf '\n==== %s\n' "$*"
}

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

# CI's profile (.ci/run: PBS_PATCH_TEST_PROFILE=ci), to fit CI's 60 minutes on 2 cores: every test that needs no
# VM, and of the lab tests those marked `ci` (the patch cycle, check mode, the real Semaphore, the Molecule subset
# CI_SCENARIOS) on the default guest only; the version stages without ansible-lint (it runs once, on the pinned
# ansible-core). Without it (the default, "full"): everything.
profile_args=()
if [ "${PBS_PATCH_TEST_PROFILE:-full}" = ci ]; then
  export PBS_PATCH_LAB_GUESTS="${PBS_PATCH_LAB_GUESTS:-debian13}" PBS_PATCH_MOLECULE_SCENARIOS="${PBS_PATCH_MOLECULE_SCENARIOS:-ci}"
  profile_args=(-m "not lab or ci")
  echo "(test profile ci: lab tests marked ci on ${PBS_PATCH_LAB_GUESTS}, Molecule ${PBS_PATCH_MOLECULE_SCENARIOS}; README, Tests)"
elif [ "${PBS_PATCH_TEST_PROFILE:-full}" != full ]; then
  echo "PBS_PATCH_TEST_PROFILE must be full or ci, not '${PBS_PATCH_TEST_PROFILE}'"; echo "0 passed, 1 failed"; exit 2
fi

# 3. Integration (real ansible-playbook), lint, the lab VM and the playbook on it.
stage "pytest: integration, lint, lab"
pytest -p no:cacheprovider --junitxml="$results/pytest.xml" "${profile_args[@]}" "$@"
rc=$?
if [ "$rc" -ne 0 ] && [ ! -s "$results/pytest.xml" ]; then missing+=("pytest"); fi

# 4. The collection's own tests on the other ansible-core releases it claims: the oldest meta/runtime.yml allows and
# the newest (each pinned in tests/requirements/ansible-core-*.txt; venvs cached by scripts/toolchain.py). The
# dependencies (galaxy.yml: community.general, from PyPI in the project venv) are put on the collections path.
# The installed collection on the lab ran with each of them in stage 3 (test_installed_collection_on_lab.py), on
# the VM that session owns: a stage here would boot it again.
version_tests=(tests/integration/test_toolchain.py tests/integration/test_lint.py tests/integration/test_module_docs.py
               tests/integration/test_gate_playbook.py)
if [ "${PBS_PATCH_TEST_PROFILE:-full}" = ci ]; then
  version_tests=(tests/integration/test_toolchain.py tests/integration/test_module_docs.py tests/integration/test_gate_playbook.py)
fi
deps=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
[ -d "$deps/ansible_collections" ] || deps=""
version_stages=(tests/requirements/ansible-core-*.txt)
if [ "$#" -gt 0 ]; then
  echo "(pytest arguments given: the ansible-core version stages are left out; run scripts/test.sh alone for them)"
  version_stages=()
fi
for pins in "${version_stages[@]}"; do
  release=$(basename "$pins" .txt)
  venv=$(python3 scripts/toolchain.py venv "$pins" 2>"$results/$release-venv.log")
  venv_rc=$?
  if [ "$venv_rc" -eq 3 ]; then
    reason=$(tail -1 "$results/$release-venv.log")
    stage "$release: SKIPPED ($reason)"
    python3 scripts/junit_summary.py --write-skipped "$results/pytest-$release.xml" "$release" "$reason"
    continue
  elif [ "$venv_rc" -ne 0 ]; then
    stage "$release: the venv could not be made"; tail -20 "$results/$release-venv.log"; missing+=("$release"); continue
  fi
  ran=$(python3 scripts/toolchain.py describe "$venv")
  stage "pytest with $ran (the collection's own tests: ${version_tests[*]##*/})"
  PBS_PATCH_ANSIBLE_BIN="$venv/bin" PBS_PATCH_ANSIBLE_EXPECT="${release#ansible-core-}" \
    ANSIBLE_COLLECTIONS_PATH="$top/build/collections${deps:+:$deps}" \
    pytest -p no:cacheprovider --junitxml="$results/pytest-$release.xml" \
      -o junit_suite_name="$release" "${version_tests[@]}"
  [ -s "$results/pytest-$release.xml" ] || missing+=("$release")
done

# A lab test failed: what the lab looked like then (tests/conftest.py writes it at the first such failure).
if [ -s "$results/lab-diagnostics.txt" ]; then
  stage "lab diagnostics at the first failing lab test (whole file: test-results/lab-diagnostics.txt)"
  head -c 12000 "$results/lab-diagnostics.txt"
fi

stage "summary"
printf '%s\n' "${times[@]}"
reports=()
for f in "$results"/*.xml; do [ -e "$f" ] && reports+=("$f"); done
missing_args=()
for m in "${missing[@]}"; do missing_args+=(--missing "$m"); done
python3 "$top/scripts/junit_summary.py" "${reports[@]}" "${missing_args[@]}"
