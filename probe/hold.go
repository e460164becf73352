package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// HoldEvent is one JSON line of `probe hold` output. Detail is a string for
// "connected"/"broken" and a HoldSummary for "ok_summary". ID names the
// target with --plan (several targets held at once) and is left out with
// --target.
type HoldEvent struct {
	Event  string `json:"event"` // connected | broken | late | ok_summary
	ID     string `json:"id,omitempty"`
	At     string `json:"at"` // RFC 3339, UTC, milliseconds
	Detail any    `json:"detail"`
}

// HoldSummary is printed once per target when hold ends (duration over or SIGTERM).
type HoldSummary struct {
	Sent     int `json:"sent"`     // lines written
	Echoed   int `json:"echoed"`   // lines echoed back correctly in time
	Breaks   int `json:"breaks"`   // "broken" events
	Connects int `json:"connects"` // "connected" events
	Late     int `json:"late"`     // lines echoed after more than one interval (latency, not a break)
	MaxMs    int `json:"max_ms"`   // the slowest echo, milliseconds
}

// HoldPlan is the --plan file: the targets one process holds concurrently.
type HoldPlan struct {
	Targets []HoldTarget `json:"targets"`
}

// HoldTarget is one long-lived connection of a plan.
type HoldTarget struct {
	ID     string `json:"id"`     // echoed in every event of this target
	Target string `json:"target"` // host:port of a serve hold port
}

const (
	holdTimeFormat = "2006-01-02T15:04:05.000Z07:00"
	maxHoldTargets = 10000 // one goroutine and one socket each
	// A line unanswered this long is a break. It outlasts TCP's own retransmissions of a lost
	// segment on a live connection: 4 of them even at a 1 s RTO (1+2+4+8 = 15 s), 6 at Linux's
	// 200 ms minimum (12.6 s). A connection that loses all of them is not coming back on its own.
	defaultBreakAfter = 20 * time.Second
)

func runHold(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hold", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "", "host:port of a serve hold port (8082)")
	planPath := fs.String("plan", "", `JSON file {"targets": [{"id": "...", "target": "host:port"}]}: hold them all at once`)
	interval := fs.Duration("interval", time.Second, "write a line this often; an echo later than one interval is late (latency)")
	breakAfter := fs.Duration("break-after", defaultBreakAfter, "a line unanswered this long (or a socket error) is a break; outlasts TCP retransmissions")
	duration := fs.Duration("duration", 0, "stop after this long; 0 = until SIGTERM/SIGINT")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *interval <= 0 || *duration < 0 || *breakAfter < *interval {
		fmt.Fprintln(stderr, "probe hold: --interval must be > 0, --break-after >= --interval and --duration >= 0.")
		return 2
	}
	var targets []HoldTarget
	switch {
	case (*target == "") == (*planPath == ""):
		fmt.Fprintln(stderr, "probe hold: give exactly one of --target host:port and --plan FILE.")
		return 2
	case *target != "":
		if _, _, err := net.SplitHostPort(*target); err != nil {
			fmt.Fprintf(stderr, "probe hold: --target must be host:port, got %q.\n", *target)
			return 2
		}
		targets = []HoldTarget{{Target: *target}}
	default:
		var err error
		if targets, err = readHoldPlan(*planPath); err != nil {
			fmt.Fprintf(stderr, "probe hold: %v.\n", err)
			return 2
		}
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false) // keep "->" readable in details
	out := &holdOutput{enc: enc}
	var wg sync.WaitGroup
	for _, t := range targets {
		h := &holder{id: t.ID, target: t.Target, interval: *interval, breakAfter: *breakAfter, out: out}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.run(ctx)
			h.emit("ok_summary", h.sum)
		}()
	}
	wg.Wait()
	if len(targets) == 0 { // a node that holds nothing still lives until stopped
		<-ctx.Done()
	}
	return 0
}

