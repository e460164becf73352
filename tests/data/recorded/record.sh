#!/bin/bash
# Re-record the node outputs under tests/data/recorded/ from REAL commands.
#
# Builds a two-node flannel-VXLAN look-alike out of network namespaces
# (nctest-n1 = lab-node-1, nctest-n2 = lab-node-2, pods nctest-p1/p1b/p2),
# loads iptables rules in the shape kube-proxy (iptables mode) and flanneld
# write, breaks one thing per case, and runs the very gather script the agent
# runs (plugins.diagnose.evidence.gather_script) inside the node namespace.
# Touches nothing in the root namespace; all traffic stays inside nctest-*.
# Usage (root): tests/data/recorded/record.sh [case...]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
PY=${PY:-python3}
NS="nctest-n1 nctest-n2 nctest-p1 nctest-p1b nctest-p2"
SWITCHED=${SWITCHED:-}  # set by a case: the nodes' eth0 go to ports of a bridge in nctest-sw, not to each other
ROUTED=${ROUTED:-}  # set by a case: the nodes' eth0 go to a router in nctest-sw (proxy ARP, one /32 per node)
FSROOT=/tmp/nctest-fs
MAC1=4e:00:00:00:00:01
MAC2=4e:00:00:00:00:02
OLDMAC2=4e:00:00:00:0f:02   # "node 2's flannel.1 MAC before flanneld was re-created"
GATHER=$(mktemp /tmp/nctest-gather.XXXXXX)
(cd "$ROOT" && $PY -c 'from netconform.diagnose.evidence import gather_script; print(gather_script(), end="")') >"$GATHER"

cleanup_ns() {
  for n in $NS nctest-sw; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$FSROOT"
}
# the same script with the section `pmtu` (DF pings to the other node's address), one per node
for i in 1 2; do
  (cd "$ROOT" && $PY -c 'import sys; from netconform.diagnose.evidence import gather_script; print(gather_script(peer_ips=[sys.argv[1]]), end="")' "192.0.2.1$((3 - i))") >"$GATHER.peers$i"
done
cleanup() { cleanup_ns; rm -f "$GATHER" "$GATHER".peers*; }
trap cleanup EXIT

x() { local n=$1; shift; ip netns exec "nctest-$n" "$@"; }

