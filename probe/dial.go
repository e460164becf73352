package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec is the input of `probe dial`.
type Spec struct {
	TimeoutMS   int      `json:"timeout_ms"`  // per attempt; default 2000
	Concurrency int      `json:"concurrency"` // targets dialed at once; default 64
	Targets     []Target `json:"targets"`
}

// Target is one destination; its attempts run sequentially.
type Target struct {
	ID    string `json:"id"`
	Proto string `json:"proto"` // tcp | udp | dns
	Host  string `json:"host"`  // IP or name (resolved with the pod's resolver)
	Port  int    `json:"port"`  // ignored for dns
	Count int    `json:"count"` // default 1; ignored for dns
	// MaxFailures stops a target's attempts after this many failures (0: never), so a dead
	// path costs a few timeouts instead of count of them.
	MaxFailures int `json:"max_failures"`
}

// Output is the one JSON document `probe dial` prints.
type Output struct {
	Source  Source   `json:"source"`
	Results []Result `json:"results"` // same order as spec targets
}

// Source identifies the dialing pod.
type Source struct {
	Hostname string   `json:"hostname"`
	IPs      []string `json:"ips"`
}

// Result holds the attempts for one target.
type Result struct {
	ID        string    `json:"id"`
	Proto     string    `json:"proto"`
	Host      string    `json:"host"`
	Port      int       `json:"port"`
	Attempts  []Attempt `json:"attempts"`
	Addresses []string  `json:"addresses,omitzero"` // dns only (present, maybe empty)
}

// Attempt is one connection (tcp), datagram exchange (udp) or lookup (dns).
type Attempt struct {
	OK             bool    `json:"ok"`
	Error          string  `json:"error"`      // one of the kind* constants, "" if ok
	Detail         string  `json:"detail"`     // phase + Go error text
	ConnectMS      float64 `json:"connect_ms"` // TCP handshake only (also on failure); 0 for udp/dns
	TotalMS        float64 `json:"total_ms"`   // whole attempt, including name resolution
	ServerHostname string  `json:"server_hostname"`
	ServerNode     string  `json:"server_node"`
	ClientIPSeen   string  `json:"client_ip_seen"`
}

// Error kinds; the suite and diagnosis key on these strings.
const (
	kindTimeout     = "timeout"
	kindRefused     = "refused"
	kindReset       = "reset"
	kindUnreachable = "unreachable"
	kindDNS         = "dns"
	kindOther       = "other"
)

const (
	defaultTimeoutMS   = 2000
	defaultConcurrency = 64
	maxTimeoutMS       = 60000
	maxCount           = 10000
	maxConcurrency     = 1024
	maxBody            = 64 << 10
)

func runDial(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dial", flag.ContinueOnError)
	fs.SetOutput(stderr)
	specArg := fs.String("spec", "", "dial spec as JSON, or - to read it from stdin")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *specArg == "" {
		fmt.Fprintln(stderr, "probe dial: --spec is required (JSON, or - for stdin).")
		return 2
	}
	var in io.Reader = strings.NewReader(*specArg)
	if *specArg == "-" {
		in = stdin
	}
	spec, err := parseSpec(in)
	if err != nil {
		fmt.Fprintf(stderr, "probe dial: bad spec: %v\n", err)
		return 2
	}
	d := &dialer{timeout: time.Duration(spec.TimeoutMS) * time.Millisecond, resolver: &net.Resolver{PreferGo: true}}
	out := Output{Source: localSource(), Results: d.run(ctx, spec)}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false) // details quote server bytes; keep them readable
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(stderr, "probe dial: write output: %v\n", err)
		return 1
	}
	return 0 // failed targets are data, not a probe failure
}

