#!/usr/bin/env bash
# Builds the lab's multi-call `kube` binary at an older Kubernetes version, for `ci/lab up --version`
# and `ci/lab upgrade`: ci/lab-build/kube-<version>/ is its wrapper module's go.mod and go.sum (each
# staging module replaced by its published k8s.io/<name> v0.<minor>.<patch>); its main.go is kube/'s,
# copied in at build time.
# Prints $LAB_CACHE/kube-<version>-<inputs hash>/, cached side by side with the default build (whose
# kube, from ci/lab-build/build.sh and versions.env, this script never touches).
#   regenerate a module: go mod init; go get k8s.io/kubernetes@<version>; go mod edit -replace
#   k8s.io/<staging>=k8s.io/<staging>@v0.<minor>.<patch> (each); go mod tidy
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${1:?usage: build-kube.sh <version>}
mod="$here/kube-$version"
if [ ! -f "$mod/go.mod" ]; then
  echo "no wrapper module for Kubernetes $version (ci/lab-build/kube-$version/)" >&2; exit 2
fi
cache=${LAB_CACHE:-/var/cache/netconform-lab}
key=$(find "$here/build-kube.sh" "$here/kube/main.go" "$mod" -type f | sort | xargs cat | sha256sum | cut -c1-12)
out="$cache/kube-$version-$key"
log() { echo "[build $(date +%H:%M:%S)] $*" >&2; }
if [ -x "$out/kube" ]; then log "cached kube $version in $out"; echo "$out"; exit 0; fi
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
start=$(date +%s)
log "building kube $version"
minor=${version#v1.}; minor=${minor%%.*}
ld="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.kube-$version-XXXXXX")
cp "$mod/go.mod" "$mod/go.sum" "$here/kube/main.go" "$tmp/"
(cd "$tmp" && go build -trimpath -ldflags "$ld" -o "$tmp/kube.bin" . && mv kube.bin kube && rm go.mod go.sum main.go)
rm -rf "$out"; mv "$tmp" "$out"
log "built kube $version in $(( $(date +%s) - start ))s into $out"
echo "$out"
