package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Raw HTTP/1.1 (keep-alive by default): the server must still say
// Connection: close and close, so ReadAll ends.
func TestServeHealthzClosesConnection(t *testing.T) {
	s := startTestServer(t)
	c, err := net.Dial("tcp", s.httpLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	raw, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("server did not close the connection: %v", err)
	}
	resp := string(raw)
	if !strings.HasPrefix(resp, "HTTP/1.1 200 ") || !strings.Contains(resp, "\r\nConnection: close\r\n") || !strings.HasSuffix(resp, "\r\n\r\nok") {
		t.Fatalf("healthz response = %q", resp)
	}
}

func TestServeUnknownPath(t *testing.T) {
	s := startTestServer(t)
	resp, err := http.Get(fmt.Sprintf("http://%s/nope", s.httpLn.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status = %d, want 404", resp.StatusCode)
	}
}

func TestServeHoldEchoesLines(t *testing.T) {
	s := startTestServer(t)
	c, err := net.Dial("tcp", s.holdLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	for _, line := range []string{"one\n", "two two\n"} {
		if _, err := io.WriteString(c, line); err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != line {
			t.Fatalf("echo = %q, %v; want %q", got, err, line)
		}
	}
}

func TestServeCloseDropsHoldConns(t *testing.T) {
	s, err := startServer(serveConfig{bind: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.holdLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Make sure the server has accepted the conn before closing.
	io.WriteString(c, "x\n")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with an open hold connection")
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("hold connection still open after Close")
	}
}
