#!/usr/bin/env bash
# Install the Debian/Ubuntu packages vacancy needs, only if they are missing (idempotent, fast when done).
#   imagemagick + libmagickwand: triage and features call ImageMagick through Wand (the CLI is only
#   used by the tests, as an independent reference). ImageMagick 6 and 7 give the same results
#   (README "ImageMagick 6 and 7"); we install whichever MagickWand the system's archive offers:
#   Debian 12 and Ubuntu 24.04 ship 6 (libmagickwand-6.q16-6), Debian 13 ships 7 (libmagickwand-7.q16-10).
# With the argument "test", also what the tests need:
#   chromium: the viewer's tests drive Debian's headless Chromium (no browser downloads).
# With "realset" (and with "test"), also the packages whose images make up the real-image test set
#   (bench/realset.py: photos, screenshots, maps, clip art, plots, and the watermark font).
# With "bench", also fuse3: bench/read_ahead.py serves the demo's files through a slow FUSE mount.
set -euo pipefail

if ! command -v apt-get >/dev/null 2>&1; then
  # Not Debian or Ubuntu: we cannot install, but we can say what Wand needs and check it is there.
  if python3 -c "import ctypes.util, sys; sys.exit(not (ctypes.util.find_library('MagickWand-7.Q16HDRI') or ctypes.util.find_library('MagickWand-7.Q16') or ctypes.util.find_library('MagickWand-6.Q16') or ctypes.util.find_library('MagickWand')))"; then
    exit 0
  fi
  echo "No apt-get here: install ImageMagick 6 or 7 with its MagickWand library yourself" >&2
  echo "(Homebrew: brew install imagemagick; Fedora: dnf install ImageMagick-devel), then rerun." >&2
  exit 1
fi

# The newest MagickWand Q16 runtime the archive knows (7 before 6), not the HDRI or -dev builds.
magickwand() {
  local name
  for name in libmagickwand-7.q16-10 libmagickwand-7.q16-9 libmagickwand-6.q16-7 libmagickwand-6.q16-6; do
    if dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" ||
       apt-cache show "$name" >/dev/null 2>&1; then
      echo "$name"; return
    fi
  done
  return 1
}

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! wand_package=$(magickwand); then  # a fresh machine may have empty package lists
  $sudo apt-get update -qq
  wand_package=$(magickwand) || {
    echo "No libmagickwand-6 or -7 package in this system's archive: install ImageMagick with its" >&2
    echo "MagickWand library yourself, then rerun." >&2
    exit 1
  }
fi
packages=(imagemagick "$wand_package")
realset=(opencv-doc mate-backgrounds gimp-help-en marble-data openclipart-png gnuplot-doc fonts-dejavu-core)
case "${1:-}" in
  test) packages+=(chromium "${realset[@]}") ;;
  realset) packages+=("${realset[@]}") ;;
  bench) packages+=(fuse3) ;;
esac
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing system packages: ${missing[*]}"
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
