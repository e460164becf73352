package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPathMTUInNamespacePair runs serve and dial as real processes in two
// throwaway network namespaces joined by a veth pair whose B side has MTU
// 1280 while A's has 1500: the overlay-below-pod-MTU mismatch of docs/faults.md #5.
//
//   - A -> B, DF, bigger than 1280: the veth drops the frame, nothing comes
//     back: timeout (a PMTU black hole).
//   - B -> A, DF, bigger than 1280: B's own route MTU refuses it: too_big,
//     naming MTU 1280. Without DF the same datagram is fragmented and arrives.
//   - C -> A through B: C (a pod, MTU 1500) routes via B (its node), whose
//     link to A has MTU 1280; B answers with ICMP "fragmentation needed" and
//     the DF datagram fails on the read as too_big, naming MTU 1280.
//   - TCP A -> B: B advertises an MSS for 1500 (advmss 1460) and A sends real
//     full-size segments (TSO/GSO off): a small request passes, a 100 kB
//     payload hangs.
func TestPathMTUInNamespacePair(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (ip netns add)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	suffix := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	a, b, c := "nctest-"+suffix+"-a", "nctest-"+suffix+"-b", "nctest-"+suffix+"-c"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{a, b, c} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Skipf("cannot create a network namespace here: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run("ip", "-n", ns, "link", "set", "lo", "up")
	}
	run("ip", "-n", a, "link", "add", "veth0", "mtu", "1500", "type", "veth", "peer", "name", "veth1", "mtu", "1280", "netns", b)
	run("ip", "-n", a, "addr", "add", "198.18.251.1/30", "dev", "veth0")
	run("ip", "-n", a, "addr", "add", "fd8c:5a::1/64", "dev", "veth0", "nodad")
	run("ip", "-n", b, "addr", "add", "198.18.251.2/30", "dev", "veth1")
	run("ip", "-n", b, "addr", "add", "fd8c:5a::2/64", "dev", "veth1", "nodad")
	run("ip", "-n", a, "link", "set", "veth0", "up")
	run("ip", "-n", b, "link", "set", "veth1", "up")
	run("ip", "-n", b, "route", "replace", "198.18.251.0/30", "dev", "veth1", "advmss", "1460")
	// C behind B: B forwards, A routes C's subnets back through B.
	run("ip", "-n", c, "link", "add", "veth3", "type", "veth", "peer", "name", "veth2", "netns", b)
	run("ip", "-n", c, "addr", "add", "198.18.251.9/30", "dev", "veth3")
	run("ip", "-n", c, "addr", "add", "fd8c:5b::1/64", "dev", "veth3", "nodad")
	run("ip", "-n", b, "addr", "add", "198.18.251.10/30", "dev", "veth2")
	run("ip", "-n", b, "addr", "add", "fd8c:5b::2/64", "dev", "veth2", "nodad")
	run("ip", "-n", c, "link", "set", "veth3", "up")
	run("ip", "-n", b, "link", "set", "veth2", "up")
	run("ip", "-n", c, "route", "add", "default", "via", "198.18.251.10")
	run("ip", "-n", c, "route", "add", "default", "via", "fd8c:5b::2")
	run("ip", "-n", a, "route", "add", "198.18.251.8/30", "via", "198.18.251.2")
	run("ip", "-n", a, "route", "add", "fd8c:5b::/64", "via", "fd8c:5a::2")
	run("ip", "netns", "exec", b, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	tcpBlackHole := exec.Command("ip", "netns", "exec", a, "ethtool", "-K", "veth0", "tso", "off", "gso", "off").Run() == nil

	nsServe(t, a)
	nsServe(t, b)
	udp := func(id, host string, n int, df bool) string {
		return fmt.Sprintf(`{"id":%q,"proto":"udp","host":%q,"port":8081,"payload_bytes":%d,"df":%v}`, id, host, n, df)
	}
	tcp := func(id string, n int) string {
		return fmt.Sprintf(`{"id":%q,"proto":"tcp","host":"198.18.251.2","port":8080,"payload_bytes":%d}`, id, n)
	}
	fromA := nsDial(t, a, udp("fits", "198.18.251.2", 1200, true), udp("dropped", "198.18.251.2", 1400, true),
		udp("dropped6", "fd8c:5a::2", 1400, true), tcp("tcp-small", 500), tcp("tcp-large", 100000))
	fromB := nsDial(t, b, udp("too-big", "198.18.251.1", 1400, true), udp("too-big6", "fd8c:5a::1", 1400, true),
		udp("fragmented", "198.18.251.1", 1400, false))
	fromC := nsDial(t, c, udp("icmp-too-big", "198.18.251.1", 1400, true), udp("icmp-too-big6", "fd8c:5a::1", 1400, true),
		udp("routed", "198.18.251.1", 1200, true))

	want := map[string]string{"fits": "", "dropped": kindTimeout, "dropped6": kindTimeout, "tcp-small": "",
		"too-big": kindTooBig, "too-big6": kindTooBig, "fragmented": "",
		"icmp-too-big": kindTooBig, "icmp-too-big6": kindTooBig, "routed": ""}
	if tcpBlackHole {
		want["tcp-large"] = kindTimeout
	} else {
		t.Log("no ethtool: cannot turn off TSO/GSO on the veth, so the TCP black hole is not checked")
	}
	for _, r := range slices.Concat(fromA, fromB, fromC) {
		kind, ok := want[r.ID]
		if !ok {
			continue
		}
		at := r.Attempts[0]
		t.Logf("%-10s %-5s %5d bytes: error %q %s", r.ID, r.Proto, at.PayloadBytes, at.Error, at.Detail)
		if at.Error != kind || (kind == "" && at.ServerBytes != at.PayloadBytes) {
			t.Errorf("%s: %+v; want error %q", r.ID, at, kind)
		}
		if strings.HasPrefix(r.ID, "icmp-") && !strings.HasPrefix(at.Detail, "read reply ") {
			t.Errorf("%s: detail %q; want too_big reported by the read (ICMP from the router)", r.ID, at.Detail)
		}
		if kind == kindTooBig && !strings.Contains(at.Detail, "(1400-byte payload, route MTU 1280)") {
			t.Errorf("%s: detail %q; want it to name the payload and MTU 1280", r.ID, at.Detail)
		}
		if r.Proto == "udp" && kind == kindTimeout && !strings.HasPrefix(at.Detail, "no reply within 1s to a 1400-byte payload with DF: ") {
			t.Errorf("%s: detail %q; want it to name the payload and DF", r.ID, at.Detail)
		}
	}
}

// nsServe runs `probe serve` (this test binary, see TestMain) in namespace ns
// on ports 8080-8082 and waits until it listens.
func nsServe(t *testing.T, ns string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "serve")
	cmd.Env = append(os.Environ(), "PROBE_TEST_EXEC=1")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "probe serve: http") {
		t.Fatalf("serve in %s: %q", ns, sc.Text())
	}
	go func() {
		for sc.Scan() {
		}
	}()
}

// nsDial runs `probe dial --spec -` in namespace ns with the given targets.
func nsDial(t *testing.T, ns string, targets ...string) []Result {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "dial", "--spec", "-")
	cmd.Env = append(os.Environ(), "PROBE_TEST_EXEC=1")
	cmd.Stdin = strings.NewReader(`{"timeout_ms": 1000, "targets": [` + strings.Join(targets, ",") + `]}`)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dial in %s: %v: %s", ns, err, stderr.String())
	}
	var doc Output
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("dial output: %v: %s", err, out)
	}
	return doc.Results
}
