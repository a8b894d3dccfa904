#!/usr/bin/env bash
# Install Debian's chromium for the browser tests when possible (Playwright's own browser
# download does not work offline). Never fails the caller: browser tests skip without it.
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests..."
  (timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq chromium >/dev/null) \
    && echo "chromium installed" || echo "could not install chromium: browser tests will be skipped"
else
  echo "chromium not found and cannot be installed here: browser tests will be skipped"
fi
exit 0
