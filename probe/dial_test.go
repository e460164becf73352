package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestDialTCPFreshConnections(t *testing.T) {
	t.Setenv("NODE_NAME", "node-x")
	s := startTestServer(t)
	host, _ := os.Hostname()
	r := dialOne(t, newTestDialer(2*time.Second), Target{ID: "a", Proto: "tcp", Host: "127.0.0.1", Port: portOf(s.httpLn.Addr()), Count: 5})
	if len(r.Attempts) != 5 {
		t.Fatalf("got %d attempts, want 5", len(r.Attempts))
	}
	for i, a := range r.Attempts {
		if !a.OK || a.Error != "" || a.Detail != "" {
			t.Fatalf("attempt %d failed: %+v", i, a)
		}
		if a.ServerHostname != host || a.ServerNode != "node-x" || a.ClientIPSeen != "127.0.0.1" {
			t.Fatalf("attempt %d whoami fields wrong: %+v", i, a)
		}
		if a.ConnectMS <= 0 || a.TotalMS < a.ConnectMS {
			t.Fatalf("attempt %d timings wrong: connect %v total %v", i, a.ConnectMS, a.TotalMS)
		}
	}
	if n := s.acceptedHTTPConns(); n != 5 {
		t.Fatalf("server accepted %d connections for 5 attempts; each attempt must be a new connection", n)
	}
}

func TestDialTCPByName(t *testing.T) {
	s := startTestServer(t)
	// "localhost" comes from /etc/hosts, so this resolves without any DNS traffic.
	r := dialOne(t, newTestDialer(2*time.Second), Target{Proto: "tcp", Host: "localhost", Port: portOf(s.httpLn.Addr())})
	if a := r.Attempts[0]; !a.OK || a.ClientIPSeen != "127.0.0.1" {
		t.Fatalf("dial localhost: %+v", a)
	}
}

func TestDialTCPRefused(t *testing.T) {
	r := dialOne(t, newTestDialer(2*time.Second), Target{Proto: "tcp", Host: "127.0.0.1", Port: closedPort(t, "tcp")})
	a := r.Attempts[0]
	if a.OK || a.Error != kindRefused || !strings.HasPrefix(a.Detail, "connect: ") || !strings.Contains(a.Detail, "refused") {
		t.Fatalf("closed port: %+v, want refused at connect", a)
	}
}

// A server that accepts and never answers: the connect succeeds, the
// response times out.
func TestDialTCPNoResponseTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // keep open, say nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	r := dialOne(t, newTestDialer(200*time.Millisecond), Target{Proto: "tcp", Host: "127.0.0.1", Port: portOf(ln.Addr())})
	a := r.Attempts[0]
	if a.OK || a.Error != kindTimeout || !strings.HasPrefix(a.Detail, "no response within 200ms after connect") {
		t.Fatalf("silent server: %+v, want timeout with 'no response' detail", a)
	}
	if a.TotalMS < 200 || a.ConnectMS >= a.TotalMS {
		t.Fatalf("timings: connect %v total %v", a.ConnectMS, a.TotalMS)
	}
}

// A server that reads the request and aborts the connection with RST.
func TestDialTCPReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			c.Read(make([]byte, 1024))
			c.(*net.TCPConn).SetLinger(0) // close sends RST instead of FIN
			c.Close()
		}
	}()
	r := dialOne(t, newTestDialer(2*time.Second), Target{Proto: "tcp", Host: "127.0.0.1", Port: portOf(ln.Addr())})
	if a := r.Attempts[0]; a.OK || a.Error != kindReset {
		t.Fatalf("RST server: %+v, want reset", a)
	}
}

// A listener with a full accept queue drops new SYNs, so connect itself
// times out (like a blackholed path).
func TestDialTCPConnectTimeout(t *testing.T) {
	port := fullBacklogListener(t)
	r := dialOne(t, newTestDialer(200*time.Millisecond), Target{Proto: "tcp", Host: "127.0.0.1", Port: port})
	a := r.Attempts[0]
	if a.OK || a.Error != kindTimeout || !strings.HasPrefix(a.Detail, "connect: ") {
		t.Fatalf("full backlog: %+v, want timeout at connect", a)
	}
	if a.ConnectMS < 200 {
		t.Fatalf("connect_ms = %v, want >= 200 (time spent connecting)", a.ConnectMS)
	}
}

// fullBacklogListener listens with backlog 0 and never accepts, then fills
// the accept queue until a connect times out.
func fullBacklogListener(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for range 16 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			if classify(err) != kindTimeout {
				t.Fatalf("filling backlog: %v", err)
			}
			return port
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("accept queue never filled; cannot simulate a dropped SYN here")
	return 0
}

