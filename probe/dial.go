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
	ID     string `json:"id"`
	Proto  string `json:"proto"`  // tcp | udp | dns
	Host   string `json:"host"`   // IP (v4 or v6) or name (resolved with the pod's resolver)
	Port   int    `json:"port"`   // ignored for dns
	Count  int    `json:"count"`  // default 1; the upper bound with want_backends; dns: lookups, until one is answered
	Family string `json:"family"` // "4" | "6" | "" (any): which addresses a name resolves to
	// MaxFailures stops a target's attempts after this many failures (0: never), so a dead
	// path costs a few timeouts instead of count of them.
	MaxFailures int `json:"max_failures"`
	// WantBackends stops a target's attempts once this many distinct server hostnames
	// answered (0: off): a Service check dials until every backend was seen.
	WantBackends int `json:"want_backends"`
	// PayloadBytes: udp sends a datagram of exactly this many payload bytes; tcp POSTs
	// this many bytes to /echo-size. 0: the small whoami request.
	PayloadBytes int  `json:"payload_bytes"`
	DF           bool `json:"df"` // udp: never fragment (IP_PMTUDISC_DO); tcp always sends DF
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
	Stopped   string    `json:"stopped"`            // why attempts ended: backends | count | max_failures
	Addresses []string  `json:"addresses,omitzero"` // dns only (present, maybe empty)
}

// Attempt is one connection (tcp), datagram exchange (udp) or lookup (dns).
type Attempt struct {
	Index          int     `json:"index"`    // 1-based position among the target's attempts
	StartMS        float64 `json:"start_ms"` // since the target's first attempt started
	OK             bool    `json:"ok"`
	Error          string  `json:"error"`         // one of the kind* constants, "" if ok
	Detail         string  `json:"detail"`        // phase + Go error text
	ConnectMS      float64 `json:"connect_ms"`    // TCP handshake only (also on failure); 0 for udp/dns
	TotalMS        float64 `json:"total_ms"`      // whole attempt, including name resolution
	LocalPort      int     `json:"local_port"`    // tcp/udp source port (also of an unanswered SYN); 0 if none
	PayloadBytes   int     `json:"payload_bytes"` // the target's payload_bytes
	ServerBytes    int     `json:"server_bytes"`  // payload bytes the server reported receiving
	ServerHostname string  `json:"server_hostname"`
	ServerNode     string  `json:"server_node"`
	ClientIPSeen   string  `json:"client_ip_seen"`
	ClientPortSeen int     `json:"client_port_seen"` // != local_port when a NAT rewrote the port
}

// Error kinds; the suite and diagnosis key on these strings.
const (
	kindTimeout     = "timeout"
	kindRefused     = "refused"
	kindReset       = "reset"
	kindUnreachable = "unreachable"
	kindDNS         = "dns"
	kindTooBig      = "too_big" // EMSGSIZE: larger than the route MTU with DF set
	kindOther       = "other"
)

// Why a target's attempts ended (Result.Stopped).
const (
	stoppedBackends    = "backends"
	stoppedCount       = "count"
	stoppedMaxFailures = "max_failures"
	stoppedAnswered    = "answered" // dns: a lookup got an answer (addresses or "no such name")
)

const (
	defaultTimeoutMS   = 2000
	defaultConcurrency = 64
	maxTimeoutMS       = 60000
	maxCount           = 100000 // want_backends over 1000 backends at a 1e-9 miss target needs ~35000
	maxConcurrency     = 1024
	maxBody            = 64 << 10
	maxUDPPayload      = 65527    // IPv6 (IPv4 allows 65507; more fails as too_big)
	maxTCPPayload      = 16 << 20 // also what /echo-size accepts
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
		case t.Family != "" && t.Family != "4" && t.Family != "6":
			return s, fmt.Errorf("targets[%d]: family must be \"4\", \"6\" or \"\", got %q", i, t.Family)
		case t.Family != "" && !familyMatches(t.Host, t.Family):
			return s, fmt.Errorf("targets[%d]: host %s is not an IPv%s address", i, t.Host, t.Family)
		case t.Proto == "dns" && (t.WantBackends != 0 || t.PayloadBytes != 0 || t.DF):
			return s, fmt.Errorf("targets[%d]: want_backends, payload_bytes and df apply to tcp and udp only", i)
		case t.WantBackends < 0:
			return s, fmt.Errorf("targets[%d]: want_backends must be >= 0, got %d", i, t.WantBackends)
		case t.Proto == "udp" && (t.PayloadBytes < 0 || t.PayloadBytes > maxUDPPayload):
			return s, fmt.Errorf("targets[%d]: payload_bytes must be 0..%d for udp, got %d", i, maxUDPPayload, t.PayloadBytes)
		case t.Proto == "tcp" && (t.PayloadBytes < 0 || t.PayloadBytes > maxTCPPayload):
			return s, fmt.Errorf("targets[%d]: payload_bytes must be 0..%d for tcp, got %d", i, maxTCPPayload, t.PayloadBytes)
		case t.Proto == "tcp" && t.DF:
			return s, fmt.Errorf("targets[%d]: df applies to udp only (Linux TCP always sends DF)", i)
		}
		if t.Count == 0 {
			t.Count = 1
		}
	}
	return s, nil
}

