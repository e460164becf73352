package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestRouteMTUOfLoopbackAndBadArguments(t *testing.T) {
	var out, errb strings.Builder
	// lo has MTU 65536; IPv4 caps a route's at 65535 (IP_MAX_MTU)
	if code := runRouteMTU([]string{"127.0.0.1"}, &out, &errb); code != 0 || out.String() != "127.0.0.1 65535\n" {
		t.Fatalf("loopback: code %d, out %q, err %q; want 127.0.0.1 65535", code, out.String(), errb.String())
	}
	for _, args := range [][]string{nil, {"10.0.0.1;reboot"}, {"eth0"}} {
		errb.Reset()
		if code := runRouteMTU(args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%q: code %d, err %q; want usage error 2 with a sentence", args, code, errb.String())
		}
	}
}

// TestRouteMTUReadsTheRouteNotTheDevice: eth0 MTU 1500 and a default route
// with mtu 1450, as Cilium sets pods up: the kernel's MTU toward an address
// behind the default route is 1450, toward the on-link subnet 1500.
func TestRouteMTUReadsTheRouteNotTheDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (ip netns add)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	ns := fmt.Sprintf("nctest-%d-%d-r", os.Getpid(), time.Now().UnixNano()%1e9)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	for _, args := range [][]string{
		{"link", "add", "eth0", "mtu", "1500", "type", "veth", "peer", "name", "eth1"},
		{"addr", "add", "198.18.252.1/30", "dev", "eth0"},
		{"link", "set", "eth0", "up"},
		{"link", "set", "eth1", "up"},
		{"route", "add", "default", "via", "198.18.252.2", "dev", "eth0", "mtu", "1450"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "route-mtu", "10.244.1.7", "198.18.252.2")
	cmd.Env = append(os.Environ(), "PROBE_TEST_EXEC=1")
	out, err := cmd.CombinedOutput()
	if want := "10.244.1.7 1450\n198.18.252.2 1500\n"; err != nil || string(out) != want {
		t.Fatalf("route-mtu in %s: %v, %q; want %q", ns, err, out, want)
	}
}
