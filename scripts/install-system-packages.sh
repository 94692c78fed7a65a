#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Hotline needs: espeak-ng (prompt text-to-speech)
# and python3-venv where the system Python cannot make a virtualenv by itself.
# Skips quietly when they are already there; says what to do when it cannot install them.
set -euo pipefail
need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
[ -e /usr/lib/x86_64-linux-gnu/libespeak-ng.so.1 ] || ls /usr/lib/*/libespeak-ng.so.1 >/dev/null 2>&1 || need+=(libespeak-ng1)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "please install espeak-ng with your system's package manager (needed for prompt text-to-speech)" >&2
  exit 1
fi
