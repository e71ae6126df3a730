#!/usr/bin/env bash
# Run vacancy's image code under ImageMagick 7 on a Debian 12 machine, which only ships 6:
# build a Debian 13 (trixie) chroot with ImageMagick 7 and a Python venv, run the image tests
# there (each compares with ImageMagick 7's own CLI), then prepare the same images under both
# versions and diff every output. Needs root, debootstrap and deb.debian.org; about 5 minutes.
#   bash tools/check-imagemagick7.sh [/srv/trixie]
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-/srv/trixie}
if [ ! -e "$root/.vacancy-trixie" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
  debootstrap --variant=minbase \
    --include=python3,python3-venv,imagemagick,libmagickwand-7.q16-10,ca-certificates \
    trixie "$root" http://deb.debian.org/debian
  touch "$root/.vacancy-trixie"
fi
# The host's extra certificate authorities (a proxy's), so pip in the chroot reaches PyPI.
cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
chroot "$root" update-ca-certificates >/dev/null
cp /etc/resolv.conf "$root/etc/resolv.conf"
rm -rf "$root/opt/vacancy" && mkdir -p "$root/opt/vacancy"
git ls-files -z | xargs -0 cp --parents -t "$root/opt/vacancy"
pins=$(grep -oE '"(numpy|scipy|pillow|wand|imagehash|h5py|hdf5plugin|scikit-learn|threadpoolctl|pytest)==[^"]+"' pyproject.toml | tr -d '"' | tr '\n' ' ')
chroot "$root" bash -c "[ -x /opt/venv/bin/python ] || python3 -m venv /opt/venv; /opt/venv/bin/pip install -q $pins pyyaml"
echo "== image tests under $(chroot "$root" /opt/venv/bin/python -c 'from wand.version import MAGICK_VERSION as v; print(v)')"
chroot "$root" bash -c "cd /opt/vacancy && PYTHONPATH=workflow /opt/venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/test_triage.py tests/test_features.py tests/test_prepare.py tests/test_hashes.py"
echo "== the same images prepared under ImageMagick 6 (here) and 7 (chroot)"
rm -rf /tmp/im6-check "$root/tmp/im7-check"
.venv/bin/python tools/imagemagick_crosscheck.py /tmp/im6-check > /tmp/im6-check.txt
chroot "$root" bash -c "cd /opt/vacancy && PYTHONPATH=workflow /opt/venv/bin/python tools/imagemagick_crosscheck.py /tmp/im7-check" > /tmp/im7-check.txt
if diff <(sed 's#/tmp/im6-check#OUT#g' /tmp/im6-check.txt) <(sed 's#/tmp/im7-check#OUT#g' /tmp/im7-check.txt); then
  echo "identical: triage, hashes, rejects and features ($(grep -c , /tmp/im6-check.txt) lines)"
else
  echo "ImageMagick 6 and 7 differ (above)"; exit 1
fi
