#!/usr/bin/env bash
# copy-tracked.sh DEST [PATHSPEC...]: the tracked (and new, not ignored) files into DEST, as a clean checkout has them
# (no venvs, caches or a sandbox's sockets); PATHSPECs such as ':!path' leave more out.
set -euo pipefail
dest=$1
shift
cd "$(dirname "$0")/.."
mkdir -p "$dest"
git ls-files -co --exclude-standard -z -- . "$@" | tar --null -T - -cf - | tar -xf - -C "$dest"
