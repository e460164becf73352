#!/usr/bin/env bash
# Builds the Cilium lab variant's binaries (`ci/lab up --cni cilium`) from the published
# github.com/cilium/cilium module: ci/lab-build/cilium/ is its wrapper module (go.mod + go.sum, with
# the two replaces of Cilium's own go.mod; tools.go names the commands). CGO_ENABLED=0 builds of the
# agent (daemon/, ~150 MB), the CNI plugin and cilium-dbg, plus what the agent reads at run time from
# the module's tree: the BPF C sources it compiles with clang (bpf/) and the CRDs the lab applies
# (the operator, which would register them, does not run: IPAM is `kubernetes`).
# Prints $LAB_CACHE/cilium-<version>-<inputs hash>/; cached, and built only when the variant is asked for.
#   regenerate the module: go mod init; go mod edit -require github.com/cilium/cilium@<version>
#   -replace (both, from Cilium's go.mod); go mod tidy  (GOFLAGS=-mod=mod GOTOOLCHAIN=local)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod="$here/cilium"
version=$(sed -n 's/^require github.com\/cilium\/cilium \(v[0-9.]*\)$/\1/p' "$mod/go.mod")
[ -n "$version" ] || { echo "no github.com/cilium/cilium requirement in $mod/go.mod" >&2; exit 2; }
cache=${LAB_CACHE:-/var/cache/netconform-lab}
key=$(find "$here/build-cilium.sh" "$mod" -type f | sort | xargs cat | sha256sum | cut -c1-12)
out="$cache/cilium-$version-$key"
log() { echo "[build $(date +%H:%M:%S)] $*" >&2; }
if [ -f "$out/.complete" ]; then log "cached Cilium $version in $out"; echo "$out"; exit 0; fi
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
start=$(date +%s)
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.cilium-$version-XXXXXX"); chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
# This kernel has no loadable modules (CONFIG_MODULES=n), so no /proc/modules, and Cilium 1.15's module
# manager refuses to start without that file ("failed to retrieve loaded modules names"). The build uses
# the published module's tree with one change, as for flanneld in build.sh: an absent /proc/modules reads
# as no module loaded (the agent then only warns that it cannot modprobe the iptables modules, which are
# built in here).
# `go list -m` prints an empty Dir for a module not yet in Go's module cache: download it first, and
# refuse anything but a real directory (an empty path made the copy below read all of /).
(cd "$mod" && go mod download github.com/cilium/cilium)
published=$(cd "$mod" && go list -m -f '{{.Dir}}' github.com/cilium/cilium)
[ -n "$published" ] && [ -f "$published/go.mod" ] || { echo "github.com/cilium/cilium is not in Go's module cache (go list -m: '$published')" >&2; exit 1; }
src="$cache/src/cilium-$version-$key"
if [ ! -f "$src/.patched" ]; then
  rm -rf "$src"; mkdir -p "$src"; cp -r "$published"/. "$src"; chmod -R u+w "$src"; rm -rf "$src/vendor"
  file="$src/pkg/datapath/linux/modules/modules_linux.go"
  perl -0pi -e 's/(\tfModules, err := os.Open\(loadedModulesFilepath\)\n)/$1\tif errors.Is(err, os.ErrNotExist) {\n\t\treturn nil, nil \/\/ netconform lab: a kernel without loadable modules\n\t}\n/' "$file"
  grep -q "netconform lab: a kernel without loadable modules" "$file" || { echo "patching $file failed" >&2; exit 1; }
  touch "$src/.patched"
fi
# What upstream's Makefile stamps: "<version> <revision> <author date>" (cilium-dbg version and
# status read it back); the module's own time stands in for the commit's.
stamp="${version#v} $version $(cd "$mod" && go list -m -f '{{.Time.Format "2006-01-02T15:04:05Z07:00"}}' github.com/cilium/cilium)"
ld="-s -w -X 'github.com/cilium/cilium/pkg/version.ciliumVersion=$stamp'"
cp "$mod/go.mod" "$mod/go.sum" "$mod/tools.go" "$tmp/"
(cd "$tmp" && go mod edit -replace "github.com/cilium/cilium=$src")
for cmd in daemon:cilium-agent plugins/cilium-cni:cilium-cni cilium-dbg:cilium-dbg; do
  log "building ${cmd#*:}"
  (cd "$tmp" && go build -trimpath -ldflags "$ld" -o "$tmp/${cmd#*:}" "github.com/cilium/cilium/${cmd%%:*}")
done
rm "$tmp/go.mod" "$tmp/go.sum" "$tmp/tools.go"
cp -r "$src/bpf" "$tmp/bpf"
cp -r "$src/pkg/k8s/apis/cilium.io/client/crds" "$tmp/crds"
chmod -R u+w "$tmp"
touch "$tmp/.complete"
rm -rf "$out"; mv "$tmp" "$out"; trap - EXIT
log "built Cilium $version in $(( $(date +%s) - start ))s into $out"
echo "$out"
