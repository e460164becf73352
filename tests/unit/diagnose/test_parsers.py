"""Parsers on recorded real output (tests/data/recorded/healthy, made by record.sh in netns)."""

from netconform.diagnose import parsers
from netconform.diagnose.evidence import gather_script, split_sections

from .conftest import RECORDED, load_case


def test_sections_split_with_rc():
    secs = split_sections((RECORDED / "healthy" / "lab-node-1.txt").read_text())
    assert secs["link"].rc == 0 and secs["link"].text.startswith("1: lo:")
    # sysctl exits 1 on 6.x because tcp_tw_recycle is absent, but still prints the other keys
    assert secs["sysctl"].rc == 1
    assert "No such file" in secs["flannel_docker"].text and secs["flannel_docker"].problem().startswith("rc 1")


def test_gather_script_has_every_section_and_timeouts():
    s = gather_script(7)
    assert "timeout 7" in s
    for name in (
        "link",
        "neigh_flannel",
        "fdb_flannel",
        "route",
        "iptables",
        "sysctl",
        "conntrack",
        "nstat",
        "subnet_env",
        "flannel_docker",
        "hairpin",
    ):
        assert f"sec {name} " in s


def test_ip_link_vxlan_bridge_and_mtu(healthy):
    links = healthy.nodes["lab-node-1"].links
    fl = links["flannel.1"]
    assert fl.kind == "vxlan" and fl.mtu == 1450 and fl.mac == "4e:00:00:00:00:01"
    assert fl.details["dstport"] == "8472" and fl.details["dev"] == "eth0" and fl.details["local"] == "192.0.2.11"
    assert fl.details["learning"] == "0"
    assert links["veth1a"].master == "cni0" and links["veth1a"].details["hairpin"] == "on"
    assert links["eth0"].mtu == 1500 and links["cni0"].kind == "bridge"


def test_neigh_fdb_routes(healthy):
    ne = healthy.nodes["lab-node-1"]
    assert [(n.ip, n.mac, n.states) for n in ne.neigh] == [("10.244.2.0", "4e:00:00:00:00:02", ("PERMANENT",))]
    assert [(f.mac, f.dst) for f in ne.fdb] == [("4e:00:00:00:00:02", "192.0.2.12")]
    r = [x for x in ne.routes if x.dst == "10.244.2.0/24"][0]
    assert r.via == "10.244.2.0" and r.dev == "flannel.1" and r.onlink


def test_sysctl_absent_key_is_absent(healthy):
    s = healthy.nodes["lab-node-1"].sysctl
    assert s["net.ipv4.ip_forward"] == "1" and s["net.bridge.bridge-nf-call-iptables"] == "1"
    assert "net.ipv4.tcp_tw_recycle" not in s


def test_transcribed_tw_recycle_counters():
    ne = load_case("tw_recycle_transcribed").nodes["lab-node-1"]
    assert ne.sysctl["net.ipv4.tcp_tw_recycle"] == "1"
    assert parsers.netstat_counter(ne.text("netstat"), "passive connections rejected because of time stamp")[0] == 1843
    assert ne.nstat["TcpExtPAWSPassive"] == 1843


def test_rp_filter_hairpin_conntrack_subnet_env(healthy):
    ne = healthy.nodes["lab-node-1"]
    assert ne.rp_filter["flannel.1"] == 0 and ne.rp_filter["all"] == 0
    assert ne.hairpin == {"veth1a": 1, "veth1b": 1}
    assert "insert_failed" in ne.conntrack
    assert ne.subnet_env["FLANNEL_MTU"] == "1450" and ne.subnet_env["FLANNEL_NETWORK"] == "10.244.0.0/16"


def test_env_file_strips_quotes():
    env = parsers.parse_env_file('DOCKER_OPT_IPMASQ="--ip-masq=true"\nX=1\n# c\n')
    assert env == {"DOCKER_OPT_IPMASQ": "--ip-masq=true", "X": "1"}


def test_cni_plugin_types_read_from_the_lab_conflist_with_flannels_delegate() -> None:
    """The lab's real /etc/cni/net.d/10-flannel.conflist (tests/data/recorded/lab/stale_arp): flannel fills
    in its delegate (bridge) and IPAM (host-local); two files concatenated by `cat` are read one by one."""
    text = split_sections((RECORDED / "lab" / "stale_arp" / "lab-node-1.txt").read_text())["cni_conf"].text
    assert parsers.parse_cni_plugin_types(text) == ["flannel", "bridge", "host-local", "portmap"]
    calico = '{"name": "k8s-pod-network", "plugins": [{"type": "calico", "ipam": {"type": "calico-ipam"}, "policy": {"type": "k8s"}}]}'
    assert parsers.parse_cni_plugin_types(text + "\n" + calico) == [
        "flannel", "bridge", "host-local", "portmap", "calico", "calico-ipam"
    ]  # fmt: skip
    assert parsers.parse_cni_plugin_types("cat: can't open '/host/etc/cni/net.d/*.conf*': No such file") == []
    assert parsers.parse_cni_plugin_types('{"type": "$(reboot)"} {"plugins": "x"} {') == []
