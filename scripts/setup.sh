#!/usr/bin/env bash
# Idempotent set-up shared by the README's two commands: Debian packages, then the project venv.
# Safe to run again and again: it only installs what is missing.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

# Build: compiler, CMake, static-capable deps. Lab: QEMU (TCG fallback), debootstrap, socat.
apt_packages=(
  g++ cmake ninja-build make file git
  libboost1.81-dev libboost-filesystem1.81-dev nlohmann-json3-dev libfmt-dev doctest-dev
  qemu-system-x86 qemu-utils debootstrap socat openssh-client dpkg-dev
  python3 python3-venv python-is-python3 shellcheck
)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Python tools (ansible-core from PyPI, not Debian's 2.14), pinned in requirements.txt.
venv="$top/.venv"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$top/requirements.txt" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: preparing $venv from requirements.txt"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$top/requirements.txt"
  echo "$want" > "$stamp"
fi
