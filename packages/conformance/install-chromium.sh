#!/bin/sh
# Installs Debian's chromium for the conformance suite's browser runs, once.
# Idempotent: does nothing when a chromium is already on PATH. Never downloads
# a browser build (no `playwright install`): only the distribution's package.
set -eu
if command -v chromium >/dev/null 2>&1; then
  echo "chromium already installed: $(command -v chromium)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium
command -v chromium
