package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
)

// bigSpec is one client pod's spec in a 1000-node dual-stack cluster: per
// destination node pod tcp, pod udp, NodePort and NodePort eTP=Local, over
// IPv4 and IPv6 (8 x nodes targets), all aimed at one loopback server.
func bigSpec(nodes, httpPort, udpPort int) string {
	var b strings.Builder
	b.WriteString(`{"timeout_ms": 2000, "concurrency": 64, "targets": [`)
	for i := range nodes {
		node := fmt.Sprintf("gke-prod-europe-west1-pool-blue-%08x-%04d", i*2654435761%(1<<32), i)
		for _, fam := range []struct{ family, host string }{{"4", "127.0.0.1"}, {"6", "::1"}} {
			for _, tg := range []struct{ id, proto string }{{"pod:tcp:", "tcp"}, {"pod:udp:", "udp"}, {"np-cluster:", "tcp"}, {"np-local:", "tcp"}} {
				port := httpPort
				if tg.proto == "udp" {
					port = udpPort
				}
				if i > 0 || fam.family != "4" || tg.id != "pod:tcp:" {
					b.WriteString(",\n")
				}
				fmt.Fprintf(&b, `{"id": "%s%s:ipv%s", "proto": %q, "host": %q, "port": %d, "family": %q, "count": 1, "max_failures": 3}`,
					tg.id, node, fam.family, tg.proto, fam.host, port, fam.family)
			}
		}
	}
	b.WriteString("]}\n")
	return b.String()
}

// A 1000-node plan (8000 targets, ~1.3 MB) goes in on stdin and comes back as
// one JSON document on stdout, every target answered, in spec order.
func TestDialThousandNodeSpecOnStdin(t *testing.T) {
	s := startDualStackServer(t)
	spec := bigSpec(1000, portOf(s.httpLn.Addr()), portOf(s.udp.LocalAddr()))
	if len(spec) < 1<<20 {
		t.Fatalf("spec is only %d bytes", len(spec))
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"dial", "--spec", "-"}, strings.NewReader(spec), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	dec := json.NewDecoder(&out)
	var doc Output
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("more than one JSON document on stdout: %v", err)
	}
	var in Spec
	json.Unmarshal([]byte(spec), &in)
	if len(doc.Results) != 8000 || len(in.Targets) != 8000 {
		t.Fatalf("%d results for %d targets, want 8000", len(doc.Results), len(in.Targets))
	}
	for i, r := range doc.Results {
		if r.ID != in.Targets[i].ID || len(r.Attempts) != 1 || !r.Attempts[0].OK || r.Attempts[0].ClientIPSeen != in.Targets[i].Host {
			t.Fatalf("result %d: %+v; want %s answered over %s", i, r, in.Targets[i].ID, in.Targets[i].Host)
		}
	}
}
