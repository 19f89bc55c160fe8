#!/usr/bin/env bash
# Install Debian's Chromium for the browser test of report.html (tests/test_report.py), when
# it is missing and this machine allows it: apt-get present and running as root. Otherwise
# do nothing and say why; the test then skips with its own reason. Never fails the caller.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo "install-chromium: already installed ($(command -v chromium || command -v chromium-browser))"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: no apt-get on this machine; the browser test will skip"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-chromium: not root, cannot apt-get install; the browser test will skip"
    exit 0
fi
echo "install-chromium: installing Debian's chromium (apt-get)"
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq chromium >/dev/null; then
    echo "install-chromium: $(chromium --version 2>/dev/null || echo "chromium installed")"
else
    echo "install-chromium: apt-get failed; the browser test will skip"
fi
exit 0