// readHoldPlan reads and checks a --plan file: ids unique and non-empty, targets host:port.
func readHoldPlan(path string) ([]HoldTarget, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read --plan: %v", err)
	}
	var plan HoldPlan
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&plan); err != nil {
		return nil, fmt.Errorf("--plan %s is not a hold plan: %v", path, err)
	}
	if len(plan.Targets) > maxHoldTargets {
		return nil, fmt.Errorf("--plan %s has %d targets, at most %d", path, len(plan.Targets), maxHoldTargets)
	}
	seen := map[string]bool{}
	for i, t := range plan.Targets {
		if t.ID == "" || seen[t.ID] {
			return nil, fmt.Errorf("--plan %s: target %d needs a unique non-empty id, got %q", path, i+1, t.ID)
		}
		seen[t.ID] = true
		if _, _, err := net.SplitHostPort(t.Target); err != nil {
			return nil, fmt.Errorf("--plan %s: target %q must be host:port, got %q", path, t.ID, t.Target)
		}
	}
	return plan.Targets, nil
}

// holdOutput serializes the events of every target: one whole JSON line each.
type holdOutput struct {
	mu  sync.Mutex
	enc *json.Encoder
}

type holder struct {
	id         string
	target     string
	interval   time.Duration
	breakAfter time.Duration
	out        *holdOutput
	sum        HoldSummary
	late       bool // a "late" event was emitted and no echo has been on time since
}

func (h *holder) emit(event string, detail any) {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.enc.Encode(HoldEvent{Event: event, ID: h.id, At: time.Now().UTC().Format(holdTimeFormat), Detail: detail})
}

// run keeps one connection alive and exchanges a line per interval. Events
// are emitted on state changes only, so a long outage is one "broken" line;
// after a break it reconnects, because the gate wants to know whether new
// connections work again, too.
func (h *holder) run(ctx context.Context) {
	var conn net.Conn
	var rd *bufio.Reader
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	broken := false // a "broken" event was emitted and no reconnect has happened since
	tick := time.NewTicker(h.interval)
	defer tick.Stop()
	for seq := 1; ; seq++ {
		if conn == nil {
			c, err := (&net.Dialer{Timeout: h.breakAfter}).DialContext(ctx, "tcp", h.target)
			if ctx.Err() != nil {
				if c != nil {
					c.Close()
				}
				return // shutting down is not a break
			}
			if err == nil {
				conn, rd, broken, h.late = c, bufio.NewReaderSize(c, holdMaxLine), false, false
				h.sum.Connects++
				h.emit("connected", fmt.Sprintf("%s -> %s", c.LocalAddr(), c.RemoteAddr()))
			} else if !broken {
				broken = true
				h.sum.Breaks++
				h.emit("broken", "connect: "+err.Error())
			}
		} else if err := h.exchange(conn, rd, seq); err != nil {
			if ctx.Err() != nil {
				return
			}
			broken = true
			h.sum.Breaks++
			h.emit("broken", err.Error())
			conn.Close()
			conn = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// exchange writes one line and waits up to --break-after for its echo, as TCP would: a socket
// error breaks at once, an echo later than one interval is latency (one "late" event until an
// echo is on time again).
func (h *holder) exchange(conn net.Conn, rd *bufio.Reader, seq int) error {
	line := fmt.Sprintf("netconform-hold %d\n", seq)
	start := time.Now()
	conn.SetDeadline(start.Add(h.breakAfter))
	h.sum.Sent++
	if _, err := io.WriteString(conn, line); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	raw, err := rd.ReadSlice('\n') // a server's answer is bounded too
	got := string(raw)
	took := time.Since(start)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("no echo of line %d within %v: %w", seq, h.breakAfter, err)
		}
		return fmt.Errorf("no echo of line %d (after %v): %w", seq, took.Round(time.Millisecond), err)
	}
	if got != line {
		return fmt.Errorf("wrong echo: sent %q, got %q", line, got)
	}
	h.sum.Echoed++
	h.sum.MaxMs = max(h.sum.MaxMs, int(took.Milliseconds()))
	if took > h.interval {
		h.sum.Late++
		if !h.late {
			h.late = true
			h.emit("late", fmt.Sprintf("echo of line %d after %v (latency, not a break)", seq, took.Round(time.Millisecond)))
		}
	} else {
		h.late = false
	}
	return nil
}
