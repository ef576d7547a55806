#!/usr/bin/env bash
# Installs what test/e2e/python.test.ts needs (Debian/Ubuntu): Debian's python3 with grpcio,
# protobuf and grpc-tools (for its bundled protoc). Idempotent: does nothing when all are there.
# CI runs it as root; elsewhere it uses sudo when available.
set -euo pipefail

packages=(python3 python3-grpcio python3-protobuf python3-grpc-tools)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: ${packages[*]} already installed"
else
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The same probe the test uses (Debian's python3, not a pyenv one on PATH).
/usr/bin/python3 "$(dirname "$0")/registry_check.py" --check-deps
