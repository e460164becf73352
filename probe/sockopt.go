package main

// Linux socket details the dial needs beyond package net: the source port
// of a connect that never completed, DF on UDP, and the route MTU.

import (
	"context"
	"net"
	"strings"
	"syscall"
)

// dialTCP connects like net.Dialer and also returns the local port, even when
// the connect fails: the SYN that got no answer left from that port, which is
// what a packet capture on the node is matched with. A duplicate of the
// socket's descriptor keeps it (and its port) alive past Go's own close.
func dialTCP(ctx context.Context, addr string) (net.Conn, int, error) {
	dup := -1
	d := net.Dialer{KeepAlive: -1, Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
			if errno == 0 {
				dup = int(r)
			}
		})
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	port := 0
	if dup >= 0 {
		if sa, e := syscall.Getsockname(dup); e == nil {
			port = sockaddrPort(sa)
		}
		syscall.Close(dup)
	}
	return conn, port, err
}

func sockaddrPort(sa syscall.Sockaddr) int {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return sa.Port
	case *syscall.SockaddrInet6:
		return sa.Port
	}
	return 0
}

// setDontFragment is a net.Dialer Control for UDP: the kernel sets DF and
// never fragments, so a datagram larger than the route MTU fails locally with
// EMSGSIZE and one larger than a hop further on is dropped there (or answered
// with ICMP "fragmentation needed", which the next read reports as EMSGSIZE).
func setDontFragment(network, _ string, c syscall.RawConn) error {
	level, opt, val := syscall.IPPROTO_IP, syscall.IP_MTU_DISCOVER, syscall.IP_PMTUDISC_DO
	if strings.HasSuffix(network, "6") {
		level, opt, val = syscall.IPPROTO_IPV6, syscall.IPV6_MTU_DISCOVER, syscall.IPV6_PMTUDISC_DO
	}
	var serr error
	if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), level, opt, val) }); err != nil {
		return err
	}
	return serr
}

// routeMTU is the path MTU the kernel knows for a connected UDP socket
// (IP_MTU / IPV6_MTU), or 0 if it cannot say.
func routeMTU(conn *net.UDPConn) int {
	level, opt := syscall.IPPROTO_IP, syscall.IP_MTU
	if conn.RemoteAddr().(*net.UDPAddr).IP.To4() == nil {
		level, opt = syscall.IPPROTO_IPV6, syscall.IPV6_MTU
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0
	}
	mtu := 0
	rc.Control(func(fd uintptr) { mtu, _ = syscall.GetsockoptInt(int(fd), level, opt) })
	return mtu
}
