package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"time"
)

// HoldEvent is one JSON line of `probe hold` output. Detail is a string for
// "connected"/"broken" and a HoldSummary for "ok_summary".
type HoldEvent struct {
	Event  string `json:"event"` // connected | broken | ok_summary
	At     string `json:"at"`    // RFC 3339, UTC, milliseconds
	Detail any    `json:"detail"`
}

// HoldSummary is printed once when hold ends (duration over or SIGTERM).
type HoldSummary struct {
	Sent     int `json:"sent"`     // lines written
	Echoed   int `json:"echoed"`   // lines echoed back correctly in time
	Breaks   int `json:"breaks"`   // "broken" events
	Connects int `json:"connects"` // "connected" events
}

const holdTimeFormat = "2006-01-02T15:04:05.000Z07:00"

func runHold(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hold", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "", "host:port of a serve hold port (8082)")
	interval := fs.Duration("interval", time.Second, "write a line this often; its echo must arrive within one interval")
	duration := fs.Duration("duration", 0, "stop after this long; 0 = until SIGTERM/SIGINT")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, _, err := net.SplitHostPort(*target); err != nil {
		fmt.Fprintf(stderr, "probe hold: --target must be host:port, got %q.\n", *target)
		return 2
	}
	if *interval <= 0 || *duration < 0 {
		fmt.Fprintln(stderr, "probe hold: --interval must be > 0 and --duration >= 0.")
		return 2
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false) // keep "->" readable in details
	h := &holder{target: *target, interval: *interval, out: enc}
	h.run(ctx)
	h.emit("ok_summary", h.sum)
	return 0
}

type holder struct {
	target   string
	interval time.Duration
	out      *json.Encoder
	sum      HoldSummary
}

func (h *holder) emit(event string, detail any) {
	h.out.Encode(HoldEvent{Event: event, At: time.Now().UTC().Format(holdTimeFormat), Detail: detail})
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
			c, err := (&net.Dialer{Timeout: h.interval}).DialContext(ctx, "tcp", h.target)
			if ctx.Err() != nil {
				return // shutting down is not a break
			}
			if err == nil {
				conn, rd, broken = c, bufio.NewReader(c), false
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

// exchange writes one line and waits up to one interval for its echo.
func (h *holder) exchange(conn net.Conn, rd *bufio.Reader, seq int) error {
	line := fmt.Sprintf("netconform-hold %d\n", seq)
	conn.SetDeadline(time.Now().Add(h.interval))
	h.sum.Sent++
	if _, err := io.WriteString(conn, line); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	got, err := rd.ReadString('\n')
	if err != nil {
		return fmt.Errorf("no echo of line %d within %v: %w", seq, h.interval, err)
	}
	if got != line {
		return fmt.Errorf("wrong echo: sent %q, got %q", line, got)
	}
	h.sum.Echoed++
	return nil
}