rules() {  # $1 node number -> iptables-restore input (kube-proxy + flanneld shapes)
  local i=$1
  cat <<RULES
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:FLANNEL-FWD - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A INPUT -j KUBE-FIREWALL
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT
-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:FLANNEL-POSTRTG - [0:0]
:KUBE-EXT-NPRT7QBYZMXEAQIP - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-3JOQ3CSJH6PDKUBE - [0:0]
:KUBE-SEP-6RMDC7QNUBYVXQ4W - [0:0]
:KUBE-SEP-AAWY5U2H5NYWJYAM - [0:0]
:KUBE-SEP-GXBCZAP7PPALFGPT - [0:0]
:KUBE-SEP-UJVG4AXRDKEUYLDX - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-ERIFXISQEP7F7OF4 - [0:0]
:KUBE-SVC-NPRT7QBYZMXEAQIP - [0:0]
:KUBE-SVC-TCOU7JCQXEZGVUNU - [0:0]
:KUBE-SVC-ZKXWJHZL6R3DTBYB - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.$i.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.$i.0/24 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.$i.0/24 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully
-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully
-A KUBE-EXT-NPRT7QBYZMXEAQIP -m comment --comment "masquerade traffic for netconform-test/nc-nodeport:http external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-NPRT7QBYZMXEAQIP -j KUBE-SVC-NPRT7QBYZMXEAQIP
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-NODEPORTS -p tcp -m comment --comment "netconform-test/nc-nodeport:http" -m tcp --dport 31080 -j KUBE-EXT-NPRT7QBYZMXEAQIP
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-3JOQ3CSJH6PDKUBE -s 10.244.1.2/32 -m comment --comment "netconform-test/nc-server:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-3JOQ3CSJH6PDKUBE -p tcp -m comment --comment "netconform-test/nc-server:http" -m tcp -j DNAT --to-destination 10.244.1.2:8080
-A KUBE-SEP-6RMDC7QNUBYVXQ4W -s 10.244.2.2/32 -m comment --comment "netconform-test/nc-server:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-6RMDC7QNUBYVXQ4W -p tcp -m comment --comment "netconform-test/nc-server:http" -m tcp -j DNAT --to-destination 10.244.2.2:8080
-A KUBE-SEP-AAWY5U2H5NYWJYAM -s 10.244.1.2/32 -m comment --comment "netconform-test/nc-nodeport:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-AAWY5U2H5NYWJYAM -p tcp -m comment --comment "netconform-test/nc-nodeport:http" -m tcp -j DNAT --to-destination 10.244.1.2:8080
-A KUBE-SEP-GXBCZAP7PPALFGPT -s 10.244.2.3/32 -m comment --comment "kube-system/kube-dns:dns" -j KUBE-MARK-MASQ
-A KUBE-SEP-GXBCZAP7PPALFGPT -p udp -m comment --comment "kube-system/kube-dns:dns" -m udp -j DNAT --to-destination 10.244.2.3:53
-A KUBE-SEP-UJVG4AXRDKEUYLDX -s 10.244.2.3/32 -m comment --comment "kube-system/kube-dns:dns-tcp" -j KUBE-MARK-MASQ
-A KUBE-SEP-UJVG4AXRDKEUYLDX -p tcp -m comment --comment "kube-system/kube-dns:dns-tcp" -m tcp -j DNAT --to-destination 10.244.2.3:53
-A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "kube-system/kube-dns:dns-tcp cluster IP" -m tcp --dport 53 -j KUBE-SVC-ERIFXISQEP7F7OF4
-A KUBE-SERVICES -d 10.96.100.10/32 -p tcp -m comment --comment "netconform-test/nc-server:http cluster IP" -m tcp --dport 8080 -j KUBE-SVC-ZKXWJHZL6R3DTBYB
-A KUBE-SERVICES -d 10.96.100.11/32 -p tcp -m comment --comment "netconform-test/nc-nodeport:http cluster IP" -m tcp --dport 8080 -j KUBE-SVC-NPRT7QBYZMXEAQIP
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-ERIFXISQEP7F7OF4 ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "kube-system/kube-dns:dns-tcp cluster IP" -m tcp --dport 53 -j KUBE-MARK-MASQ
-A KUBE-SVC-ERIFXISQEP7F7OF4 -m comment --comment "kube-system/kube-dns:dns-tcp -> 10.244.2.3:53" -j KUBE-SEP-UJVG4AXRDKEUYLDX
-A KUBE-SVC-NPRT7QBYZMXEAQIP ! -s 10.244.0.0/16 -d 10.96.100.11/32 -p tcp -m comment --comment "netconform-test/nc-nodeport:http cluster IP" -m tcp --dport 8080 -j KUBE-MARK-MASQ
-A KUBE-SVC-NPRT7QBYZMXEAQIP -m comment --comment "netconform-test/nc-nodeport:http -> 10.244.1.2:8080" -j KUBE-SEP-AAWY5U2H5NYWJYAM
-A KUBE-SVC-TCOU7JCQXEZGVUNU ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp --dport 53 -j KUBE-MARK-MASQ
-A KUBE-SVC-TCOU7JCQXEZGVUNU -m comment --comment "kube-system/kube-dns:dns -> 10.244.2.3:53" -j KUBE-SEP-GXBCZAP7PPALFGPT
-A KUBE-SVC-ZKXWJHZL6R3DTBYB ! -s 10.244.0.0/16 -d 10.96.100.10/32 -p tcp -m comment --comment "netconform-test/nc-server:http cluster IP" -m tcp --dport 8080 -j KUBE-MARK-MASQ
-A KUBE-SVC-ZKXWJHZL6R3DTBYB -m comment --comment "netconform-test/nc-server:http -> 10.244.1.2:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-3JOQ3CSJH6PDKUBE
-A KUBE-SVC-ZKXWJHZL6R3DTBYB -m comment --comment "netconform-test/nc-server:http -> 10.244.2.2:8080" -j KUBE-SEP-6RMDC7QNUBYVXQ4W
COMMIT
RULES
}

