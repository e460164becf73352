package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const soReusePort = 0xf // SO_REUSEPORT on Linux; package syscall lacks it

// startBackends runs n servers named backend-1..n on the same 127.0.0.1 ports
// with SO_REUSEPORT, so the kernel spreads fresh connections and fresh UDP
// sockets over them by a hash of the source port: a Service with n endpoints.
func startBackends(t *testing.T, n int) (httpPort, udpPort int) {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1) })
		return serr
	}}
	cfg := serveConfig{bind: "127.0.0.1", listen: lc}
	for i := range n {
		cfg.hostname = "backend-" + strconv.Itoa(i+1)
		s, err := startServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		if i == 0 {
			cfg.httpPort, cfg.udpPort, cfg.holdPort = portOf(s.httpLn.Addr()), portOf(s.udp.LocalAddr()), portOf(s.holdLn.Addr())
		}
	}
	return cfg.httpPort, cfg.udpPort
}

func distinctBackends(as []Attempt) map[string]int {
	seen := map[string]int{}
	for _, a := range as {
		if a.OK {
			seen[a.ServerHostname]++
		}
	}
	return seen
}

// want_backends: attempts stop at the attempt that showed the last unseen
// backend, well before count.
func TestDialWantBackendsStopsWhenAllSeen(t *testing.T) {
	httpPort, udpPort := startBackends(t, 3)
	d := newTestDialer(2 * time.Second)
	for proto, port := range map[string]int{"tcp": httpPort, "udp": udpPort} {
		r := dialOne(t, d, Target{Proto: proto, Host: "127.0.0.1", Port: port, Count: 500, WantBackends: 3})
		n := len(r.Attempts)
		if r.Stopped != stoppedBackends || n >= 500 || len(distinctBackends(r.Attempts)) != 3 {
			t.Fatalf("%s: stopped %q after %d attempts, backends %v; want backends, < 500, 3", proto, r.Stopped, n, distinctBackends(r.Attempts))
		}
		if len(distinctBackends(r.Attempts[:n-1])) != 2 {
			t.Fatalf("%s: the last attempt must be the first answer of the third backend: %v", proto, distinctBackends(r.Attempts[:n-1]))
		}
	}
}

// With fewer backends than wanted, count bounds the attempts; max_failures
// still stops a dead target.
func TestDialWantBackendsBoundedByCountAndFailures(t *testing.T) {
	httpPort, _ := startBackends(t, 2)
	d := newTestDialer(2 * time.Second)
	r := dialOne(t, d, Target{Proto: "tcp", Host: "127.0.0.1", Port: httpPort, Count: 30, WantBackends: 3})
	if r.Stopped != stoppedCount || len(r.Attempts) != 30 || len(distinctBackends(r.Attempts)) != 2 {
		t.Fatalf("stopped %q after %d attempts, backends %v; want count after 30, 2 backends", r.Stopped, len(r.Attempts), distinctBackends(r.Attempts))
	}
	r = dialOne(t, d, Target{Proto: "tcp", Host: "127.0.0.1", Port: closedPort(t, "tcp"), Count: 30, WantBackends: 3, MaxFailures: 3})
	if r.Stopped != stoppedMaxFailures || len(r.Attempts) != 3 {
		t.Fatalf("dead target: stopped %q after %d attempts; want max_failures after 3", r.Stopped, len(r.Attempts))
	}
}

// firstOnlyServer answers the first connection with a whoami and then never
// accepts again (backlog 0): the second connection completes its handshake
// into the accept queue and gets no response, later SYNs are dropped. It is
// the shape of seed incident 2: the first connection works, later ones hang.
func firstOnlyServer(t *testing.T) int {
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
	sa, _ := syscall.Getsockname(fd)
	go func() {
		nfd, peer, err := syscall.Accept(fd)
		if err != nil {
			return
		}
		f := os.NewFile(uintptr(nfd), "accepted")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			return
		}
		defer c.Close()
		p := peer.(*syscall.SockaddrInet4)
		bufio.NewReader(c).ReadString('\n')
		body := fmt.Sprintf(`{"hostname":"first","client_ip":"127.0.0.1","client_port":%d}`, p.Port)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	}()
	return sa.(*syscall.SockaddrInet4).Port
}

// Every attempt says where it stands (index, start_ms) and which source port
// it used, also when its SYN was never answered, so "attempt 1 ok, 2-5 timed
// out" can be said and matched with a capture.
func TestDialAttemptIndexStartAndLocalPort(t *testing.T) {
	port := firstOnlyServer(t)
	r := dialOne(t, newTestDialer(200*time.Millisecond), Target{Proto: "tcp", Host: "127.0.0.1", Port: port, Count: 5})
	if len(r.Attempts) != 5 {
		t.Fatalf("got %d attempts, want 5", len(r.Attempts))
	}
	first := r.Attempts[0]
	if !first.OK || first.LocalPort == 0 || first.ClientPortSeen != first.LocalPort {
		t.Fatalf("attempt 1: %+v; want ok with local_port == the port the server saw", first)
	}
	if r.Attempts[1].Error != kindTimeout || r.Attempts[1].ConnectMS >= 200 {
		t.Fatalf("attempt 2: %+v; want connected, then no response", r.Attempts[1])
	}
	ports := map[int]bool{}
	for i, a := range r.Attempts {
		if a.Index != i+1 || (i == 0) != (a.StartMS == 0) {
			t.Fatalf("attempt %d: index %d start_ms %v", i+1, a.Index, a.StartMS)
		}
		if i > 0 {
			prev := r.Attempts[i-1]
			if a.StartMS < prev.StartMS+prev.TotalMS || a.StartMS > prev.StartMS+prev.TotalMS+50 {
				t.Fatalf("attempt %d starts at %v ms, previous started at %v and took %v", i+1, a.StartMS, prev.StartMS, prev.TotalMS)
			}
		}
		if i > 0 && a.OK {
			t.Fatalf("attempt %d ok; the server answers only the first", i+1)
		}
		if a.LocalPort == 0 || ports[a.LocalPort] {
			t.Fatalf("attempt %d local_port %d: want a fresh non-zero port each time (%+v)", i+1, a.LocalPort, a)
		}
		ports[a.LocalPort] = true
	}
	last := r.Attempts[4]
	if last.Error != kindTimeout || last.ConnectMS < 200 || last.Detail[:9] != "connect: " {
		t.Fatalf("attempt 5: %+v; want a connect timeout (SYN dropped)", last)
	}
}
