#!/usr/bin/env bash
# Build (once) the sandbox's Kubernetes control plane from Debian's archive only, offline:
#   kube-apiserver from Debian's `kubernetes` source package, compiled with Debian's Go 1.19;
#   etcd from Debian's `etcd-server`.
# Results are cached per version under ${XDG_CACHE_HOME:-~/.cache}/workload-identity-aks/ and
# reused; apt's own state for this lives there too (the machine's apt configuration is untouched).
# Prints where the binaries are on its last line: KUBE_BIN_DIR=<dir>
set -euo pipefail

KUBE_VERSION=1.20.2
KUBE_DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
GO_PACKAGES=(golang-1.19-go golang-1.19-src)
ETCD_PACKAGE=etcd-server
MIRROR=${SANDBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SANDBOX_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

cache=${XDG_CACHE_HOME:-$HOME/.cache}/workload-identity-aks
out="$cache/kube-$KUBE_VERSION"
say() { printf '[build-kube %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

if [ -x "$out/bin/kube-apiserver" ] && [ -x "$out/bin/etcd" ]; then
  say "cached: $out/bin"
  echo "KUBE_BIN_DIR=$out/bin"
  exit 0
fi

for tool in apt-get dpkg-source dpkg tar; do
  command -v "$tool" >/dev/null || die "'$tool' is missing: this script needs a Debian-based machine (apt-get, dpkg-dev)."
done

work="$cache/build-$KUBE_VERSION"
apt_dir="$cache/apt"
mkdir -p "$work" "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$out/bin"
cat >"$apt_dir/sources.list" <<LIST
deb $MIRROR bookworm main
deb-src $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb-src $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
deb-src $SECURITY_MIRROR bookworm-security main
LIST
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
          -o "Acquire::Retries=3" -o "Acquire::http::Timeout=60" -o "APT::Sandbox::User=root")

say "refreshing a private package index (Debian bookworm, sources and binaries)"
timeout 600 apt-get "${apt_opts[@]}" -q update >"$work/apt-update.log" 2>&1 \
  || die "apt-get update failed (see $work/apt-update.log): is Debian's archive reachable?"

cd "$work"
if [ ! -d "$work/src" ]; then
  say "downloading the kubernetes source package $KUBE_DEB_VERSION (~34 MB)"
  timeout 900 apt-get "${apt_opts[@]}" -q source --download-only "kubernetes=$KUBE_DEB_VERSION" >"$work/apt-source.log" 2>&1 \
    || die "could not download the kubernetes source package (see $work/apt-source.log)"
  say "unpacking the source"
  rm -rf "$work/unpacked"
  dpkg-source --no-check -x ./kubernetes_*.dsc "$work/unpacked" >"$work/dpkg-source.log" 2>&1 \
    || die "dpkg-source -x failed (see $work/dpkg-source.log)"
  mv "$work/unpacked" "$work/src"
fi

if [ ! -x "$work/go/usr/lib/go-1.19/bin/go" ]; then
  say "downloading Go 1.19 (${GO_PACKAGES[*]}) and $ETCD_PACKAGE"
  (cd "$work" && timeout 900 apt-get "${apt_opts[@]}" -q download "${GO_PACKAGES[@]}" "$ETCD_PACKAGE") >"$work/apt-download.log" 2>&1 \
    || die "could not download Go or etcd (see $work/apt-download.log)"
  rm -rf "$work/go" && mkdir -p "$work/go"
  for deb in "$work"/golang-1.19-*.deb; do dpkg -x "$deb" "$work/go"; done
fi
if [ ! -x "$out/bin/etcd" ]; then
  [ -f "$(ls "$work"/etcd-server_*.deb 2>/dev/null | head -1)" ] || \
    (cd "$work" && timeout 900 apt-get "${apt_opts[@]}" -q download "$ETCD_PACKAGE" >>"$work/apt-download.log" 2>&1) \
    || die "could not download etcd-server (see $work/apt-download.log)"
  rm -rf "$work/etcd" && dpkg -x "$(ls "$work"/etcd-server_*.deb | head -1)" "$work/etcd"
  cp "$work/etcd/usr/bin/etcd" "$out/bin/etcd"
fi

# Kubernetes' own make generates code (openapi definitions) before compiling, and needs rsync:
# take it (and its libpopt) from Debian too, behind a shim, instead of installing it system-wide.
if [ ! -x "$work/tools/bin/rsync" ]; then
  say "downloading rsync (the Kubernetes build copies its output with it)"
  (cd "$work" && timeout 600 apt-get "${apt_opts[@]}" -q download rsync libpopt0) >>"$work/apt-download.log" 2>&1 \
    || die "could not download rsync (see $work/apt-download.log)"
  rm -rf "$work/rsync" && mkdir -p "$work/tools/bin"
  for deb in "$work"/rsync_*.deb "$work"/libpopt0_*.deb; do dpkg -x "$deb" "$work/rsync"; done
  cat >"$work/tools/bin/rsync" <<SHIM
#!/bin/sh
LD_LIBRARY_PATH="$work/rsync/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$work/rsync/usr/bin/rsync" "\$@"
SHIM
  chmod +x "$work/tools/bin/rsync"
  "$work/tools/bin/rsync" --version >/dev/null || die "the unpacked rsync does not run"
fi

export GOROOT="$work/go/usr/lib/go-1.19"
export PATH="$work/tools/bin:$GOROOT/bin:$PATH"
export GOPROXY=off GOFLAGS= CGO_ENABLED=0 GOCACHE="$work/gocache"
go version >/dev/null 2>&1 || die "the unpacked Go does not run ($GOROOT/bin/go)"
# No git tree: hack/lib/version.sh takes the version from these.
export KUBE_GIT_VERSION="v$KUBE_VERSION" KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean
export KUBE_GIT_COMMIT="0000000000000000000000000000000000000000"

say "compiling kube-apiserver $KUBE_VERSION with $(go version | cut -d' ' -f3) (about 4-6 minutes on 2 cores)"
cd "$work/src"
started=$(date +%s)
( make WHAT=cmd/kube-apiserver ) >"$work/make.log" 2>&1 &
build_pid=$!
while kill -0 "$build_pid" 2>/dev/null; do
  sleep 20
  kill -0 "$build_pid" 2>/dev/null && say "still compiling ($(( $(date +%s) - started )) s): $(tail -1 "$work/make.log" | cut -c1-80)"
done
wait "$build_pid" || die "the Kubernetes build failed (last lines of $work/make.log: $(tail -5 "$work/make.log"))"
cp "$work/src/_output/local/bin/linux/amd64/kube-apiserver" "$out/bin/kube-apiserver"
say "built kube-apiserver in $(( $(date +%s) - started )) s: $("$out/bin/kube-apiserver" --version)"
echo "$(( $(date +%s) - started ))" >"$out/build-seconds"
# The source tree, Go and its build cache are ~2.5 GB; only the two binaries are needed from here on.
if [ -z "${SANDBOX_KEEP_KUBE_BUILD:-}" ]; then
  cd "$cache" && rm -rf "$work"
fi
echo "KUBE_BIN_DIR=$out/bin"