func TestDialUDP(t *testing.T) {
	t.Setenv("NODE_NAME", "node-u")
	s := startTestServer(t)
	r := dialOne(t, newTestDialer(2*time.Second), Target{Proto: "udp", Host: "127.0.0.1", Port: portOf(s.udp.LocalAddr()), Count: 3})
	if len(r.Attempts) != 3 {
		t.Fatalf("got %d attempts, want 3", len(r.Attempts))
	}
	for _, a := range r.Attempts {
		if !a.OK || a.ServerNode != "node-u" || a.ClientIPSeen != "127.0.0.1" || a.ConnectMS != 0 {
			t.Fatalf("udp attempt: %+v", a)
		}
	}
}

func TestDialUDPRefused(t *testing.T) {
	r := dialOne(t, newTestDialer(2*time.Second), Target{Proto: "udp", Host: "127.0.0.1", Port: closedPort(t, "udp")})
	if a := r.Attempts[0]; a.OK || a.Error != kindRefused {
		t.Fatalf("udp to closed port: %+v, want refused (ICMP port unreachable)", a)
	}
}

func TestDialUDPNoReply(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // bound, never replies
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	r := dialOne(t, newTestDialer(200*time.Millisecond), Target{Proto: "udp", Host: "127.0.0.1", Port: portOf(pc.LocalAddr())})
	if a := r.Attempts[0]; a.OK || a.Error != kindTimeout || !strings.HasPrefix(a.Detail, "no reply within 200ms") {
		t.Fatalf("silent udp: %+v, want timeout", a)
	}
}

func TestDialDNSFromHostsFile(t *testing.T) {
	r := dialOne(t, newTestDialer(2*time.Second), Target{Proto: "dns", Host: "localhost"})
	if a := r.Attempts[0]; !a.OK || a.TotalMS <= 0 {
		t.Fatalf("lookup localhost: %+v", a)
	}
	if !slices.Contains(r.Addresses, "127.0.0.1") || !slices.IsSorted(r.Addresses) {
		t.Fatalf("addresses = %v, want sorted and containing 127.0.0.1", r.Addresses)
	}
}

// deadDNSDialer points the resolver at a closed 127.0.0.1 port, so lookups
// fail locally instead of reaching the machine's nameserver.
func deadDNSDialer(t *testing.T) *dialer {
	port := closedPort(t, "udp")
	d := newTestDialer(time.Second)
	d.resolver.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	}
	return d
}

func TestDialDNSFailure(t *testing.T) {
	d := deadDNSDialer(t)
	r := dialOne(t, d, Target{Proto: "dns", Host: "nc-does-not-exist"})
	a := r.Attempts[0]
	if a.OK || a.Error != kindDNS || !strings.HasPrefix(a.Detail, "resolve: lookup nc-does-not-exist") {
		t.Fatalf("failed lookup: %+v, want dns", a)
	}
	if r.Addresses == nil || len(r.Addresses) != 0 {
		t.Fatalf("addresses = %#v, want empty non-nil (printed as [])", r.Addresses)
	}
	// A tcp target whose name does not resolve fails as dns, not as connect.
	r = dialOne(t, d, Target{Proto: "tcp", Host: "nc-does-not-exist", Port: 8080})
	if a := r.Attempts[0]; a.Error != kindDNS || a.ConnectMS != 0 {
		t.Fatalf("tcp to unresolvable name: %+v, want dns", a)
	}
}

func TestDialConcurrency(t *testing.T) {
	// Each target takes the full timeout (silent UDP peer), so the wall time
	// shows whether targets overlap.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	tg := Target{Proto: "udp", Host: "127.0.0.1", Port: portOf(pc.LocalAddr()), Count: 1}
	spec := func(conc int) Spec { return Spec{Concurrency: conc, Targets: []Target{tg, tg, tg, tg}} }
	d := newTestDialer(300 * time.Millisecond)

	start := time.Now()
	d.run(context.Background(), spec(1))
	if el := time.Since(start); el < 1200*time.Millisecond {
		t.Fatalf("concurrency 1 took %v, want >= 1.2s (sequential)", el)
	}
	start = time.Now()
	res := d.run(context.Background(), spec(4))
	if el := time.Since(start); el >= 1200*time.Millisecond {
		t.Fatalf("concurrency 4 took %v, want well under 1.2s (parallel)", el)
	}
	if len(res) != 4 {
		t.Fatalf("got %d results", len(res))
	}
}

