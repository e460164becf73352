package main

import (
	"context"
	"encoding/binary"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startDualStackServer runs serve the way pods run it: bound to all
// addresses (""), ephemeral ports.
func startDualStackServer(t *testing.T) *server {
	t.Helper()
	s, err := startServer(serveConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// serve with no --bind answers IPv4 and IPv6 clients on every port, and the
// client address it reports is plain ("127.0.0.1", not "::ffff:127.0.0.1").
func TestServeAndDialBothFamilies(t *testing.T) {
	s := startDualStackServer(t)
	d := newTestDialer(2 * time.Second)
	for _, host := range []string{"127.0.0.1", "::1"} {
		for proto, port := range map[string]int{"tcp": portOf(s.httpLn.Addr()), "udp": portOf(s.udp.LocalAddr())} {
			r := dialOne(t, d, Target{Proto: proto, Host: host, Port: port, Count: 2})
			for _, a := range r.Attempts {
				if !a.OK || a.ClientIPSeen != host || a.ClientPortSeen != a.LocalPort {
					t.Fatalf("%s to %s: %+v; want ok, client_ip_seen %s and our local port", proto, host, a, host)
				}
			}
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(portOf(s.holdLn.Addr()))), 2*time.Second)
		if err != nil {
			t.Fatalf("hold port over %s: %v", host, err)
		}
		c.Close()
	}
}

func TestDialIPv6Errors(t *testing.T) {
	d := newTestDialer(2 * time.Second)
	if a := dialOne(t, d, Target{Proto: "tcp", Host: "::1", Port: closedPort6(t)}).Attempts[0]; a.Error != kindRefused || !strings.Contains(a.Detail, "[::1]:") {
		t.Fatalf("closed v6 port: %+v; want refused naming [::1]:port", a)
	}
}

func closedPort6(t *testing.T) int {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return portOf(ln.Addr())
}

// dnsServer is a minimal authoritative DNS server on 127.0.0.1 that answers
// every name with 127.0.0.1 (A) and ::1 (AAAA) and records the query types.
type dnsServer struct {
	pc     net.PacketConn
	mu     sync.Mutex
	qtypes []uint16
}

const (
	qtypeA    = 1
	qtypeAAAA = 28
)

func startDNSServer(t *testing.T) *dnsServer {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{pc: pc}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := s.answer(buf[:n]); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	return s
}

func (s *dnsServer) answer(q []byte) []byte {
	i := 12 // header; then the question's name as labels, then type and class
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil
	}
	qend := i + 5
	qtype := binary.BigEndian.Uint16(q[i+1:])
	s.mu.Lock()
	s.qtypes = append(s.qtypes, qtype)
	s.mu.Unlock()
	var rdata []byte
	switch qtype {
	case qtypeA:
		rdata = net.IPv4(127, 0, 0, 1).To4()
	case qtypeAAAA:
		rdata = net.IPv6loopback
	}
	resp := append([]byte{q[0], q[1], 0x85, 0x80, 0, 1, 0, 0, 0, 0, 0, 0}, q[12:qend]...) // QR AA RD RA
	if rdata != nil {
		resp[7] = 1 // one answer: name -> question, type, class IN, TTL 60
		resp = append(resp, 0xc0, 12, 0, byte(qtype), 0, 1, 0, 0, 0, 60, 0, byte(len(rdata)))
		resp = append(resp, rdata...)
	}
	return resp
}

func (s *dnsServer) seen() []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := slices.Clone(s.qtypes)
	s.qtypes = nil
	slices.Sort(q)
	return slices.Compact(q)
}

func (s *dnsServer) dialer(timeout time.Duration) *dialer {
	d := newTestDialer(timeout)
	d.resolver.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, s.pc.LocalAddr().String())
	}
	return d
}

// family "4"/"6" asks for A or AAAA records only; "" asks for both.
func TestDialDNSFamily(t *testing.T) {
	dns := startDNSServer(t)
	d := dns.dialer(2 * time.Second)
	for _, tc := range []struct {
		family string
		addrs  []string
		qtypes []uint16
	}{
		{"", []string{"127.0.0.1", "::1"}, []uint16{qtypeA, qtypeAAAA}},
		{"4", []string{"127.0.0.1"}, []uint16{qtypeA}},
		{"6", []string{"::1"}, []uint16{qtypeAAAA}},
	} {
		r := dialOne(t, d, Target{Proto: "dns", Host: "dual.nctest.", Family: tc.family})
		if !r.Attempts[0].OK || !slices.Equal(r.Addresses, tc.addrs) {
			t.Fatalf("family %q: %+v addresses %v; want %v", tc.family, r.Attempts[0], r.Addresses, tc.addrs)
		}
		if got := dns.seen(); !slices.Equal(got, tc.qtypes) {
			t.Fatalf("family %q: server saw query types %v, want %v", tc.family, got, tc.qtypes)
		}
	}
}

// tcp and udp targets by name resolve within the family asked; with none
// they prefer IPv4.
func TestDialByNameFamily(t *testing.T) {
	dns := startDNSServer(t)
	s := startDualStackServer(t)
	d := dns.dialer(2 * time.Second)
	for family, want := range map[string]string{"": "127.0.0.1", "4": "127.0.0.1", "6": "::1"} {
		for proto, port := range map[string]int{"tcp": portOf(s.httpLn.Addr()), "udp": portOf(s.udp.LocalAddr())} {
			a := dialOne(t, d, Target{Proto: proto, Host: "dual.nctest.", Port: port, Family: family}).Attempts[0]
			if !a.OK || a.ClientIPSeen != want {
				t.Fatalf("%s by name, family %q: %+v; want the server to see %s", proto, family, a, want)
			}
		}
	}
}