// familyMatches: a name may resolve to either family; an IP literal must be of the one asked.
func familyMatches(host, family string) bool {
	ip, err := netip.ParseAddr(host)
	return err != nil || (family == "4") == ip.Unmap().Is4()
}

// localSource reports this pod's hostname and its non-loopback, non-link-local
// addresses (IPv4 first, then IPv6), which the suite compares with
// client_ip_seen to detect SNAT.
func localSource() Source {
	src := Source{IPs: []string{}}
	src.Hostname, _ = os.Hostname()
	addrs, _ := net.InterfaceAddrs()
	var ips []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ip, _ := netip.AddrFromSlice(n.IP)
			if ip = ip.Unmap(); ip.IsValid() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
				ips = append(ips, ip)
			}
		}
	}
	slices.SortFunc(ips, netip.Addr.Compare) // IPv4 sorts before IPv6
	for _, ip := range ips {
		src.IPs = append(src.IPs, ip.String())
	}
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
		sem <- struct{}{} // before starting it: a 40000-target spec runs concurrency goroutines, not 40000
		wg.Go(func() {
			defer func() { <-sem }()
			results[i] = d.target(ctx, t)
		})
	}
	wg.Wait()
	return results
}

func (d *dialer) target(ctx context.Context, t Target) Result {
	r := Result{ID: t.ID, Proto: t.Proto, Host: t.Host, Port: t.Port, Stopped: stoppedCount}
	if t.Proto == "dns" {
		return d.lookups(ctx, t, r)
	}
	attempt := d.udp
	if t.Proto == "tcp" {
		attempt = d.tcp
	}
	first := time.Now()
	failures := 0
	backends := map[string]bool{}
	for i := range t.Count {
		startMS := ms(time.Since(first))
		a := attempt(ctx, t)
		a.Index, a.StartMS, a.PayloadBytes = i+1, startMS, t.PayloadBytes
		r.Attempts = append(r.Attempts, a)
		if a.OK {
			backends[a.ServerHostname] = true
		} else {
			failures++
		}
		if t.WantBackends > 0 && len(backends) >= t.WantBackends {
			r.Stopped = stoppedBackends
			break
		}
		if t.MaxFailures > 0 && failures >= t.MaxFailures {
			r.Stopped = stoppedMaxFailures
			break
		}
	}
	return r
}

// tcp makes one fresh connection (no keep-alive, no pooling), so every
// attempt is a new handshake through conntrack/NAT: GET /whoami over it, or
// POST payload_bytes to /echo-size.
func (d *dialer) tcp(ctx context.Context, t Target) (a Attempt) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	defer func() { a.TotalMS = ms(time.Since(start)) }()

	addr, err := d.resolve(ctx, t.Host, t.Port, t.Family)
	if err != nil {
		return failed(kindDNS, "resolve", err)
	}
	connectStart := time.Now()
	conn, localPort, err := dialTCP(ctx, addr)
	connectMS := ms(time.Since(connectStart))
	if err != nil {
		a = failed(classify(err), "connect", err)
		a.ConnectMS, a.LocalPort = connectMS, localPort
		return a
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)

	a = d.request(conn, t)
	a.ConnectMS, a.LocalPort = connectMS, localPort
	return a
}