node() {  # $1 node number, $2 own MAC
  local i=$1 mac=$2 fs=$FSROOT/n$1
  x n$i sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    net.bridge.bridge-nf-call-iptables=1
  x n$i ip link set lo up
  x n$i ip addr add 192.0.2.1$i/24 dev eth0
  x n$i ip link set eth0 up
  x n$i ip link add flannel.1 type vxlan id 1 dstport 8472 nolearning dev eth0 local 192.0.2.1$i
  x n$i ip link set flannel.1 address "$mac" mtu 1450 up
  x n$i ip addr add 10.244.$i.0/32 dev flannel.1
  x n$i ip link add cni0 type bridge
  x n$i ip link set cni0 mtu 1450 up
  x n$i ip addr add 10.244.$i.1/24 dev cni0
  x n$i sysctl -qw net.ipv4.conf.eth0.rp_filter=0 net.ipv4.conf.cni0.rp_filter=0 "net.ipv4.conf.flannel/1.rp_filter=0"
  x n$i iptables-restore < <(rules "$i")
  mkdir -p "$fs/run/flannel" "$fs/etc/cni/net.d"
  printf 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.%s.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n' "$i" \
    >"$fs/run/flannel/subnet.env"
  cat >"$fs/etc/cni/net.d/10-flannel.conflist" <<'CONF'
{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CONF
}

pod() {  # $1 node number, $2 pod ns suffix, $3 host-side veth, $4 pod IP
  local i=$1 p=$2 veth=$3 ip=$4
  ip link add "$veth" netns nctest-n$i type veth peer name eth0 netns nctest-$p
  x n$i ip link set "$veth" mtu 1450 master cni0 up
  x n$i ip link set "$veth" type bridge_slave hairpin on
  x "$p" ip link set lo up
  x "$p" ip link set eth0 mtu 1450 up
  x "$p" ip addr add "$ip/24" dev eth0
  x "$p" ip route add default via 10.244.$i.1
}

peer() {  # on node $1: route/neigh/fdb for node $2 with MAC $3
  local i=$1 j=$2 mac=$3
  x n$i ip route add 10.244.$j.0/24 via 10.244.$j.0 dev flannel.1 onlink
  x n$i ip neigh replace 10.244.$j.0 lladdr "$mac" dev flannel.1 nud permanent
  x n$i bridge fdb append "$mac" dev flannel.1 dst 192.0.2.1$j self permanent
}

setup() {
  cleanup_ns
  for n in $NS; do ip netns add "$n"; done
  if [ -n "$SWITCHED" ]; then  # as the lab wires its nodes (ci/lablib/net.py): a bridge, one port per node
    ip netns add nctest-sw; ip -n nctest-sw link add br0 type bridge; ip -n nctest-sw link set br0 up
    for i in 1 2; do
      ip link add sw-n$i netns nctest-sw type veth peer name eth0 netns nctest-n$i
      ip -n nctest-sw link set sw-n$i master br0 up
    done
  elif [ -n "$ROUTED" ]; then  # the same /24 on both nodes, a router between them answering ARP for each
    ip netns add nctest-sw; ip netns exec nctest-sw sysctl -qw net.ipv4.ip_forward=1
    for i in 1 2; do
      ip link add r-n$i netns nctest-sw type veth peer name eth0 netns nctest-n$i
      ip netns exec nctest-sw sysctl -qw net.ipv4.conf.r-n$i.proxy_arp=1
      ip -n nctest-sw link set r-n$i up; ip -n nctest-sw route add 192.0.2.1$i/32 dev r-n$i
    done
  else
    ip link add eth0 netns nctest-n1 type veth peer name eth0 netns nctest-n2
  fi
  node 1 $MAC1; node 2 $MAC2
  pod 1 p1 veth1a 10.244.1.2; pod 1 p1b veth1b 10.244.1.3; pod 2 p2 veth2a 10.244.2.2
  peer 1 2 $MAC2; peer 2 1 $MAC1
}

gather() {  # $1 case dir, $2.. node numbers
  local dir=$HERE/$1; shift
  mkdir -p "$dir"
  for i in "$@"; do
    x n$i env NC_HOSTFS=$FSROOT/n$i sh "$GATHER" >"$dir/lab-node-$i.txt"
  done
}

gather_peers() {  # $1 case dir, $2.. node numbers: gather() with the pmtu section
  local dir=$HERE/$1; shift
  mkdir -p "$dir"
  for i in "$@"; do
    x n$i env NC_HOSTFS=$FSROOT/n$i sh "$GATHER.peers$i" >"$dir/lab-node-$i.txt"
  done
}

ping_pods() { x p1 ping -c 2 -W 1 -i 0.2 10.244.2.2 >/dev/null 2>&1 || true; }

capture() {  # $1 ns, $2 iface, $3 out file, then the traffic command...
  local ns=$1 ifc=$2 out=$3; shift 3
  x "$ns" timeout 8 tcpdump -U -n -i "$ifc" -w "$out" 2>/dev/null & local pid=$!
  sleep 1; "$@" || true; sleep 1
  kill -INT $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
}

serve() {  # tiny bounded HTTP server in netns $1 on $2:$3
  x "$1" timeout 20 python3 -c '
import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8)
while True:
    c,_=s.accept(); c.recv(1024); c.sendall(b"HTTP/1.0 200 OK\r\n\r\nok\n"); c.close()' "$2" "$3" &
  sleep 0.5
}

