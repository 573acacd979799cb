#!/usr/bin/env bash
# Build (once) the sandbox's Kubernetes from upstream sources, through the Go module proxy:
#   kube-apiserver, kube-controller-manager  k8s.io/kubernetes (its staging modules pinned to the
#                                            same release, as its own go.mod points them at ./staging)
#   etcd                                     go.etcd.io/etcd/server/v3
#   azure-wi-webhook                         github.com/Azure/azure-workload-identity/cmd/webhook
#   azwi                                     github.com/Azure/azure-workload-identity/cmd/azwi (the same
#                                            release: an independent client the tests point at the sandbox)
# Usage: build-kube.sh         the sandbox's control plane and webhook (what every kube-backed test needs)
#        build-kube.sh azwi    the azwi CLI alone: slow (the Microsoft Graph SDK), needed by one test, so CI
#                              builds it in the background after the control plane, under its own lock
# Versions: scripts/kube-versions.env. Results are cached per version set under
# ${XDG_CACHE_HOME:-~/.cache}/workload-identity-aks/ and reused; a binary already there is not
# rebuilt. Needs Go (the machine's, GOTOOLCHAIN=local) and the Go module proxy ($GOPROXY).
# Prints where the binaries are on its last line: KUBE_BIN_DIR=<dir>
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/kube-versions.env
. "$here/kube-versions.env"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/workload-identity-aks
out="$cache/kube-$KUBE_VERSION+etcd-$ETCD_VERSION+wi-$WEBHOOK_VERSION"
if [ "${1:-}" = azwi ]; then
  binaries=(azwi) set=azwi
