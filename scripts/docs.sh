#!/usr/bin/env bash
# make docs: the collection's documentation as docs.ansible.com publishes it (antsibull-docs), rendered to HTML in
# .build/docs/build/html. The guides in docs/docsite/rst/ are generated from docs/*.md (pandoc, from the
# pypandoc-binary wheel) and committed; this fails when the committed copy is not what docs/*.md gives.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.build/docs-venv"
pins=(antsibull-docs==2.28.0 sphinx-ansible-theme==0.10.4 pypandoc-binary==1.17
      "$(grep -E '^ansible-core==' "$root/test-requirements.txt")")
if [ ! -f "$venv/.pins" ] || [ "$(cat "$venv/.pins")" != "${pins[*]}" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "${pins[@]}" >"$root/.build/docs-install.log" 2>&1 || { tail -30 "$root/.build/docs-install.log"; exit 1; }
  echo "${pins[*]}" >"$venv/.pins"
fi
# The guides: Markdown in docs/ (what GitHub shows) -> RST for the docsite; repository links become absolute.
"$venv/bin/python" - "$root" <<'PY'
import re, sys
from pathlib import Path
import pypandoc
root = Path(sys.argv[1])
repo = "https://github.com/workload-identity/aks/blob/main/"
for name in ("awx",):
    text = (root / "docs" / f"{name}.md").read_text()
    text = re.sub(r"\]\(\.\./", f"]({repo}", text)
    rst = pypandoc.convert_text(text, "rst", format="gfm", extra_args=["--wrap=none"])
    # pandoc's labels are global in Sphinx: one label per guide, in the collection's namespace, instead.
    rst = re.sub(r"^\.\. _[^:]+:\n\n", "", rst, flags=re.M)
    header = (
        f".. Generated from docs/{name}.md by make docs: edit that file, not this one.\n\n"
        f".. _ansible_collections.workload_identity.aks.docsite.{name}:\n\n"
    )
    (root / "docs" / "docsite" / "rst" / f"{name}.rst").write_text(header + rst)
PY
if ! git -C "$root" diff --quiet -- docs/docsite/rst; then
  echo "docs/docsite/rst is not what docs/*.md gives: commit the regenerated files" >&2
  git -C "$root" --no-pager diff --stat -- docs/docsite/rst >&2
  [ -n "${DOCS_REGENERATE:-}" ] || exit 1
fi
collections="$root/.build/collections"
mkdir -p "$collections/ansible_collections/workload_identity"
ln -sfn "$root" "$collections/ansible_collections/workload_identity/aks"
export ANSIBLE_COLLECTIONS_PATH="$collections:$root/.tools/collections"
export PATH="$venv/bin:$PATH"
echo "==> antsibull-docs lint-collection-docs"
antsibull-docs lint-collection-docs --plugin-docs --skip-rstcheck "$collections/ansible_collections/workload_identity/aks"
out="$root/.build/docs"
rm -rf "$out" && mkdir -m 0755 "$out"
antsibull-docs sphinx-init --use-current --lenient --fail-on-error --dest-dir "$out" workload_identity.aks >/dev/null
(cd "$out" && ./build.sh >"$root/.build/docs-build.log" 2>&1) || { tail -40 "$root/.build/docs-build.log"; exit 1; }
echo "==> HTML in $out/build/html/index.html ($(find "$out/build/html" -name '*.html' | wc -l) pages)"
