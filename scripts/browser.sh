#!/usr/bin/env bash
# The browser tests (tests/browser/) drive Debian's chromium through Playwright; Playwright's own
# browser downloads are never used. Install chromium when it is missing. If that is impossible
# (no root, no apt-get), say so and go on: the browser tests then fail with the same advice.
set -u

CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "warning: $CHROMIUM is missing and cannot be installed here (needs root and apt-get);" >&2
  echo "         the browser tests will fail until 'apt-get install -y chromium' is run." >&2
  exit 0
fi

echo "chromium is missing; installing it with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q chromium >/dev/null; then
  apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null
fi

if [ ! -x "$CHROMIUM" ]; then
  echo "warning: installing chromium failed; the browser tests will fail until it is installed." >&2
fi
exit 0
