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

// UDP payloads arrive at exactly the size asked, with or without DF, up to
// the largest IPv4 datagram (which still fits loopback's 65536 MTU).
func TestDialUDPPayloadExactSize(t *testing.T) {
	s := startTestServer(t)
	d := newTestDialer(2 * time.Second)
	for _, tc := range []struct {
		n  int
		df bool
	}{{1, false}, {1472, true}, {9000, true}, {65507, true}, {65507, false}} {
		r := dialOne(t, d, Target{Proto: "udp", Host: "127.0.0.1", Port: portOf(s.udp.LocalAddr()), PayloadBytes: tc.n, DF: tc.df})
		a := r.Attempts[0]
		if !a.OK || a.ServerBytes != tc.n || a.PayloadBytes != tc.n {
			t.Fatalf("udp payload %d df %v: %+v; want ok and the server counting %d bytes", tc.n, tc.df, a, tc.n)
		}
	}
	// Without payload_bytes the request stays the 7-byte "whoami\n".
	if a := dialOne(t, d, Target{Proto: "udp", Host: "127.0.0.1", Port: portOf(s.udp.LocalAddr())}).Attempts[0]; !a.OK || a.ServerBytes != 7 || a.PayloadBytes != 0 {
		t.Fatalf("plain udp: %+v", a)
	}
}

// Over IPv6 loopback (MTU 65536) a 65500-byte payload is a 65548-byte packet:
// with DF the kernel refuses it locally (EMSGSIZE -> too_big, naming the
// route MTU); without DF it fragments and the server gets all of it.
func TestDialUDPTooBigWithDF(t *testing.T) {
	s := startDualStackServer(t)
	d := newTestDialer(2 * time.Second)
	tg := Target{Proto: "udp", Host: "::1", Port: portOf(s.udp.LocalAddr()), PayloadBytes: 65500, DF: true}
	a := dialOne(t, d, tg).Attempts[0]
	if a.OK || a.Error != kindTooBig || !strings.HasPrefix(a.Detail, "send datagram (65500-byte payload, route MTU 65536): ") {
		t.Fatalf("v6 65500 bytes with DF: %+v; want too_big at send naming MTU 65536", a)
	}
	if a.PayloadBytes != 65500 || a.LocalPort == 0 || a.TotalMS > 1000 {
		t.Fatalf("too_big attempt fields: %+v", a)
	}
	tg.DF = false
	if a := dialOne(t, d, tg).Attempts[0]; !a.OK || a.ServerBytes != 65500 {
		t.Fatalf("v6 65500 bytes without DF: %+v; want fragmented and delivered", a)
	}
	// Over IPv4 one byte more than the largest datagram is refused the same way.
	a = dialOne(t, d, Target{Proto: "udp", Host: "127.0.0.1", Port: portOf(s.udp.LocalAddr()), PayloadBytes: 65508, DF: true}).Attempts[0]
	if a.Error != kindTooBig || !strings.Contains(a.Detail, "route MTU ") {
		t.Fatalf("v4 65508 bytes: %+v; want too_big", a)
	}
}

// TCP payload_bytes POSTs that many bytes to /echo-size; the server counts them.
func TestDialTCPPayload(t *testing.T) {
	s := startTestServer(t)
	d := newTestDialer(5 * time.Second)
	for _, n := range []int{1, 1400, 1 << 20, maxTCPPayload} {
		r := dialOne(t, d, Target{Proto: "tcp", Host: "127.0.0.1", Port: portOf(s.httpLn.Addr()), PayloadBytes: n, Count: 2})
		for _, a := range r.Attempts {
			if !a.OK || a.ServerBytes != n || a.PayloadBytes != n {
				t.Fatalf("tcp payload %d: %+v", n, a)
			}
		}
	}
}

// A server that reads the headers and then stops reading stands for a path
// that drops full-size segments: the attempt times out naming the payload.
func TestDialTCPPayloadStalls(t *testing.T) {
	port := silentAfterHeadersServer(t)
	d := newTestDialer(300 * time.Millisecond)
	a := dialOne(t, d, Target{Proto: "tcp", Host: "127.0.0.1", Port: port, PayloadBytes: 100}).Attempts[0]
	if a.Error != kindTimeout || !strings.HasPrefix(a.Detail, "no response within 300ms after connect and sending 100 bytes: ") {
		t.Fatalf("small payload, no answer: %+v", a)
	}
	// Bigger than every socket buffer: the send itself cannot finish.
	a = dialOne(t, d, Target{Proto: "tcp", Host: "127.0.0.1", Port: port, PayloadBytes: maxTCPPayload}).Attempts[0]
	if a.Error != kindTimeout || !strings.HasPrefix(a.Detail, "send request: ") {
		t.Fatalf("16 MiB payload, peer not reading: %+v", a)
	}
}

// silentAfterHeadersServer reads a request's headers and then neither reads
// nor answers, until the test ends.
func silentAfterHeadersServer(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go bufio.NewReader(c).ReadString('\n') // the request line and more; then silence
		}
	}()
	return portOf(ln.Addr())
}

// The server side of /echo-size: exact counts, the size limit, the method.
func TestServeEchoSize(t *testing.T) {
	s := startTestServer(t)
	url := fmt.Sprintf("http://%s/echo-size", s.httpLn.Addr())
	resp, err := http.Post(url, "application/octet-stream", strings.NewReader(strings.Repeat("y", 3000)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"bytes":3000`) || !resp.Close {
		t.Fatalf("echo-size 3000: %d %q", resp.StatusCode, body)
	}
	resp, err = http.Post(url, "application/octet-stream", strings.NewReader(strings.Repeat("y", maxTCPPayload+1)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("echo-size over the limit: %d, want 400", resp.StatusCode)
	}
	resp, err = http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /echo-size: %d, want 405", resp.StatusCode)
	}
}
