package main

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignalExitsZero runs the real binary (this test binary via TestMain)
// and checks that SIGTERM/SIGINT end long-running commands with exit 0.
func TestSignalExitsZero(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		ready string // stderr line printed once the signal handler is installed
		sig   syscall.Signal
	}{
		{"pause", []string{"pause"}, "probe pause: waiting", syscall.SIGTERM},
		{"pause-int", []string{"pause"}, "probe pause: waiting", syscall.SIGINT},
		{"serve", []string{"serve", "--bind", "127.0.0.1", "--http-port", "0", "--udp-port", "0", "--hold-port", "0"}, "probe serve: http", syscall.SIGTERM},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code := runWithSignal(t, c.args, c.ready, c.sig)
			if code != 0 {
				t.Fatalf("exit code %d after %v, want 0", code, c.sig)
			}
		})
	}
}

// TestHoldSignalPrintsSummary: hold with --duration 0 runs until SIGTERM and
// still prints its summary.
func TestHoldSignalPrintsSummary(t *testing.T) {
	cmd := exec.Command(os.Args[0], "hold", "--target", "127.0.0.1:"+strconv.Itoa(closedPort(t, "tcp")), "--interval", "50ms")
	cmd.Env = append(os.Environ(), "PROBE_TEST_EXEC=1")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.Contains(sc.Text(), `"broken"`) {
		t.Fatalf("first line = %q", sc.Text())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	var last string
	for sc.Scan() {
		last = sc.Text()
	}
	if err := waitBounded(t, cmd); err != nil {
		t.Fatalf("hold exited with %v", err)
	}
	if !strings.Contains(last, `"ok_summary"`) {
		t.Fatalf("last line = %q, want ok_summary", last)
	}
}

func runWithSignal(t *testing.T, args []string, ready string, sig syscall.Signal) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "PROBE_TEST_EXEC=1")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), ready) {
		cmd.Process.Kill()
		t.Fatalf("first stderr line = %q, want prefix %q", sc.Text(), ready)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	cmd.Process.Signal(sig)
	if err := waitBounded(t, cmd); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		t.Fatal(err)
	}
	return 0
}

func waitBounded(t *testing.T, cmd *exec.Cmd) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("process did not exit within 10s of the signal")
		return nil
	}
}
