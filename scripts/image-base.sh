#!/usr/bin/env bash
# Builds a local stand-in for the official node:24-bookworm-slim image, for machines that can't
# pull from Docker Hub: a minimal Debian bookworm (mmdebstrap from Debian's mirror, as the
# official image starts from debian:bookworm-slim) plus the project's own Node 24 binary
# (node_modules/node/bin/node) and npm, and the `node` user (uid 1000) the official image has.
# It also trusts the certificate authorities this machine adds (/usr/local/share/ca-certificates),
# as a proxy between here and the npm registry may sign with one of its own; the official image
# doesn't, and needs none of this.
#
#   scripts/image-base.sh [tag]      (default localhost/node-standin:24-bookworm-slim)
#
# Then: podman build --build-arg NODE_IMAGE=<tag> ...  Needs root (mmdebstrap, chroot).
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-localhost/node-standin:24-bookworm-slim}"

node_bin="node_modules/node/bin/node"
[ -x "$node_bin" ] || { echo "no $node_bin: run npm ci first" >&2; exit 1; }
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
[ -f "$npm_dir/package.json" ] || { echo "npm not found next to $(command -v npm)" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "mmdebstrap missing (apt-get install -y mmdebstrap)" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/node-standin-XXXXXX")"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

echo "building $tag: Debian bookworm (minbase) + node $("$node_bin" --version) + npm $(node "$npm_dir/bin/npm-cli.js" --version 2>/dev/null || echo '?')"
mmdebstrap --quiet --variant=minbase --include=ca-certificates \
  --customize-hook='chroot "$1" sh -c "groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node"' \
  --customize-hook='if [ -n "$(ls /usr/local/share/ca-certificates 2>/dev/null)" ]; then cp -r /usr/local/share/ca-certificates/. "$1"/usr/local/share/ca-certificates/ && chroot "$1" update-ca-certificates >/dev/null; fi' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  bookworm "$rootfs" http://deb.debian.org/debian

# Node and npm where the official image has them.
install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/lib/node_modules"
cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"

tar -C "$rootfs" -c . | podman import --quiet \
  --change 'ENV NODE_VERSION='"$("$node_bin" --version | tr -d v)" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["node"]' \
  - "$tag" >/dev/null
echo "built $tag ($(podman image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