func (d *dialer) request(conn net.Conn, t Target) Attempt {
	method, path := "GET", "/whoami"
	if t.PayloadBytes > 0 {
		method, path = "POST", "/echo-size"
	}
	req := method + " " + path + " HTTP/1.1\r\nHost: " + net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) +
		"\r\nUser-Agent: netconform-probe\r\nConnection: close\r\n"
	if t.PayloadBytes > 0 {
		req += "Content-Type: application/octet-stream\r\nContent-Length: " + strconv.Itoa(t.PayloadBytes) + "\r\n"
	}
	w := bufio.NewWriterSize(conn, 32<<10)
	io.WriteString(w, req+"\r\n")
	w.Write(padding(nil, t.PayloadBytes))
	if err := w.Flush(); err != nil {
		return failed(classify(err), "send request", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return d.readFailed(err, t.PayloadBytes)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return d.readFailed(err, t.PayloadBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return Attempt{Error: kindOther, Detail: fmt.Sprintf("bad response: HTTP %s: %.200q", resp.Status, body)}
	}
	return whoamiAttempt(body, t.PayloadBytes)
}

// readFailed words a timeout after a successful connect as "no response",
// which points diagnosis at the return path rather than at SYNs (or, with a
// payload, at a path that drops full-size segments: a PMTU black hole).
func (d *dialer) readFailed(err error, payload int) Attempt {
	kind := classify(err)
	if kind == kindTimeout {
		phase := fmt.Sprintf("no response within %v after connect", d.timeout)
		if payload > 0 {
			phase += fmt.Sprintf(" and sending %d bytes", payload)
		}
		return failed(kind, phase, err)
	}
	return failed(kind, "read response", err)
}

// udp sends one datagram from a fresh socket and waits for the whoami reply.
func (d *dialer) udp(ctx context.Context, t Target) (a Attempt) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	defer func() { a.TotalMS = ms(time.Since(start)) }()

	addr, err := d.resolve(ctx, t.Host, t.Port, t.Family)
	if err != nil {
		return failed(kindDNS, "resolve", err)
	}
	dl := net.Dialer{}
	if t.DF {
		dl.Control = setDontFragment
	}
	c, err := dl.DialContext(ctx, "udp", addr) // connected socket: ICMP errors surface as refused/unreachable/too_big
	if err != nil {
		return failed(classify(err), "socket", err)
	}
	conn := c.(*net.UDPConn)
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	a.LocalPort = conn.LocalAddr().(*net.UDPAddr).Port
	fail := func(phase string, err error) Attempt {
		kind := classify(err)
		switch {
		case kind == kindTooBig:
			phase += fmt.Sprintf(" (%d-byte payload, route MTU %d)", t.PayloadBytes, routeMTU(conn))
		case kind == kindTimeout:
			phase = fmt.Sprintf("no reply within %v", d.timeout)
			if t.PayloadBytes > 0 {
				phase += fmt.Sprintf(" to a %d-byte payload", t.PayloadBytes)
			}
			if t.DF {
				phase += " with DF"
			}
		}
		f := failed(kind, phase, err)
		f.LocalPort = a.LocalPort
		return f
	}
	msg := []byte("whoami\n")
	if t.PayloadBytes > 0 {
		msg = padding(msg, t.PayloadBytes)
	}
	if _, err := conn.Write(msg); err != nil {
		return fail("send datagram", err)
	}
	buf := make([]byte, maxBody)
	n, err := conn.Read(buf)
	if err != nil {
		return fail("read reply", err)
	}
	r := whoamiAttempt(buf[:n], t.PayloadBytes)
	r.LocalPort = a.LocalPort
	return r
}

// padding returns exactly n bytes: prefix (cut to n) filled up with 'x'.
func padding(prefix []byte, n int) []byte {
	b := make([]byte, n)
	for i := copy(b, prefix); i < n; i++ {
		b[i] = 'x'
	}
	return b
}

// whoamiAttempt reads the server's answer; with a payload, the server must
// have received all of it.
func whoamiAttempt(body []byte, payload int) Attempt {
	var w Whoami
	if err := json.Unmarshal(body, &w); err != nil {
		return Attempt{Error: kindOther, Detail: fmt.Sprintf("bad response: %v: %.200q", err, body)}
	}
	a := Attempt{OK: true, ServerHostname: w.Hostname, ServerNode: w.Node, ClientIPSeen: w.ClientIP,
		ClientPortSeen: w.ClientPort, ServerBytes: w.Bytes}
	if payload > 0 && w.Bytes != payload {
		a.OK, a.Error, a.Detail = false, kindOther, fmt.Sprintf("bad response: server received %d of %d bytes", w.Bytes, payload)
	}
	return a
}

// lookups resolves t.Host up to t.Count times, as the pod's resolver retries
// a query nobody answered (resolv.conf attempts): a lone lost datagram is a
// retry there, not a failed lookup. It stops at the first answer, "no such
// name" included; only unanswered lookups (timeouts) are tried again.
func (d *dialer) lookups(ctx context.Context, t Target, r Result) Result {
	first := time.Now()
	for i := range max(t.Count, 1) {
		startMS := ms(time.Since(first))
		a, addrs, answered := d.lookup(ctx, t.Host, t.Family)
		a.Index, a.StartMS = i+1, startMS
		r.Attempts, r.Addresses = append(r.Attempts, a), addrs
		if answered {
			r.Stopped = stoppedAnswered
		}
		if answered || ctx.Err() != nil {
			break
		}
	}
	return r
}

// lookup resolves a name the way an application in the pod would; answered is
// false when no answer came (a timeout), the one case a resolver retries.
// family "4"/"6" asks for A or AAAA records only.
func (d *dialer) lookup(ctx context.Context, host, family string) (Attempt, []string, bool) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	ips, err := d.resolver.LookupNetIP(ctx, "ip"+family, host)
	var a Attempt
	answered := true
	if err != nil {
		a = failed(kindDNS, "resolve", err)
		var dnsErr *net.DNSError
		answered = !(errors.As(err, &dnsErr) && dnsErr.IsTimeout) && ctx.Err() == nil
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
	return a, addrs, answered
}

// resolve returns "ip:port" ("[ip6]:port" for IPv6) for host: addresses of
// the family asked ("4", "6"), or any, preferring IPv4.
func (d *dialer) resolve(ctx context.Context, host string, port int, family string) (string, error) {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ips, err := d.resolver.LookupNetIP(ctx, "ip"+family, host)
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
	case errors.Is(err, syscall.EMSGSIZE):
		return kindTooBig
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
