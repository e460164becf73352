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

type serveConfig struct {
	bind     string // "" = all addresses, IPv4 and IPv6; tests use 127.0.0.1
	httpPort int
	udpPort  int
	holdPort int
	hostname string           // "" = os.Hostname(); tests name their backends
	listen   net.ListenConfig // tests set SO_REUSEPORT to load-balance several servers
}

// server holds the three listeners of `probe serve`.
type server struct {
	hostname, node string

	httpLn net.Listener
	udp    net.PacketConn
	holdLn net.Listener
	http   *http.Server

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
	if err := fs.Parse(args); err != nil {
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
	s := &server{hostname: hostname, node: os.Getenv("NODE_NAME"), holdConns: map[net.Conn]struct{}{}}
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
	go func() { defer s.wg.Done(); s.http.Serve(s.httpLn) }()
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
		s.holdConns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.holdConns, c)
				s.mu.Unlock()
				c.Close()
			}()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadBytes('\n')
				if len(line) > 0 {
					if _, werr := c.Write(line); werr != nil {
						return
					}
				}
				if err != nil {
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
