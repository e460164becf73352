#!/usr/bin/env bash
# Builds the lab's upstream binaries from published Go modules into
# $LAB_CACHE/bin-<versions hash>/. A warm cache (same versions) skips it all.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.env"
cache=${LAB_CACHE:-/var/cache/netconform-lab}
# The cache key covers every input of the binaries and of the images made from them (not the Debian
# packages of install-deps.sh nor the CNI shim, which a node copies when it starts).
key=$(find "$here/build.sh" "$here/versions.env" "$here/kube" "$here/etcd" "$here/../../probe" \
      "$here/../lablib/images.py" -type f ! -name '*_test.go' | sort | xargs cat | sha256sum | cut -c1-12)
out="$cache/bin-$key"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
log() { echo "[build $(date +%H:%M:%S)] $*" >&2; }

# kube/ and etcd/ are wrapper modules: k8s.io/kubernetes pins its staging modules at v0.0.0 with
# local replaces, so kube/go.mod replaces each with its published k8s.io/<name> v0.<minor>.<patch>.
# Both go.mod files are committed (regenerate: go get <module>@<version> && go mod tidy).
build_kube() {
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local pkg ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  (cd "$here/kube" && go build -trimpath -ldflags "$ld" -o "$1/kube" .)
}

build_etcd() { (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$1/etcd" .); }

build_install() { # module@version binary-name
  local gobin; gobin=$(mktemp -d)
  GOBIN=$gobin go install -trimpath -ldflags "-s -w" "$1"
  mv "$gobin"/* "$2"; rmdir "$gobin"
}

# flannel's main imports a Tencent Cloud backend whose SDK module the proxy does not serve; the lab
# only uses vxlan, so build the published module's own tree with that one import line removed.
build_flanneld() {
  local src="$cache/src/flannel-$FLANNEL_VERSION" mod
  if [ ! -f "$src/main.go" ]; then
    mod=$(cd /tmp && go mod download -json "github.com/flannel-io/flannel@$FLANNEL_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    rm -rf "$src"; mkdir -p "$src"; cp -r "$mod"/. "$src"; chmod -R u+w "$src"
    sed -i '/pkg\/backend\/tencentvpc"/d' "$src/main.go"
  fi
  # Its udp backend is cgo.
  (cd "$src" && CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION" -o "$1/flanneld" .)
}

build_probe() { (cd "$here/../../probe" && go build -trimpath -ldflags "-s -w" -o "$1/probe" .); }
build_coredns() { build_install "github.com/coredns/coredns@$COREDNS_VERSION" "$1/coredns"; }

if [ -f "$out/.complete" ]; then log "cached binaries in $out"; echo "$out"; exit 0; fi
mkdir -p "$out" "$cache/parts"
start=$(date +%s)
# Each binary is also cached on its own, keyed by its own inputs: a change to one (say the probe)
# rebuilds that one only; the others are hard-linked from $cache/parts.
declare -A inputs=([etcd]="$here/etcd" [kube]="$here/kube" [probe]="$here/../../probe" [flanneld]="" [coredns]="")
for c in etcd kube probe flanneld coredns; do
  # shellcheck disable=SC2086 # inputs are paths without spaces
  part="$cache/parts/$c-$(find "$here/build.sh" "$here/versions.env" ${inputs[$c]} -type f ! -name '*_test.go' |
                          sort | xargs cat | sha256sum | cut -c1-12)"
  if [ ! -x "$part" ]; then
    log "building $c"
    tmp=$(mktemp -d "$cache/parts/.build-XXXXXX")
    "build_$c" "$tmp"
    mv "$tmp/$c" "$part"; rmdir "$tmp"
  fi
  ln -f "$part" "$out/$c"
done
touch "$out/.complete"
log "built in $(( $(date +%s) - start ))s into $out"
echo "$out"
