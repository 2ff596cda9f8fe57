#!/usr/bin/env bash
# Debian packages the system and its tests need. Installs only what is missing (as root).
set -euo pipefail
needed=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || needed+=(postgresql)
command -v runuser >/dev/null || needed+=(util-linux)
# Backup and point-in-time recovery of the database (ccl backup, docs/operations.md).
command -v pgbackrest >/dev/null || needed+=(pgbackrest)
# The web UI's browser test (tests/test_ui_browser.py): Debian's Chromium and its driver,
# and a Korean font so that the screenshots show the labels.
[ -x /usr/bin/chromium ] || needed+=(chromium)
[ -x /usr/bin/chromedriver ] || needed+=(chromium-driver)
# The Korean font is also embedded in the coil report's PDF ([report] font).
[ -d /usr/share/fonts/truetype/nanum ] || needed+=(fonts-nanum)
# The coil report's tests read the PDFs back (pdfinfo, pdftotext, pdffonts, pdfimages, pdftoppm).
command -v pdftotext >/dev/null || needed+=(poppler-utils)
[ ${#needed[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-packages: please install: ${needed[*]}" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${needed[@]}" >/dev/null
