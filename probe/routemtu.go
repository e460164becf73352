package main

import (
	"fmt"
	"io"
	"net"
)

// runRouteMTU prints, for each address given, the MTU the kernel would use
// toward it ("<ip> <mtu>" per line): a UDP socket is connected (nothing is
// sent) and IP_MTU / IPV6_MTU read. That is the route's MTU when the route
// carries one (Cilium gives pods eth0 1500 and a default route mtu 1450),
// else the outgoing device's: what a full-size datagram has to fit.
func runRouteMTU(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "probe route-mtu: give at least one IP address")
		return 2
	}
	for _, arg := range args {
		ip := net.ParseIP(arg)
		if ip == nil {
			fmt.Fprintf(stderr, "probe route-mtu: %q is not an IP address\n", arg)
			return 2
		}
		conn, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: ip, Port: 9})
		if err != nil {
			fmt.Fprintf(stderr, "probe route-mtu: no route to %s: %v\n", ip, err)
			return 1
		}
		mtu := routeMTU(conn)
		conn.Close()
		if mtu <= 0 {
			fmt.Fprintf(stderr, "probe route-mtu: the kernel gave no MTU toward %s\n", ip)
			return 1
		}
		fmt.Fprintf(stdout, "%s %d\n", ip, mtu)
	}
	return 0
}
