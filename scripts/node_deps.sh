#!/usr/bin/env bash
# The tests that run integrators' own Node code (the official socket.io-client, the receiver guide's Express
# receiver) need tests/support/js/node_modules: install it with npm when it is missing or older
# than package.json. Without node or npm, say so and go on: those tests then skip.
set -u
DIR="$(cd "$(dirname "$0")/.." && pwd)/tests/support/js"

if ! command -v npm >/dev/null 2>&1; then
  echo "warning: npm is missing; the tests with Node clients will be skipped." >&2
  exit 0
fi
STAMP="$DIR/node_modules/.installed-stamp"
if [ -f "$STAMP" ] && [ "$STAMP" -nt "$DIR/package.json" ]; then
  exit 0
fi
echo "installing the tests' Node packages (tests/support/js)" >&2
if (cd "$DIR" && npm install --no-audit --no-fund --loglevel=error >/dev/null); then
  touch "$STAMP"
else
  echo "warning: npm install in tests/support/js failed; the tests with Node clients will fail." >&2
fi
exit 0
