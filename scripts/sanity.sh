#!/usr/bin/env bash
# ansible-test must run from ansible_collections/<namespace>/<name>: copy the tracked (and new,
# not ignored) files there. ansible-test gets a virtualenv of its own (.venv-sanity): its pinned
# pylint & co. must not disturb the tools in .venv, and its --venv mode needs a bootstrap download
# from a host these machines cannot reach.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/.build/sanity${ANSIBLE_CORE:+-$ANSIBLE_CORE}/ansible_collections/workload_identity/aks"
rm -rf "$build"
mkdir -p "$build"
cd "$root"
# The vendored webhook chart is an upstream artifact kept byte for byte; its Helm templates are YAML only
# once rendered, so ansible-test's yamllint would reject every one of them: it is left out of the copy.
scripts/copy-tracked.sh "$build" ':!tests/integration/kube/charts/workload-identity-webhook' ':!tests/integration/kube/crds'
cd "$build"
# ansible-test finds the files to test through git.
git init -q && git add -A
# ANSIBLE_CORE=2.16.19 (say) runs the sanity tests of that ansible-core release (make matrix); the default is the
# pinned one of test-requirements.txt.
core="ansible-core==${ANSIBLE_CORE:-$(grep -E '^ansible-core==' "$root/test-requirements.txt" | cut -d= -f3)}"
venv="$root/.venv-sanity${ANSIBLE_CORE:+-$ANSIBLE_CORE}"
if [ ! -x "$venv/bin/ansible-test" ] || ! "$venv/bin/pip" show ansible-core 2>/dev/null | grep -q "Version: ${core#*==}$"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$core" >"$root/.build/sanity-install${ANSIBLE_CORE:+-$ANSIBLE_CORE}.log" 2>&1 || { cat "$root/.build/sanity-install${ANSIBLE_CORE:+-$ANSIBLE_CORE}.log"; exit 1; }
fi
export PATH="$venv/bin:$PATH"
# ansible-test caches under ~/.ansible: keep that inside the project, with the offline pip bootstrap.
export HOME="$root/.build/home"
pip_version=$(grep -Eo "pip='[0-9.]+'" "$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py" | head -1 | grep -Eo '[0-9.]+')
mkdir -p "$HOME/.ansible/test/cache"
cp "$root/scripts/get_pip_offline.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
python=$("$venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
exec ansible-test sanity --requirements --python "$python" --color no "$@"