dial() {  # from netns $1 to $2:$3, $4 connections
  x "$1" timeout 10 python3 -c '
import socket,sys
for _ in range(int(sys.argv[3])):
    try:
        c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2); c.sendall(b"GET / HTTP/1.0\r\n\r\n"); c.recv(100); c.close()
    except OSError as e: print("dial:", e)' "$2" "$3" "$4"
}

run_case() {
  case $1 in
  healthy)
    setup; ping_pods; gather healthy 1 2 ;;
  stale_arp)  # seed 1: node 1 holds node 2's old VtepMAC, and a matching stale FDB entry
    setup
    x n1 ip neigh replace 10.244.2.0 lladdr $OLDMAC2 dev flannel.1 nud permanent
    x n1 bridge fdb append $OLDMAC2 dev flannel.1 dst 192.0.2.12 self permanent
    ping_pods; gather stale_arp 1 2
    serve p2 10.244.2.2 8080 2>/dev/null
    capture n1 eth0 "$HERE/pcap/vxlan_stale_arp.pcap" dial p1 10.244.2.2 8080 1 ;;
  stale_fdb)  # FDB for node 2's MAC points to an address that is not node 2
    setup
    x n1 bridge fdb del $MAC2 dev flannel.1 dst 192.0.2.12 self
    x n1 bridge fdb append $MAC2 dev flannel.1 dst 192.0.2.99 self permanent
    gather stale_fdb 1 ;;
  missing_route)  # node 1 lost everything flanneld programs for node 2, and subnet.env
    setup
    x n1 ip route del 10.244.2.0/24
    x n1 ip neigh del 10.244.2.0 dev flannel.1
    x n1 bridge fdb del $MAC2 dev flannel.1 dst 192.0.2.12 self
    rm -f $FSROOT/n1/run/flannel/subnet.env
    gather missing_route 1 ;;
  mtu_mismatch)  # pod side MTU 1500 on a 1450 overlay
    setup
    x n1 ip link set cni0 mtu 1500; x n1 ip link set veth1a mtu 1500; x p1 ip link set eth0 mtu 1500
    gather mtu_mismatch 1 ;;
  vxlan_blocked)  # node 2 drops the VXLAN port; counters rise with traffic
    setup
    x n2 iptables -I INPUT 1 -p udp -m udp --dport 8472 -j DROP
    ping_pods; gather vxlan_blocked 2
    serve p2 10.244.2.2 8080 2>/dev/null
    capture n1 veth1a "$HERE/pcap/syn_no_synack.pcap" dial p1 10.244.2.2 8080 1 ;;
  ip_forward_off)
    setup; x n1 sysctl -qw net.ipv4.ip_forward=0; ping_pods; gather ip_forward_off 1 ;;
  forward_drop)  # docker-style: FORWARD policy DROP and no flanneld ACCEPT for the pod CIDR
    setup
    x n1 iptables -D FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
    x n1 iptables -P FORWARD DROP
    ping_pods; gather forward_drop 1 ;;
  br_nf_off)
    setup; x n1 sysctl -qw net.bridge.bridge-nf-call-iptables=0; gather br_nf_off 1 ;;
  rp_filter_strict)
    setup; x n1 sysctl -qw net.ipv4.conf.all.rp_filter=1; gather rp_filter_strict 1 ;;
  kube_proxy_missing)  # kube-proxy gone and its Service rules flushed
    setup
    for c in KUBE-SERVICES KUBE-NODEPORTS; do x n1 iptables -t nat -F $c; done
    x n1 sh -c 'iptables-save -t nat | grep -oE "^:KUBE-(SVC|SEP|EXT)-[A-Z0-9]+" | tr -d : | while read c; do iptables -t nat -F $c; done'
    x n1 sh -c 'iptables-save -t nat | grep -oE "^:KUBE-(SVC|SEP|EXT)-[A-Z0-9]+" | tr -d : | while read c; do iptables -t nat -X $c; done'
    gather kube_proxy_missing 1 ;;
  no_endpoints)  # what kube-proxy writes for a Service whose endpoints are empty
    setup
    x n1 sh -c 'iptables -t nat -D KUBE-SERVICES -d 10.96.100.10/32 -p tcp -m comment --comment "netconform-test/nc-server:http cluster IP" -m tcp --dport 8080 -j KUBE-SVC-ZKXWJHZL6R3DTBYB'
    x n1 iptables -t nat -F KUBE-SVC-ZKXWJHZL6R3DTBYB
    x n1 iptables -t nat -X KUBE-SVC-ZKXWJHZL6R3DTBYB
    x n1 iptables -A KUBE-SERVICES -d 10.96.100.10/32 -p tcp -m comment --comment "netconform-test/nc-server:http has no endpoints" -m tcp --dport 8080 -j REJECT --reject-with icmp-port-unreachable
    gather no_endpoints 1 ;;
  nodeport_blocked)  # host firewall drops the NodePort range before kube-proxy's DNAT
    setup
    x n1 iptables -t raw -A PREROUTING -p tcp -m tcp --dport 30000:32767 -j DROP
    gather nodeport_blocked 1 ;;
  hairpin_off)
    setup; x n1 ip link set veth1a type bridge_slave hairpin off; gather hairpin_off 1 ;;
  path_healthy)  # the pmtu section on the healthy setup: every size passes both ways
    setup; gather_peers path_healthy 1 2 ;;
  path_switch_port)  # node 2's port on a switch between the nodes at 1400, both eth0 at 1500: a silent drop
    SWITCHED=1 setup; ip -n nctest-sw link set sw-n2 mtu 1400; gather_peers path_switch_port 1 2 ;;
  path_router_mtu)  # a router between the nodes whose port to node 2 is 1400: it answers ICMP frag-needed
    ROUTED=1 setup; ip -n nctest-sw link set r-n2 mtu 1400; gather_peers path_router_mtu 1 2 ;;
  path_route_mtu)  # node 1's route to node 2 with an mtu of its own, both eth0 at 1500
    setup; x n1 ip route add 192.0.2.12/32 dev eth0 mtu 1400; gather_peers path_route_mtu 1 2 ;;
  per_source_limit)  # issue 10 5(d): node 1 drops a source's later NodePort connections (per-source `recent`)
    setup
    x n1 iptables -t mangle -I PREROUTING 1 -p tcp --dport 30000:32767 -m conntrack --ctstate NEW -m recent --name nc-per-source --set
    x n1 iptables -t mangle -I PREROUTING 1 -p tcp --dport 30000:32767 -m conntrack --ctstate NEW -m recent --name nc-per-source --rcheck --seconds 600 -j DROP
    serve p1 10.244.1.2 8080 2>/dev/null
    serve p2 10.244.2.2 8080 2>/dev/null
    dial p2 192.0.2.11 31080 3 || true
    gather per_source_limit 1 ;;
  masquerade)  # seed 3: dockerd --ip-masq rule ahead of flanneld's RETURNs
    setup
    x n1 iptables -t nat -I POSTROUTING 1 -s 10.244.1.0/24 ! -o cni0 -j MASQUERADE
    printf 'DOCKER_OPT_BIP="--bip=10.244.1.1/24"\nDOCKER_OPT_IPMASQ="--ip-masq=true"\nDOCKER_OPT_MTU="--mtu=1450"\nDOCKER_NETWORK_OPTIONS=" --bip=10.244.1.1/24 --ip-masq=true --mtu=1450"\n' \
      >$FSROOT/n1/run/flannel/docker
    ping_pods; gather masquerade 1 ;;
  masquerade_late)  # same docker rule appended AFTER flanneld's chain: RETURN goes back, it still catches pod->pod
    setup
    x n1 iptables -t nat -A POSTROUTING -s 10.244.1.0/24 ! -o cni0 -j MASQUERADE
    gather masquerade_late 1 ;;
  nat_timestamps)  # two pods behind node 1's MASQUERADE dial node 2: per-source TSval goes backwards
    setup
    x n1 iptables -t nat -I POSTROUTING 1 -s 10.244.1.0/24 -o eth0 -j MASQUERADE
    serve n2 192.0.2.12 8080 2>/dev/null
    capture n2 eth0 "$HERE/pcap/nat_timestamps.pcap" sh -c "$(declare -f x dial); for k in 1 2 3; do dial p1 192.0.2.12 8080 1; dial p1b 192.0.2.12 8080 1; done" ;;
  healthy_pcap)
    setup
    serve p2 10.244.2.2 8080 2>/dev/null
    capture n1 eth0 "$HERE/pcap/vxlan_healthy.pcap" dial p1 10.244.2.2 8080 2 ;;
  debug)
    setup; x p1 ping -c 2 -W 1 10.244.2.2; x p1 ping -c1 -W1 10.244.1.1; x n1 ping -c1 -W1 192.0.2.12; x n1 ip neigh; x n1 iptables -L -v -n | head -20 ;;
  *) echo "unknown case $1" >&2; exit 2 ;;
  esac
}

mkdir -p "$HERE/pcap"
CASES=${*:-healthy stale_arp stale_fdb missing_route mtu_mismatch vxlan_blocked ip_forward_off forward_drop br_nf_off rp_filter_strict kube_proxy_missing no_endpoints nodeport_blocked per_source_limit hairpin_off masquerade masquerade_late nat_timestamps healthy_pcap path_healthy path_route_mtu path_switch_port path_router_mtu}
for c in $CASES; do echo "recording $c"; run_case "$c"; done
cleanup
trap - EXIT