elif [ $# -eq 0 ]; then
  binaries=(kube-apiserver kube-controller-manager etcd azure-wi-webhook) set=kube
else
  echo "usage: $0 [azwi]" >&2
  exit 2
fi
work="$cache/build-go-$set"
say() { printf '[build-kube %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

mkdir -p "$cache"
# One build of each set at a time (CI starts them in the background; `make test` and the azwi test wait here).
exec 9>"$cache/build-$set.lock"
if ! flock -n 9; then
  say "another build is running; waiting for it"
  flock 9
fi
missing=()
for binary in "${binaries[@]}"; do [ -x "$out/bin/$binary" ] || missing+=("$binary"); done
if [ ${#missing[@]} -eq 0 ]; then
  say "cached: $out/bin"
  echo "KUBE_BIN_DIR=$out/bin"
  exit 0
fi
wants() { local b; for b in "${missing[@]}"; do [ "$b" = "$1" ] && return 0; done; return 1; }

command -v go >/dev/null || die "Go is not installed (the build needs go 1.26 or newer on PATH)"
# The module cache and build cache are private to this build (several GB for Kubernetes) and
# deleted after a complete build unless SANDBOX_KEEP_KUBE_BUILD is set.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath" \
  GOMODCACHE="$work/gomodcache" GOCACHE="$work/gocache" GOPATH="$work/gopath"
mkdir -p "$work" "$out/bin"
say "$(go version); proxy ${GOPROXY:-$(go env GOPROXY)}; building: ${missing[*]}"

# One throwaway module per upstream project: each keeps the dependency versions it was released with.
module() {  # module <dir> <require-path> <version> -> a go.mod requiring it, dependencies resolved
  local dir="$work/$1" path=$2 version=$3
  mkdir -p "$dir"
  [ -f "$dir/go.mod" ] && return 0
  say "resolving $path@$version through the proxy"
  (cd "$dir" && go mod init "sandbox.local/$1" >/dev/null 2>&1 && go mod edit -require="$path@$version") \
    || die "could not write $dir/go.mod"
}

compile() {  # compile <module-dir> <log-name> <ldflags> <out-dir-or-file> <package>...
  local dir="$work/$1" name=$2 log="$work/$2.log" ldflags=$3 target=$4
  shift 4
  local started
  started=$(date +%s)
  (cd "$dir" && go build -v -ldflags "$ldflags" -o "$target" "$@") >"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    kill -0 "$pid" 2>/dev/null && say "  still compiling $name ($(( $(date +%s) - started )) s): $(tail -1 "$log" | cut -c1-90)"
  done
  if ! wait "$pid"; then
    if grep -qE "dial tcp|proxyconnect|no such host|connection refused|i/o timeout|TLS handshake" "$log"; then
      die "the Go module proxy is unreachable ($(grep -m1 -E 'dial tcp|no such host|connection refused|i/o timeout|TLS' "$log" | cut -c1-200)); see $log"
    fi
    die "building $name failed; last lines of $log:
$(tail -15 "$log")"
  fi
  say "  $name built in $(( $(date +%s) - started )) s"
}

# Reachability first: a clear message instead of a wall of Go errors.
probe=$(cd "$work" && timeout 120 go list -m -json "k8s.io/kubernetes@v$KUBE_VERSION" 2>&1) \
  || die "the Go module proxy does not answer for k8s.io/kubernetes@v$KUBE_VERSION (GOPROXY=$(go env GOPROXY)): $(echo "$probe" | tail -2)"

stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if wants kube-apiserver || wants kube-controller-manager; then
  module kubernetes k8s.io/kubernetes "v$KUBE_VERSION"
  # k8s.io/kubernetes points its k8s.io/* staging modules at ./staging; their published
  # releases are v0.<minor>.<patch> of the same commit.
  gomod=$(cd "$work/kubernetes" && go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@v$KUBE_VERSION's go.mod"
  staging_version="v0.${KUBE_VERSION#1.}"
  sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod" | while read -r staged; do
    (cd "$work/kubernetes" && go mod edit -replace="$staged=$staged@$staging_version")
  done
  minor=${KUBE_VERSION#1.}; minor=${minor%%.*}
  v=k8s.io/component-base/version
  kube_ldflags="-s -w -X $v.gitVersion=v$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor"
  kube_ldflags+=" -X $v.gitTreeState=clean -X $v.buildDate=$stamp"
  kube_ldflags+=" -X $v.gitCommit=0000000000000000000000000000000000000000"
  say "compiling kube-apiserver and kube-controller-manager v$KUBE_VERSION (about 10 minutes on 2 cores)"
  compile kubernetes kubernetes "$kube_ldflags" "$out/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
fi

if wants etcd; then
  module etcd go.etcd.io/etcd/server/v3 "v$ETCD_VERSION"
  say "compiling etcd v$ETCD_VERSION"
  compile etcd etcd "-s -w" "$out/bin/etcd" go.etcd.io/etcd/server/v3
fi

if wants azure-wi-webhook || wants azwi; then
  module webhook github.com/Azure/azure-workload-identity "v$WEBHOOK_VERSION"
  # The webhook and azwi log through monis.app/mlog, which some proxies refuse (403 for every version
  # here). Only then, build them with scripts/go-shims/mlog, written for this project with the same
  # API; their own code is unchanged.
  if ! (cd "$work/webhook" && timeout 120 go mod download monis.app/mlog) >"$work/mlog.log" 2>&1; then
    say "the proxy refuses monis.app/mlog ($(grep -o '[0-9]\{3\} [A-Za-z ]*$' "$work/mlog.log" | head -1)): logging through scripts/go-shims/mlog"
    (cd "$work/webhook" && go mod edit -replace="monis.app/mlog=$here/go-shims/mlog")
  fi
  v=github.com/Azure/azure-workload-identity/pkg/version
  wi_ldflags="-s -w -X $v.BuildVersion=v$WEBHOOK_VERSION -X $v.BuildTime=$stamp -X $v.Vcs=v$WEBHOOK_VERSION"
  if wants azure-wi-webhook; then
    say "compiling the azure-workload-identity webhook v$WEBHOOK_VERSION"
    compile webhook webhook "$wi_ldflags" "$out/bin/azure-wi-webhook" github.com/Azure/azure-workload-identity/cmd/webhook
  fi
  if wants azwi; then
    say "compiling azwi v$WEBHOOK_VERSION (the Microsoft Graph SDK is most of it: a few minutes)"
    compile webhook azwi "$wi_ldflags" "$out/bin/azwi" github.com/Azure/azure-workload-identity/cmd/azwi
  fi
fi

for binary in "${binaries[@]}"; do [ -x "$out/bin/$binary" ] || die "$binary is missing from $out/bin after the build"; done
if [ "$set" = kube ]; then
  say "built: $("$out/bin/kube-apiserver" --version), etcd $("$out/bin/etcd" --version | head -1 | awk '{print $3}')"
else
  say "built: azwi $("$out/bin/azwi" version | sed -n 's/^Version: //p')"
fi
if [ -z "${SANDBOX_KEEP_KUBE_BUILD:-}" ]; then
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
fi
echo "KUBE_BIN_DIR=$out/bin"
