#!/usr/bin/env bash
# make importer: the built tarball through galaxy-importer (what Galaxy and Automation Hub run on upload), with its
# ansible-lint pass (production profile). galaxy-importer gets a venv of its own: it pins packages the test tools
# need newer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.build/importer-venv"
pin="galaxy-importer==0.4.44"
if [ ! -f "$venv/.pin" ] || [ "$(cat "$venv/.pin")" != "$pin" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$pin" >"$root/.build/importer-install.log" 2>&1 || { tail -30 "$root/.build/importer-install.log"; exit 1; }
  echo "$pin" >"$venv/.pin"
fi
# Built from the tracked files only, as a release job builds it from a clean checkout (a working tree has caches).
out="$root/.build/tarball"
source="$out/source"
rm -rf "$out"
"$root/scripts/copy-tracked.sh" "$source"
"$root/.venv/bin/ansible-galaxy" collection build --output-path "$out" "$source" >/dev/null
tarball=$(ls "$out"/workload_identity-aks-*.tar.gz)
config="$root/.build/importer.cfg"
printf '[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nRUN_ANSIBLE_LINT = True\nCHECK_CHANGELOG = True\n' >"$config"
log="$root/.build/importer.log"
# Run from the build folder: galaxy-importer writes importer_result.json where it runs.
(cd "$out" && PATH="$venv/bin:$PATH" GALAXY_IMPORTER_CONFIG="$config" HOME="$root/.build/home" \
  "$venv/bin/python" -m galaxy_importer.main "$tarball") >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
grep -q "Importer processing completed successfully" "$log" || { tail -40 "$log"; exit 1; }
# kubernetes.core is this collection's dependency (galaxy.yml): Galaxy's importer installs it before linting, these
# machines cannot reach Galaxy, so ansible-lint cannot resolve its two modules here. Every other warning fails.
warnings=$(grep -E '^WARNING' "$log" | grep -vE "syntax-check\[unknown-module\]: couldn't resolve module/action 'kubernetes\.core\.helm(_info)?'" || true)
if [ -n "$warnings" ]; then
  echo "galaxy-importer warnings:" >&2
  echo "$warnings" >&2
  exit 1
fi
echo "==> galaxy-importer: $(basename "$tarball") ($(stat -c %s "$tarball") bytes) imports clean"
