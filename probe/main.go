// Command probe is the netconform in-cluster probe: it serves /whoami over
// HTTP, UDP and a line-echo "hold" port, and dials batches of targets,
// printing structured results that the pytest suite turns into verdicts.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: probe <command> [flags]

commands:
  serve   serve /whoami and /healthz (HTTP), whoami datagrams (UDP) and a line echo (hold)
  dial    dial the targets of a JSON spec (--spec JSON, or --spec - for stdin) and print results
  pause   sleep until SIGTERM/SIGINT
  hold    keep one TCP connection to a serve hold port and report breaks as JSON lines
  route-mtu IP...  print "<ip> <mtu>" per address: the MTU of the kernel's route toward it
`

func main() {
	// SIGTERM is how Kubernetes stops a pod; ending cleanly with exit 0 keeps
	// terminations from looking like probe crashes.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stderr)
	case "dial":
		return runDial(ctx, rest, stdin, stdout, stderr)
	case "pause":
		// The line tells callers (and tests) that the signal handler is in place.
		fmt.Fprintln(stderr, "probe pause: waiting for SIGTERM")
		<-ctx.Done()
		return 0
	case "hold":
		return runHold(ctx, rest, stdout, stderr)
	case "route-mtu":
		return runRouteMTU(rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "probe: unknown command %q\n%s", cmd, usage)
		return 2
	}
}
