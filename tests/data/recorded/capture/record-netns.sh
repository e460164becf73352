#!/bin/bash
# a flannel-shaped pair of nodes in netns (as tests/data/recorded/record.sh builds them), then record and capture
# (writes /tmp/capture-rec/local2; copied by hand into capture/netns_flannel and pcap/netns_*.pcap)
set -eu
D=/tmp/capture-rec/local2; rm -rf $D; mkdir -p $D
cleanup() { for n in nccap-p1 nccap-p2 nccap-p3 nccap-n1 nccap-n2; do ip netns del $n 2>/dev/null || true; done; }
trap cleanup EXIT
for n in nccap-n1 nccap-n2 nccap-p1 nccap-p2 nccap-p3; do ip netns add $n; ip -n $n link set lo up; done
ip -n nccap-n1 link add eth0 type veth peer name eth0 netns nccap-n2
ip -n nccap-n1 addr add 10.99.0.11/24 dev eth0; ip -n nccap-n2 addr add 10.99.0.12/24 dev eth0
ip -n nccap-n1 link set eth0 up; ip -n nccap-n2 link set eth0 up
node() { n=$1; i=$2; pi=$3
  ip -n $n link add flannel.1 type vxlan id 1 local 10.99.0.$i dstport 8472 nolearning
  ip -n $n link set flannel.1 address 4e:00:00:00:00:0$((i-10)); ip -n $n link set flannel.1 mtu 1450 up
  ip -n $n addr add 10.244.$((i-11)).0/32 dev flannel.1
  ip -n $n link add cni0 type bridge; ip -n $n addr add 10.244.$((i-11)).1/24 dev cni0; ip -n $n link set cni0 mtu 1450 up
  ip -n $n route add 10.244.$((pi-11)).0/24 via 10.244.$((pi-11)).0 dev flannel.1 onlink
  ip -n $n neigh replace 10.244.$((pi-11)).0 lladdr 4e:00:00:00:00:0$((pi-10)) dev flannel.1 nud permanent
  bridge -n $n fdb append 4e:00:00:00:00:0$((pi-10)) dev flannel.1 dst 10.99.0.$pi self permanent
  ip netns exec $n sysctl -qw net.ipv4.ip_forward=1
}
node nccap-n1 11 12; node nccap-n2 12 11
pod() { n=$1; p=$2; v=$3; ip=$4; gw=$5
  ip -n $n link add $v type veth peer name eth0 netns $p
  ip -n $n link set $v mtu 1450 master cni0 up
  ip -n $p link set eth0 mtu 1450 up; ip -n $p addr add $ip/24 dev eth0; ip -n $p route add default via $gw
}
pod nccap-n1 nccap-p1 veth1a2b3c4d 10.244.0.5 10.244.0.1
pod nccap-n1 nccap-p2 veth5e6f7a8b 10.244.0.6 10.244.0.1
pod nccap-n2 nccap-p3 veth9c0d1e2f 10.244.1.5 10.244.1.1
sleep 1
for n in nccap-n1 nccap-n2; do ip netns exec $n ip -o link show > $D/links-$n.txt; done
ip netns exec nccap-n1 ip -o route get 10.244.0.5 > $D/route-nccap-n1-10.244.0.5.txt
ip netns exec nccap-n1 ip -o route get 10.244.0.6 > $D/route-nccap-n1-10.244.0.6.txt
ip netns exec nccap-n2 ip -o route get 10.244.1.5 > $D/route-nccap-n2-10.244.1.5.txt
for p in nccap-p1 nccap-p2 nccap-p3; do ip netns exec $p cat /sys/class/net/eth0/iflink > $D/iflink-$p.txt; done
# servers on 8080 and 9090 in p3
ip netns exec nccap-p3 python3 -m http.server 8080 --bind 10.244.1.5 >/dev/null 2>&1 & S1=$!
ip netns exec nccap-p3 python3 -m http.server 9090 --bind 10.244.1.5 >/dev/null 2>&1 & S2=$!
sleep 3
sleep 1
cd /work/wt/capture
.venv/bin/python - <<'PY' > $D/filters.env
from netconform.diagnose.capture_filter import Flow, any_filter, link_filter, snap_length
c = Flow("10.244.0.5", ("10.244.1.5",), 8080)
s = Flow("10.244.1.5", ("10.244.0.5", "10.99.0.11", "10.244.0.0", "10.244.0.1", "10.99.0.12", "10.244.1.0", "10.244.1.1"), 8080)
print(f"CLIENT='{link_filter([c])}'"); print(f"SERVER='{link_filter([s])}'"); print(f"ANY='{any_filter([c, s])}'")
print(f"SNAP_LINK={snap_length(4, vxlan=False)}"); print(f"SNAP_ANY={snap_length(4, vxlan=True)}")
PY
. $D/filters.env
ip netns exec nccap-n1 tcpdump -i veth1a2b3c4d -U -n -s $SNAP_LINK -w $D/n1-veth1a2b3c4d.pcap "$CLIENT" 2>$D/t1.log & T1=$!
ip netns exec nccap-n2 tcpdump -i veth9c0d1e2f -U -n -s $SNAP_LINK -w $D/n2-veth9c0d1e2f.pcap "$SERVER" 2>$D/t2.log & T2=$!
ip netns exec nccap-n1 tcpdump -i any -U -n -s $SNAP_ANY -w $D/n1-any.pcap "$ANY" 2>$D/t3.log & T3=$!
sleep 2
for i in 1 2 3; do ip netns exec nccap-p1 curl -s -o /dev/null -m 3 http://10.244.1.5:8080/ || true; done   # the probe
for i in 1 2; do ip netns exec nccap-p2 curl -s -o /dev/null -m 3 http://10.244.1.5:8080/ || true; done    # another pod
ip netns exec nccap-p1 curl -s -o /dev/null -m 3 http://10.244.1.5:9090/ || true                        # another port
sleep 1
kill -INT $T1 $T2 $T3; wait $T1 $T2 $T3 || true; kill $S1 $S2 || true
echo ok > $D/DONE
