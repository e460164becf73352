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
	"os"
	"strconv"
	"sync"
	"time"
)

// Whoami is what the server tells a client about itself and about the
// client address it saw (the source IP after any NAT on the path).
type Whoami struct {
	Hostname   string `json:"hostname"`
	Node       string `json:"node"`
	ClientIP   string `json:"client_ip"`
	ClientPort int    `json:"client_port"`
	Bytes      int    `json:"bytes,omitempty"` // payload bytes received: UDP datagrams, /echo-size
}

// What a client can make a server hold: every bound is per server process.
const (
	holdMaxLine     = 4096            // a hold line is ~20 bytes; a longer one closes the connection
	defaultHoldIdle = 2 * time.Minute // a hold connection with no line for this long is closed
	defaultMaxConns = 1024            // per listener (HTTP, hold); above it a new connection is closed at once
	maxHeaderBytes  = 16 << 10        // HTTP request headers (Go's default is 1 MiB)
)

type serveConfig struct {
	bind     string // "" = all addresses, IPv4 and IPv6; tests use 127.0.0.1
	httpPort int
	udpPort  int
	holdPort int
	hostname string           // "" = os.Hostname(); tests name their backends
	listen   net.ListenConfig // tests set SO_REUSEPORT to load-balance several servers
	holdIdle time.Duration    // 0 = defaultHoldIdle
	maxConns int              // 0 = defaultMaxConns
}

// server holds the three listeners of `probe serve`.
type server struct {
	hostname, node string

	httpLn net.Listener
	udp    net.PacketConn
	holdLn net.Listener
	http   *http.Server

	holdIdle time.Duration
	maxConns int

	mu        sync.Mutex
	holdConns map[net.Conn]struct{}
	httpConns int // connections accepted by the HTTP server (tests check freshness)
	wg        sync.WaitGroup
}

func runServe(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg serveConfig
	fs.StringVar(&cfg.bind, "bind", "", "address to listen on (default all)")
	fs.IntVar(&cfg.httpPort, "http-port", 8080, "HTTP port (/whoami, /healthz); 0 = any")
	fs.IntVar(&cfg.udpPort, "udp-port", 8081, "UDP whoami port; 0 = any")
	fs.IntVar(&cfg.holdPort, "hold-port", 8082, "TCP line-echo port for hold; 0 = any")
	fs.DurationVar(&cfg.holdIdle, "hold-idle", defaultHoldIdle, "close a hold connection that sends no line for this long")
	fs.IntVar(&cfg.maxConns, "max-conns", defaultMaxConns, "open connections per TCP listener (HTTP, hold), 1..65536")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.holdIdle <= 0 || cfg.maxConns < 1 || cfg.maxConns > 65536 {
		fmt.Fprintln(stderr, "probe serve: --hold-idle must be > 0 and --max-conns 1..65536")
		return 2
	}
	s, err := startServer(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "probe serve: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "probe serve: http %s udp %s hold %s\n", s.httpLn.Addr(), s.udp.LocalAddr(), s.holdLn.Addr())
	<-ctx.Done()
	s.Close()
	return 0
}

// startServer binds all listeners before returning, so callers (and tests
// using port 0) can read the real addresses immediately.
func startServer(cfg serveConfig) (*server, error) {
	hostname := cfg.hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	if cfg.holdIdle <= 0 {
		cfg.holdIdle = defaultHoldIdle
	}
	if cfg.maxConns <= 0 {
		cfg.maxConns = defaultMaxConns
	}
	s := &server{
		hostname: hostname, node: os.Getenv("NODE_NAME"), holdConns: map[net.Conn]struct{}{},
		holdIdle: cfg.holdIdle, maxConns: cfg.maxConns,
	}
	addr := func(port int) string { return net.JoinHostPort(cfg.bind, strconv.Itoa(port)) }

	// With bind "" Go listens on [::] with IPV6_V6ONLY off: IPv4 and IPv6 clients alike.
	ctx := context.Background()
	var err error
	if s.httpLn, err = cfg.listen.Listen(ctx, "tcp", addr(cfg.httpPort)); err != nil {
		return nil, err
	}
	if s.udp, err = cfg.listen.ListenPacket(ctx, "udp", addr(cfg.udpPort)); err != nil {
		s.httpLn.Close()
		return nil, err
	}
	if s.holdLn, err = cfg.listen.Listen(ctx, "tcp", addr(cfg.holdPort)); err != nil {
		s.httpLn.Close()
		s.udp.Close()
		return nil, err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /whoami", s.handleWhoami)
	mux.HandleFunc("POST /echo-size", s.handleEchoSize)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	})
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second, // bound slow or stuck clients
		WriteTimeout:      10 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.mu.Lock()
				s.httpConns++
				s.mu.Unlock()
			}
		},
	}
	// Every dial must be a fresh connection, so the server never keeps one open.
	s.http.SetKeepAlivesEnabled(false)

	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		s.http.Serve(&limitListener{Listener: s.httpLn, slots: make(chan struct{}, s.maxConns)})
	}()
	go func() { defer s.wg.Done(); s.serveUDP() }()
	go func() { defer s.wg.Done(); s.serveHold() }()
	return s, nil
}