// parseSpec decodes and validates a spec strictly: an unknown field is more
// likely a caller bug than something to ignore silently.
func parseSpec(r io.Reader) (Spec, error) {
	var s Spec
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("invalid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return s, errors.New("unexpected data after the JSON document")
	}
	if s.TimeoutMS == 0 {
		s.TimeoutMS = defaultTimeoutMS
	}
	if s.TimeoutMS < 1 || s.TimeoutMS > maxTimeoutMS {
		return s, fmt.Errorf("timeout_ms must be 1..%d, got %d", maxTimeoutMS, s.TimeoutMS)
	}
	if s.Concurrency == 0 {
		s.Concurrency = defaultConcurrency
	}
	if s.Concurrency < 1 || s.Concurrency > maxConcurrency {
		return s, fmt.Errorf("concurrency must be 1..%d, got %d", maxConcurrency, s.Concurrency)
	}
	for i := range s.Targets {
		t := &s.Targets[i]
		switch {
		case t.Proto != "tcp" && t.Proto != "udp" && t.Proto != "dns":
			return s, fmt.Errorf("targets[%d]: proto must be tcp, udp or dns, got %q", i, t.Proto)
		case t.Host == "":
			return s, fmt.Errorf("targets[%d]: host is empty", i)
		case t.Proto != "dns" && (t.Port < 1 || t.Port > 65535):
			return s, fmt.Errorf("targets[%d]: port must be 1..65535, got %d", i, t.Port)
		case t.Count < 0 || t.Count > maxCount:
			return s, fmt.Errorf("targets[%d]: count must be 0..%d, got %d", i, maxCount, t.Count)
		case t.MaxFailures < 0:
			return s, fmt.Errorf("targets[%d]: max_failures must be >= 0, got %d", i, t.MaxFailures)
		}
		if t.Count == 0 {
			t.Count = 1
		}
	}
	return s, nil
}

// localSource reports this pod's hostname and non-loopback IPv4 addresses,
// which the suite compares with client_ip_seen to detect SNAT.
func localSource() Source {
	src := Source{IPs: []string{}}
	src.Hostname, _ = os.Hostname()
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			src.IPs = append(src.IPs, n.IP.String())
		}
	}
	slices.Sort(src.IPs)
	return src
}

type dialer struct {
	timeout  time.Duration
	resolver *net.Resolver // PreferGo so resolv.conf search/ndots apply; tests swap its Dial
}

// run dials all targets, at most spec.Concurrency at once, keeping spec order.
func (d *dialer) run(ctx context.Context, spec Spec) []Result {
	results := make([]Result, len(spec.Targets))
	sem := make(chan struct{}, spec.Concurrency)
	var wg sync.WaitGroup
	for i, t := range spec.Targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = d.target(ctx, t)
		})
	}
	wg.Wait()
	return results
}

func (d *dialer) target(ctx context.Context, t Target) Result {
	r := Result{ID: t.ID, Proto: t.Proto, Host: t.Host, Port: t.Port}
	if t.Proto == "dns" {
		a, addrs := d.lookup(ctx, t.Host)
		r.Attempts, r.Addresses = []Attempt{a}, addrs
		return r
	}
	failures := 0
	for range t.Count {
		a := d.udp
		if t.Proto == "tcp" {
			a = d.tcp
		}
		attempt := a(ctx, t)
		r.Attempts = append(r.Attempts, attempt)
		if !attempt.OK {
			failures++
			if t.MaxFailures > 0 && failures >= t.MaxFailures {
				break
			}
		}
	}
	return r
}

// tcp makes one fresh connection (no keep-alive, no pooling), so every
// attempt is a new handshake through conntrack/NAT: GET /whoami over it.
func (d *dialer) tcp(ctx context.Context, t Target) (a Attempt) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	defer func() { a.TotalMS = ms(time.Since(start)) }()

	addr, err := d.resolve(ctx, t.Host, t.Port)
	if err != nil {
		return failed(kindDNS, "resolve", err)
	}
	connectStart := time.Now()
	conn, err := (&net.Dialer{KeepAlive: -1}).DialContext(ctx, "tcp", addr)
	connectMS := ms(time.Since(connectStart))
	if err != nil {
		a = failed(classify(err), "connect", err)
		a.ConnectMS = connectMS
		return a
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)

	a = d.request(conn, t)
	a.ConnectMS = connectMS
	return a
}

