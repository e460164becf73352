package main

import (
	"context"
	"net"
	"os"
	"testing"
	"time"
)

// TestMain lets tests run the real main() (signals, exit codes) by
// re-executing the test binary with PROBE_TEST_EXEC=1.
func TestMain(m *testing.M) {
	if os.Getenv("PROBE_TEST_EXEC") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// startTestServer runs `serve` on 127.0.0.1 with ephemeral ports.
func startTestServer(t *testing.T) *server {
	t.Helper()
	s, err := startServer(serveConfig{bind: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func portOf(a net.Addr) int {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.Port
	case *net.UDPAddr:
		return a.Port
	}
	panic("unexpected addr type")
}

// closedPort returns a 127.0.0.1 port that nothing listens on.
func closedPort(t *testing.T, network string) int {
	t.Helper()
	var port int
	if network == "tcp" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = portOf(ln.Addr())
		ln.Close()
	} else {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = portOf(pc.LocalAddr())
		pc.Close()
	}
	return port
}

func newTestDialer(timeout time.Duration) *dialer {
	return &dialer{timeout: timeout, resolver: &net.Resolver{PreferGo: true}}
}

// dialOne runs a single target through the same path as `probe dial`.
func dialOne(t *testing.T, d *dialer, tg Target) Result {
	t.Helper()
	if tg.Count == 0 {
		tg.Count = 1
	}
	res := d.run(context.Background(), Spec{Concurrency: 1, Targets: []Target{tg}})
	if len(res) != 1 {
		t.Fatalf("got %d results, want 1", len(res))
	}
	return res[0]
}
