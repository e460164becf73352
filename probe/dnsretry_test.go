package main

import (
	"context"
	"encoding/binary"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDNS answers A queries on a loopback UDP port as reply says: "drop" (no
// answer: a lost datagram), "nxdomain", or anything else: 10.1.2.3. It sees
// query number n (1-based).
func fakeDNS(t *testing.T, reply func(n int) string) *dialer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var seen atomic.Int32
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			how := reply(int(seen.Add(1)))
			if how == "drop" || n < 12 {
				continue
			}
			q := buf[:n]
			resp := append([]byte{}, q[:12]...)
			flags := uint16(0x8180) // response, recursion desired + available, NOERROR
			ancount := uint16(1)
			if how == "nxdomain" {
				flags, ancount = 0x8183, 0
			}
			binary.BigEndian.PutUint16(resp[2:], flags)
			binary.BigEndian.PutUint16(resp[6:], ancount)
			binary.BigEndian.PutUint16(resp[8:], 0)
			binary.BigEndian.PutUint16(resp[10:], 0)
			end := 12 // the question as asked: its name's labels, then type and class (not the EDNS record after it)
			for end < n && q[end] != 0 {
				end += int(q[end]) + 1
			}
			resp = append(resp, q[12:min(end+5, n)]...)
			if ancount == 1 {
				resp = append(resp, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 1, 2, 3)
			}
			pc.WriteTo(resp, from)
		}
	}()
	d := newTestDialer(300 * time.Millisecond)
	d.resolver.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", pc.LocalAddr().String())
	}
	return d
}

func TestDNSLostQueryIsRetried(t *testing.T) {
	d := fakeDNS(t, func(n int) string {
		if n == 1 {
			return "drop"
		}
		return "answer"
	})
	r := dialOne(t, d, Target{Proto: "dns", Host: "nc-test.example.", Family: "4", Count: 3})
	if len(r.Attempts) != 2 || r.Attempts[0].OK || r.Attempts[0].Error != kindDNS || !r.Attempts[1].OK {
		t.Fatalf("attempts = %+v, want a timed-out lookup, then an answered one", r.Attempts)
	}
	if r.Stopped != stoppedAnswered || !slices.Equal(r.Addresses, []string{"10.1.2.3"}) || r.Attempts[1].Index != 2 {
		t.Fatalf("stopped %q, addresses %v, want answered with 10.1.2.3", r.Stopped, r.Addresses)
	}
}

func TestDNSNeverAnsweredUsesEveryLookup(t *testing.T) {
	d := fakeDNS(t, func(int) string { return "drop" })
	r := dialOne(t, d, Target{Proto: "dns", Host: "nc-test.example.", Family: "4", Count: 3})
	if len(r.Attempts) != 3 || r.Stopped != stoppedCount || len(r.Addresses) != 0 {
		t.Fatalf("attempts %d, stopped %q, addresses %v: want 3 unanswered lookups", len(r.Attempts), r.Stopped, r.Addresses)
	}
	for _, a := range r.Attempts {
		if a.OK || a.Error != kindDNS {
			t.Fatalf("attempt %+v, want a failed dns lookup", a)
		}
	}
}

func TestDNSNoSuchNameIsAnAnswer(t *testing.T) {
	d := fakeDNS(t, func(int) string { return "nxdomain" })
	r := dialOne(t, d, Target{Proto: "dns", Host: "nc-test.example.", Family: "4", Count: 3})
	if len(r.Attempts) != 1 || r.Attempts[0].OK || r.Stopped != stoppedAnswered {
		t.Fatalf("attempts %+v, stopped %q: want one failed lookup, not retried", r.Attempts, r.Stopped)
	}
}
