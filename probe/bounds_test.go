package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The hold port and the HTTP server bound what one client can make them hold:
// line length, idle time, connections (192 MiB without a newline grew a server
// from 7 to 206 MiB; idle connections stayed open forever).

func startBoundedServer(t *testing.T, idle time.Duration, maxConns int) *server {
	t.Helper()
	s, err := startServer(serveConfig{bind: "127.0.0.1", holdIdle: idle, maxConns: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// closedByServer: the server ends the connection (EOF or reset) within `within`.
func closedByServer(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v", within)
	}
}

func TestHoldLineWithoutNewlineIsCutNotBuffered(t *testing.T) {
	s := startBoundedServer(t, time.Minute, 8)
	c, err := net.Dial("tcp", s.holdLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	chunk := []byte(strings.Repeat("x", 1<<20))
	sent := 0
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	for i := 0; i < 64; i++ { // up to 64 MiB: the server closes long before
		n, err := c.Write(chunk)
		sent += n
		if err != nil {
			break
		}
	}
	closedByServer(t, c, 5*time.Second)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 8<<20 {
		t.Fatalf("heap grew %d MiB for %d MiB without a newline", grown>>20, sent>>20)
	}
}

func TestHoldIdleConnectionIsClosed(t *testing.T) {
	s := startBoundedServer(t, 200*time.Millisecond, 8)
	c, err := net.Dial("tcp", s.holdLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, "netconform-hold 1\n") // a line resets the idle clock
	if got, err := r.ReadString('\n'); err != nil || got != "netconform-hold 1\n" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	started := time.Now()
	closedByServer(t, c, 2*time.Second)
	if waited := time.Since(started); waited < 150*time.Millisecond {
		t.Fatalf("closed after %v, before the idle time", waited)
	}
}

func TestHoldConnectionsAboveTheCapAreClosed(t *testing.T) {
	s := startBoundedServer(t, time.Minute, 2)
	var kept []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", s.holdLn.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(c, fmt.Sprintf("line %d\n", i)) // echoed: accepted and registered
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		kept = append(kept, c)
	}
	extra, err := net.Dial("tcp", s.holdLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	closedByServer(t, extra, 2*time.Second)
	kept[0].Close() // a slot frees up
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := net.Dial("tcp", s.holdLn.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		io.WriteString(c, "again\n")
		_, err = bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no slot after a connection closed")
		}
	}
}

func TestHTTPConnectionsAboveTheCapAreClosed(t *testing.T) {
	s := startBoundedServer(t, time.Minute, 1)
	idle, err := net.Dial("tcp", s.httpLn.Addr().String()) // holds the one slot (headers never sent)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	time.Sleep(100 * time.Millisecond)
	extra, err := net.Dial("tcp", s.httpLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	closedByServer(t, extra, 2*time.Second)
	idle.Close()
	time.Sleep(100 * time.Millisecond)
	resp, err := http.Get(fmt.Sprintf("http://%s/healthz", s.httpLn.Addr()))
	if err != nil {
		t.Fatalf("after the slot freed: %v", err)
	}
	resp.Body.Close()
}

func TestServeRefusesBadBounds(t *testing.T) {
	for _, args := range [][]string{{"--max-conns", "0"}, {"--hold-idle", "0s"}, {"--max-conns", "70000"}} {
		var stderr strings.Builder
		if code := runServe(t.Context(), args, &stderr); code != 2 {
			t.Fatalf("%v: exit %d, want 2 (%s)", args, code, stderr.String())
		}
	}
}
