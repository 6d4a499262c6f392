#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed: the views page is tested in a
# real headless browser.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "chromium is missing: install the Debian package chromium (as root: apt-get install chromium)" >&2
  exit 1
fi
echo "installing chromium (Debian package) for the browser test" >&2
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
