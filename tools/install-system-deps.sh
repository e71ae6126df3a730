#!/usr/bin/env bash
# Install the Debian packages vacancy needs, only if they are missing (idempotent, fast when done).
#   imagemagick + libmagickwand: triage and features call ImageMagick through Wand
#   (the CLI is only used by the tests, as an independent reference).
# With the argument "test", also what the tests need:
#   chromium: the viewer's tests drive Debian's headless Chromium (no browser downloads).
set -euo pipefail
packages=(imagemagick libmagickwand-6.q16-6)
if [ "${1:-}" = "test" ]; then
  packages+=(chromium)
fi
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
