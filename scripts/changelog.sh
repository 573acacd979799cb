#!/usr/bin/env bash
# make changelog [VERSION=x.y.z]: CHANGELOG.rst from changelogs/ (antsibull-changelog). With VERSION, first cut that
# release: the fragments move into changelogs/changelog.yaml. antsibull-changelog reads the plugins through ansible-doc
# from a copy of the collection; the copy holds the tracked files only (not the sandbox's sockets under .build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/.build/changelog"
copy="$work/ansible_collections/workload_identity/aks"
rm -rf "$work"
"$root/scripts/copy-tracked.sh" "$copy"
cd "$copy"
export PATH="$root/.venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$work:$root/.tools/collections"
if [ -n "${VERSION:-}" ]; then
  antsibull-changelog release --version "$VERSION"
  rm -f "$root"/changelogs/fragments/*.yml
else
  antsibull-changelog generate
fi
cp CHANGELOG.rst "$root/CHANGELOG.rst"
cp changelogs/changelog.yaml "$root/changelogs/changelog.yaml"
echo "==> CHANGELOG.rst ($(wc -l <"$root/CHANGELOG.rst") lines)"