func (d *dialer) request(conn net.Conn, t Target) Attempt {
	req := "GET /whoami HTTP/1.1\r\nHost: " + net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) +
		"\r\nUser-Agent: netconform-probe\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return failed(classify(err), "send request", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return d.readFailed(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return d.readFailed(err)
	}
	if resp.StatusCode != http.StatusOK {
		return Attempt{Error: kindOther, Detail: fmt.Sprintf("bad response: HTTP %s", resp.Status)}
	}
	return whoamiAttempt(body)
}

// readFailed words a timeout after a successful connect as "no response",
// which points diagnosis at the return path rather than at SYNs.
func (d *dialer) readFailed(err error) Attempt {
	kind := classify(err)
	if kind == kindTimeout {
		return failed(kind, fmt.Sprintf("no response within %v after connect", d.timeout), err)
	}
	return failed(kind, "read response", err)
}

// udp sends one datagram from a fresh socket and waits for the whoami reply.
func (d *dialer) udp(ctx context.Context, t Target) (a Attempt) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	defer func() { a.TotalMS = ms(time.Since(start)) }()

	addr, err := d.resolve(ctx, t.Host, t.Port)
	if err != nil {
		return failed(kindDNS, "resolve", err)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "udp", addr) // connected socket: ICMP errors surface as refused/unreachable
	if err != nil {
		return failed(classify(err), "socket", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte("whoami\n")); err != nil {
		return failed(classify(err), "send datagram", err)
	}
	buf := make([]byte, maxBody)
	n, err := conn.Read(buf)
	if err != nil {
		kind := classify(err)
		if kind == kindTimeout {
			return failed(kind, fmt.Sprintf("no reply within %v", d.timeout), err)
		}
		return failed(kind, "read reply", err)
	}
	return whoamiAttempt(buf[:n])
}

func whoamiAttempt(body []byte) Attempt {
	var w Whoami
	if err := json.Unmarshal(body, &w); err != nil {
		return Attempt{Error: kindOther, Detail: fmt.Sprintf("bad response: %v: %.200q", err, body)}
	}
	return Attempt{OK: true, ServerHostname: w.Hostname, ServerNode: w.Node, ClientIPSeen: w.ClientIP}
}

// lookup resolves a name the way an application in the pod would.
func (d *dialer) lookup(ctx context.Context, host string) (Attempt, []string) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	ips, err := d.resolver.LookupNetIP(ctx, "ip", host)
	var a Attempt
	if err != nil {
		a = failed(kindDNS, "resolve", err)
	} else {
		a.OK = true
	}
	a.TotalMS = ms(time.Since(start))
	for i := range ips {
		ips[i] = ips[i].Unmap() // the Go resolver may return IPv4 as ::ffff:a.b.c.d
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	addrs := []string{}
	for _, ip := range slices.Compact(ips) {
		addrs = append(addrs, ip.String())
	}
	return a, addrs
}

// resolve returns "ip:port" for host, preferring IPv4 like the lab does.
func (d *dialer) resolve(ctx context.Context, host string, port int) (string, error) {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ips, err := d.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return "", err
		}
		if len(ips) == 0 {
			return "", &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
		ip = ips[0].Unmap()
		for _, c := range ips {
			if c.Unmap().Is4() {
				ip = c.Unmap()
				break
			}
		}
	}
	return netip.AddrPortFrom(ip, uint16(port)).String(), nil
}

func failed(kind, phase string, err error) Attempt {
	return Attempt{Error: kind, Detail: phase + ": " + err.Error()}
}

// classify maps a Go network error to a contract error kind. Order matters:
// a DNS timeout is "dns", and specific errnos win over the generic timeout.
func classify(err error) string {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &dnsErr):
		return kindDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return kindRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return kindReset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EHOSTDOWN), errors.Is(err, syscall.ENETDOWN):
		return kindUnreachable
	case errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return kindTimeout
	}
	return kindOther
}

// ms converts to milliseconds with microsecond resolution.
func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