// whoami describes the server and the peer address ("ip:port") it saw.
func (s *server) whoami(peer string) Whoami {
	w := Whoami{Hostname: s.hostname, Node: s.node}
	if host, port, err := net.SplitHostPort(peer); err == nil {
		w.ClientIP = host
		w.ClientPort, _ = strconv.Atoi(port)
	}
	return w
}

func (s *server) handleWhoami(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")
	json.NewEncoder(w).Encode(s.whoami(r.RemoteAddr))
}

// handleEchoSize reads the whole request body and answers whoami plus the
// number of bytes received: a large transfer that a path's MTU breaks hangs.
func (s *server) handleEchoSize(w http.ResponseWriter, r *http.Request) {
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(60 * time.Second))
	n, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxTCPPayload))
	w.Header().Set("Connection", "close")
	if err != nil {
		http.Error(w, fmt.Sprintf("read body after %d bytes: %v", n, err), http.StatusBadRequest)
		return
	}
	who := s.whoami(r.RemoteAddr)
	who.Bytes = int(n)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(who)
}

// serveUDP answers every datagram with one small whoami datagram that says
// how many payload bytes arrived.
func (s *server) serveUDP() {
	buf := make([]byte, 64*1024)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP errors surfaced on the socket; keep serving
		}
		who := s.whoami(from.String())
		who.Bytes = n
		b, _ := json.Marshal(who)
		s.udp.WriteTo(b, from)
	}
}

// serveHold echoes every received line back on long-lived connections, so
// `probe hold` can notice when an established connection stops working.
// Bounded: at most maxConns connections (a further one is closed at once),
// lines of holdMaxLine bytes (a longer one closes the connection: the
// buffer never grows), and holdIdle without a line closes it too.
func (s *server) serveHold() {
	for {
		c, err := s.holdLn.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE; avoid a busy loop
			continue
		}
		s.mu.Lock()
		full := len(s.holdConns) >= s.maxConns
		if !full {
			s.holdConns[c] = struct{}{}
		}
		s.mu.Unlock()
		if full {
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.holdConns, c)
				s.mu.Unlock()
				c.Close()
			}()
			r := bufio.NewReaderSize(c, holdMaxLine)
			for {
				c.SetReadDeadline(time.Now().Add(s.holdIdle))
				line, err := r.ReadSlice('\n') // ErrBufferFull past holdMaxLine: closed, not grown
				if err != nil {
					return // a partial last line is not echoed: a hold line always ends in \n
				}
				c.SetWriteDeadline(time.Now().Add(s.holdIdle))
				if _, werr := c.Write(line); werr != nil {
					return
				}
			}
		}()
	}
}

func (s *server) acceptedHTTPConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.httpConns
}

// Close stops all listeners and drops open hold connections. In-flight HTTP
// requests get a bounded grace period.
func (s *server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.http.Shutdown(ctx)
	s.udp.Close()
	s.holdLn.Close()
	s.mu.Lock()
	for c := range s.holdConns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// limitListener hands out at most cap(slots) connections at a time; one more
// is closed as soon as it is accepted (a client sees a reset, not a queue).
type limitListener struct {
	net.Listener
	slots chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
			c.Close()
		}
	}
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
