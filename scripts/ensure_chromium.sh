#!/usr/bin/env bash
# Install Debian's chromium (the headless browser of tests/test_error_report.py) when it is missing. Idempotent:
# does nothing when /usr/bin/chromium exists. Needs root (or sudo) and the Debian package archive.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "ensure_chromium: /usr/bin/chromium is missing and this user cannot install it (not root, no sudo)" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: /usr/bin/chromium is missing and apt-get is not available" >&2
    exit 1
fi
echo "ensure_chromium: installing chromium (apt-get)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
test -x /usr/bin/chromium
