package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func parseEvents(t *testing.T, out string) []HoldEvent {
	t.Helper()
	var evs []HoldEvent
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev HoldEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("bad event line %q: %v", line, err)
		}
		if _, err := time.Parse(time.RFC3339, ev.At); err != nil {
			t.Fatalf("at %q is not RFC 3339: %v", ev.At, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func summaryOf(t *testing.T, ev HoldEvent) HoldSummary {
	t.Helper()
	if ev.Event != "ok_summary" {
		t.Fatalf("last event = %+v, want ok_summary", ev)
	}
	b, _ := json.Marshal(ev.Detail)
	var s HoldSummary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func eventNames(evs []HoldEvent) []string {
	var names []string
	for _, e := range evs {
		names = append(names, e.Event)
	}
	return names
}

func TestHoldSteady(t *testing.T) {
	s := startTestServer(t)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"hold", "--target", s.holdLn.Addr().String(), "--interval", "100ms", "--duration", "500ms"}, nil, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	evs := parseEvents(t, out.String())
	if names := eventNames(evs); len(names) != 2 || names[0] != "connected" {
		t.Fatalf("events = %v, want [connected ok_summary]", names)
	}
	if !strings.Contains(out.String(), " -> "+s.holdLn.Addr().String()) {
		t.Fatalf("connected detail should name the peer unescaped: %s", out.String())
	}
	sum := summaryOf(t, evs[len(evs)-1])
	if sum.Breaks != 0 || sum.Connects != 1 || sum.Sent < 3 || sum.Echoed != sum.Sent {
		t.Fatalf("summary = %+v", sum)
	}
}

// The server goes away (break), stays away (no repeated events), then comes
// back on the same port (reconnect).
func TestHoldBreakAndReconnect(t *testing.T) {
	s, err := startServer(serveConfig{bind: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(s.holdLn.Addr())
	var out, errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(context.Background(), []string{"hold", "--target", "127.0.0.1:" + strconv.Itoa(port), "--interval", "100ms", "--duration", "2s"}, nil, &out, &errb)
	}()
	time.Sleep(500 * time.Millisecond)
	s.Close()
	time.Sleep(500 * time.Millisecond) // several failed reconnects
	s2, err := startServer(serveConfig{bind: "127.0.0.1", holdPort: port})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	evs := parseEvents(t, out.String())
	names := strings.Join(eventNames(evs), " ")
	if names != "connected broken connected ok_summary" {
		t.Fatalf("events = %s, want connected broken connected ok_summary\n%s", names, out.String())
	}
	sum := summaryOf(t, evs[len(evs)-1])
	if sum.Breaks != 1 || sum.Connects != 2 || sum.Echoed < 2 {
		t.Fatalf("summary = %+v", sum)
	}
}

func TestHoldInitialConnectFailure(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"hold", "--target", "127.0.0.1:" + strconv.Itoa(closedPort(t, "tcp")), "--interval", "50ms", "--duration", "300ms"}, nil, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	evs := parseEvents(t, out.String())
	if names := strings.Join(eventNames(evs), " "); names != "broken ok_summary" {
		t.Fatalf("events = %s", names)
	}
	if d, _ := evs[0].Detail.(string); !strings.HasPrefix(d, "connect: ") || !strings.Contains(d, "refused") {
		t.Fatalf("broken detail = %q", d)
	}
}

// A peer that accepts but never echoes must count as broken after --break-after.
func TestHoldNoEcho(t *testing.T) {
	ln := peer(t, func(c net.Conn) { io.Copy(io.Discard, c) }) // reads every line, answers none
	var out, errb bytes.Buffer
	run(context.Background(), []string{"hold", "--target", ln.Addr().String(), "--interval", "50ms", "--break-after", "60ms", "--duration", "180ms"}, nil, &out, &errb)
	evs := parseEvents(t, out.String())
	if len(evs) < 3 || evs[0].Event != "connected" || evs[1].Event != "broken" {
		t.Fatalf("events = %v", eventNames(evs))
	}
	if d, _ := evs[1].Detail.(string); !strings.HasPrefix(d, "no echo of line") {
		t.Fatalf("broken detail = %q", d)
	}
}

// An echo slower than one interval but within --break-after is latency: one "late" event, no
// break, counted in the summary.
func TestHoldLateEchoIsNotABreak(t *testing.T) {
	ln := peer(t, func(c net.Conn) { // echoes every line 120 ms late
		rd := bufio.NewReader(c)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			time.Sleep(120 * time.Millisecond)
			io.WriteString(c, line)
		}
	})
	var out, errb bytes.Buffer
	run(context.Background(), []string{"hold", "--target", ln.Addr().String(), "--interval", "50ms", "--break-after", "1s", "--duration", "600ms"}, nil, &out, &errb)
	evs := parseEvents(t, out.String())
	names := eventNames(evs)
	if len(evs) != 3 || names[0] != "connected" || names[1] != "late" || names[2] != "ok_summary" {
		t.Fatalf("events = %v", names)
	}
	if d, _ := evs[1].Detail.(string); !strings.HasPrefix(d, "echo of line ") {
		t.Fatalf("late detail = %q", d)
	}
	sum, _ := evs[2].Detail.(map[string]any)
	if sum["breaks"] != float64(0) || sum["late"].(float64) < 2 || sum["max_ms"].(float64) < 120 {
		t.Fatalf("summary = %v", sum)
	}
}

func TestHoldBadArgs(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{
		{"hold"},
		{"hold", "--target", "nohostport"},
		{"hold", "--target", "127.0.0.1:1", "--interval", "0s"},
		{"hold", "--target", "127.0.0.1:1", "--interval", "2s", "--break-after", "1s"},
	} {
		if code := run(context.Background(), args, nil, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func writePlan(t *testing.T, plan string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(path, []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// One process holds several targets at once; every event names its target,
// and a dead target does not disturb the others.
func TestHoldPlanHoldsEveryTargetConcurrently(t *testing.T) {
	a, b := startTestServer(t), startTestServer(t)
	dead := "127.0.0.1:" + strconv.Itoa(closedPort(t, "tcp"))
	plan := writePlan(t, `{"targets": [{"id": "pod:a", "target": "`+a.holdLn.Addr().String()+`"},
		{"id": "service:b", "target": "`+b.holdLn.Addr().String()+`"},
		{"id": "pod:dead", "target": "`+dead+`"}]}`)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"hold", "--plan", plan, "--interval", "100ms", "--duration", "500ms"}, nil, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	byID := map[string][]string{}
	for _, ev := range parseEvents(t, out.String()) {
		byID[ev.ID] = append(byID[ev.ID], ev.Event)
		if ev.Event == "ok_summary" {
			if s := summaryOf(t, ev); ev.ID != "pod:dead" && (s.Connects != 1 || s.Breaks != 0 || s.Sent < 3) {
				t.Fatalf("%s: summary %+v", ev.ID, s)
			}
		}
	}
	want := map[string]string{"pod:a": "connected ok_summary", "service:b": "connected ok_summary", "pod:dead": "broken ok_summary"}
	for id, names := range want {
		if got := strings.Join(byID[id], " "); got != names {
			t.Fatalf("%s: events %q, want %q\n%s", id, got, names, out.String())
		}
	}
	if len(byID) != 3 {
		t.Fatalf("events for %v, want the 3 plan ids only", byID)
	}
}

// A break of one target while another lives on: only the first reports it.
func TestHoldPlanBreakIsPerTarget(t *testing.T) {
	a := startTestServer(t)
	b, err := startServer(serveConfig{bind: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	plan := writePlan(t, `{"targets": [{"id": "a", "target": "`+a.holdLn.Addr().String()+`"}, {"id": "b", "target": "`+b.holdLn.Addr().String()+`"}]}`)
	var out, errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(context.Background(), []string{"hold", "--plan", plan, "--interval", "100ms", "--duration", "900ms"}, nil, &out, &errb)
	}()
	time.Sleep(400 * time.Millisecond)
	b.Close()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	byID := map[string][]string{}
	for _, ev := range parseEvents(t, out.String()) {
		byID[ev.ID] = append(byID[ev.ID], ev.Event)
	}
	if got := strings.Join(byID["a"], " "); got != "connected ok_summary" {
		t.Fatalf("a: %s", got)
	}
	if got := strings.Join(byID["b"], " "); got != "connected broken ok_summary" {
		t.Fatalf("b: %s", got)
	}
}

// An empty plan (a node that is the source of no held pair) waits for its end quietly.
func TestHoldEmptyPlanWaits(t *testing.T) {
	var out, errb bytes.Buffer
	start := time.Now()
	code := run(context.Background(), []string{"hold", "--plan", writePlan(t, `{"targets": []}`), "--duration", "200ms"}, nil, &out, &errb)
	if code != 0 || out.Len() != 0 || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("exit %d after %v, out %q", code, time.Since(start), out.String())
	}
}

func TestHoldBadPlans(t *testing.T) {
	for name, plan := range map[string]string{
		"not json":     `{`,
		"unknown key":  `{"targets": [], "x": 1}`,
		"no id":        `{"targets": [{"target": "127.0.0.1:1"}]}`,
		"duplicate id": `{"targets": [{"id": "a", "target": "127.0.0.1:1"}, {"id": "a", "target": "127.0.0.1:2"}]}`,
		"no port":      `{"targets": [{"id": "a", "target": "127.0.0.1"}]}`,
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"hold", "--plan", writePlan(t, plan)}, nil, &out, &errb); code != 2 {
			t.Errorf("%s: exit %d, want 2", name, code)
		}
		if lines := strings.Count(strings.TrimSpace(errb.String()), "\n"); lines != 0 || errb.Len() == 0 {
			t.Errorf("%s: want one line on stderr, got %q", name, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"hold", "--plan", "/nonexistent/plan.json"}, nil, &out, &errb); code != 2 {
		t.Errorf("missing plan: exit %d", code)
	}
	if code := run(context.Background(), []string{"hold", "--plan", "x", "--target", "127.0.0.1:1"}, nil, &out, &errb); code != 2 {
		t.Errorf("both --plan and --target: exit %d", code)
	}
}

// peer listens on loopback and serves each connection with serve (closed after it returns) until the
// test ends.
func peer(t *testing.T, serve func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln
}