func TestDialKeepsSpecOrder(t *testing.T) {
	s := startTestServer(t)
	var targets []Target
	for i := range 20 {
		targets = append(targets, Target{ID: strconv.Itoa(i), Proto: "tcp", Host: "127.0.0.1", Port: portOf(s.httpLn.Addr()), Count: 1})
	}
	res := newTestDialer(2*time.Second).run(context.Background(), Spec{Concurrency: 8, Targets: targets})
	for i, r := range res {
		if r.ID != strconv.Itoa(i) || !r.Attempts[0].OK {
			t.Fatalf("result %d = %+v", i, r)
		}
	}
}

func TestClassify(t *testing.T) {
	op := func(op string, errno syscall.Errno) error {
		return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, errno)}
	}
	cases := []struct {
		err  error
		want string
	}{
		{op("connect", syscall.ECONNREFUSED), kindRefused},
		{op("read", syscall.ECONNRESET), kindReset},
		{op("write", syscall.EPIPE), kindReset},
		{op("connect", syscall.EHOSTUNREACH), kindUnreachable},
		{op("connect", syscall.ENETUNREACH), kindUnreachable},
		{op("connect", syscall.ETIMEDOUT), kindTimeout},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, kindTimeout},
		{context.DeadlineExceeded, kindTimeout},
		{&net.DNSError{Err: "i/o timeout", Name: "x", IsTimeout: true}, kindDNS},
		{&net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}, kindDNS},
		{io.EOF, kindOther},
		{errors.New("boom"), kindOther},
	}
	for _, c := range cases {
		if got := classify(c.err); got != c.want {
			t.Errorf("classify(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestParseSpec(t *testing.T) {
	s, err := parseSpec(strings.NewReader(`{"targets":[{"id":"x","proto":"dns","host":"nc-server"},{"id":"y","proto":"tcp","host":"10.0.0.1","port":8080}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.TimeoutMS != 2000 || s.Concurrency != 64 || s.Targets[1].Count != 1 {
		t.Fatalf("defaults not applied: %+v", s)
	}
	s, err = parseSpec(strings.NewReader(`{"targets":[{"proto":"udp","host":"fd00::1","port":8081,"family":"6","payload_bytes":1452,"df":true,"want_backends":3,"count":40},{"proto":"dns","host":"a","family":"4"}]}`))
	if err != nil || s.Targets[0] != (Target{Proto: "udp", Host: "fd00::1", Port: 8081, Family: "6", PayloadBytes: 1452, DF: true, WantBackends: 3, Count: 40}) {
		t.Fatalf("new fields: %+v, %v", s.Targets, err)
	}
	bad := map[string]string{
		`{"targets":[{"proto":"tcp","host":"a","port":80,"cont":2}]}`:                 "unknown field",
		`{"targets":[{"proto":"http","host":"a","port":80}]}`:                         "proto must be",
		`{"targets":[{"proto":"tcp","host":"a"}]}`:                                    "port must be",
		`{"targets":[{"proto":"udp","host":"a","port":70000}]}`:                       "port must be",
		`{"targets":[{"proto":"tcp","host":"","port":80}]}`:                           "host is empty",
		`{"targets":[{"proto":"tcp","host":"a","port":80,"count":-1}]}`:               "count must be",
		`{"targets":[{"proto":"tcp","host":"a","port":80,"count":100001}]}`:           "count must be",
		`{"targets":[{"proto":"tcp","host":"a","port":80,"want_backends":-1}]}`:       "want_backends must be",
		`{"targets":[{"proto":"dns","host":"a","want_backends":3}]}`:                  "tcp and udp only",
		`{"targets":[{"proto":"dns","host":"a","df":true}]}`:                          "tcp and udp only",
		`{"targets":[{"proto":"tcp","host":"a","port":80,"df":true}]}`:                "df applies to udp only",
		`{"targets":[{"proto":"udp","host":"a","port":80,"payload_bytes":65528}]}`:    "payload_bytes must be 0..65527 for udp",
		`{"targets":[{"proto":"tcp","host":"a","port":80,"payload_bytes":16777217}]}`: "payload_bytes must be 0..16777216 for tcp",
		`{"targets":[{"proto":"udp","host":"a","port":80,"payload_bytes":-1}]}`:       "payload_bytes must be",
		`{"targets":[{"proto":"dns","host":"a","family":"ipv6"}]}`:                    "family must be",
		`{"targets":[{"proto":"tcp","host":"10.0.0.1","port":80,"family":"6"}]}`:      "not an IPv6 address",
		`{"targets":[{"proto":"udp","host":"fd00::1","port":80,"family":"4"}]}`:       "not an IPv4 address",
		`{"timeout_ms":-5,"targets":[]}`:                                              "timeout_ms must be",
		`{"concurrency":100000,"targets":[]}`:                                         "concurrency must be",
		`{"targets":[]} {"targets":[]}`:                                               "unexpected data",
		`{"targets":[`:                                                                "invalid JSON",
		`{"targets":"x"}`:                                                             "invalid JSON",
	}
	for in, want := range bad {
		if _, err := parseSpec(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseSpec(%s) error = %v, want it to mention %q", in, err, want)
		}
	}
}

func TestRunDialExitCodes(t *testing.T) {
	ctx := context.Background()
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"dial"}, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--spec is required") {
		t.Fatalf("no spec: code %d stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run(ctx, []string{"dial", "--spec", `{"targets":[{"proto":"x"}]}`}, nil, &out, &errb); code != 2 || !strings.HasPrefix(errb.String(), "probe dial: bad spec: ") {
		t.Fatalf("bad spec: code %d stderr %q", code, errb.String())
	}
	if out.Len() != 0 {
		t.Fatalf("bad spec printed output: %q", out.String())
	}
	if code := run(ctx, []string{"frobnicate"}, nil, &out, &errb); code != 2 {
		t.Fatalf("unknown command: code %d", code)
	}
}

// TestRunDialOutputShape checks the exact JSON keys of the contract, read
// from stdin, with a failing target still giving exit 0.
func TestRunDialOutputShape(t *testing.T) {
	s := startTestServer(t)
	spec := `{"timeout_ms": 1000, "concurrency": 2, "targets": [
		{"id": "ok", "proto": "tcp", "host": "127.0.0.1", "port": ` + strconv.Itoa(portOf(s.httpLn.Addr())) + `, "count": 2},
		{"id": "closed", "proto": "tcp", "host": "127.0.0.1", "port": ` + strconv.Itoa(closedPort(t, "tcp")) + `},
		{"id": "name", "proto": "dns", "host": "localhost", "port": 53}]}`
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"dial", "--spec", "-"}, strings.NewReader(spec), &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	var doc struct {
		Source  map[string]json.RawMessage   `json:"source"`
		Results []map[string]json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("output is not JSON: %v: %s", err, out.String())
	}
	if got := sortedKeys(doc.Source); !slices.Equal(got, []string{"hostname", "ips"}) {
		t.Fatalf("source keys = %v", got)
	}
	if string(doc.Source["ips"]) == "null" {
		t.Fatal("source.ips must be a list, not null")
	}
	resultKeys := []string{"attempts", "host", "id", "port", "proto", "stopped"}
	if got := sortedKeys(doc.Results[0]); !slices.Equal(got, resultKeys) {
		t.Fatalf("tcp result keys = %v, want %v (no addresses)", got, resultKeys)
	}
	if got := sortedKeys(doc.Results[2]); !slices.Equal(got, append([]string{"addresses"}, resultKeys...)) {
		t.Fatalf("dns result keys = %v, want addresses too", got)
	}
	var attempts []map[string]any
	json.Unmarshal(doc.Results[1]["attempts"], &attempts)
	want := []string{"client_ip_seen", "client_port_seen", "connect_ms", "detail", "error", "index", "local_port", "ok",
		"payload_bytes", "server_bytes", "server_hostname", "server_node", "start_ms", "total_ms"}
	if got := sortedKeys(attempts[0]); !slices.Equal(got, want) {
		t.Fatalf("attempt keys = %v, want %v", got, want)
	}
	if attempts[0]["error"] != "refused" || attempts[0]["ok"] != false {
		t.Fatalf("closed port attempt = %v", attempts[0])
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestDialStopsAfterMaxFailures(t *testing.T) {
	port := closedPort(t, "tcp")
	r := dialOne(t, newTestDialer(time.Second), Target{ID: "x", Proto: "tcp", Host: "127.0.0.1", Port: port,
		Count: 10, MaxFailures: 2})
	if len(r.Attempts) != 2 || r.Stopped != stoppedMaxFailures {
		t.Fatalf("dead target with max_failures 2: %d attempts, stopped %q; want 2, max_failures", len(r.Attempts), r.Stopped)
	}
	srv := startTestServer(t)
	r = dialOne(t, newTestDialer(time.Second), Target{ID: "y", Proto: "tcp", Host: "127.0.0.1",
		Port: portOf(srv.httpLn.Addr()), Count: 5, MaxFailures: 1})
	if len(r.Attempts) != 5 || r.Stopped != stoppedCount {
		t.Fatalf("healthy target with max_failures 1: %d attempts, stopped %q; want all 5, count", len(r.Attempts), r.Stopped)
	}
}
