#!/usr/bin/env bash
# Installs the collection cfolino.pbs from this checkout, from any directory: builds the static module binaries
# (CMake release preset), builds the collection tarball (build/dist/cfolino-pbs-<version>.tar.gz) and installs it
# with ansible-galaxy into ~/.ansible/collections, where ansible-playbook finds it from any directory
# (ansible-playbook -i inventory cfolino.pbs.patch_pbs).
#   scripts/install-collection.sh [-p COLLECTIONS_DIR] [ansible-galaxy install options...]
# The install path is always given explicitly (-p), so a checkout's ansible.cfg (whose first collections path is the
# checkout itself) never decides where it goes. Dependencies in galaxy.yml (community.general) come from Galaxy, or
# are found already installed (for example with the `ansible` package from PyPI); without Galaxy access and without
# them installed, install them first. Options after -p go to `ansible-galaxy collection install` (e.g. --no-deps).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dest="$HOME/.ansible/collections"
if [ "${1:-}" = "-p" ]; then
  dest=${2:?usage: install-collection.sh [-p COLLECTIONS_DIR] [ansible-galaxy options...]}
  shift 2
fi
galaxy=$(command -v ansible-galaxy || true)
[ -n "$galaxy" ] || galaxy="$top/.venv/bin/ansible-galaxy"
[ -x "$galaxy" ] || { echo "install-collection.sh: no ansible-galaxy on PATH (install ansible-core)" >&2; exit 1; }

cd "$top"
cmake --preset release >/dev/null
cmake --build --preset release
"$galaxy" collection build --force --output-path build/dist .
version=$(sed -n 's/^version: *//p' galaxy.yml)
"$galaxy" collection install --force -p "$dest" "$@" "build/dist/cfolino-pbs-$version.tar.gz"
echo "cfolino.pbs $version installed in $dest"
