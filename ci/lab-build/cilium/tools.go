//go:build tools

// Package tools pins the Cilium commands the lab builds (ci/lab-build/build-cilium.sh) so that
// `go mod tidy` keeps github.com/cilium/cilium and everything they import in go.mod and go.sum.
// These are main packages: go build names them by import path; this file is never compiled.
package tools

import (
	_ "github.com/cilium/cilium/cilium-dbg"
	_ "github.com/cilium/cilium/daemon"
	_ "github.com/cilium/cilium/plugins/cilium-cni"
)
