// Command fraiseql-node runs a FraiseQL Subscriptions edge node.
//
//	fraiseql-node [serve] [flags]        run the node (default)
//	fraiseql-node publish [flags] TOPIC [JSON]
//	fraiseql-node config check [flags]
//	fraiseql-node version
//
// With no configuration it starts an embedded NATS server with JetStream,
// serves the built-in demo chat schema and listens on 127.0.0.1:8080.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // a runtime failure
	exitUsage = 2 // bad flags or configuration
)

//go:embed demo.graphql
var demoSchema string

func main() {
	ctx, stop := notifyStop()
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// stopSignal is the cause of run's context when a signal stops the node:
// serve drains on SIGTERM and stops at once on SIGINT.
type stopSignal struct {
	sig   os.Signal
	force <-chan struct{} // closed by a second signal: stop now
}

func (s stopSignal) Error() string { return "received " + s.sig.String() }

// notifyStop returns a context cancelled with a stopSignal by the first
// SIGINT or SIGTERM; a second one closes its force channel.
func notifyStop() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	force, done := make(chan struct{}), make(chan struct{})
	go func() { // owned by the returned stop
		select {
		case s := <-sigs:
			cancel(stopSignal{sig: s, force: force})
		case <-done:
			return
		}
		select {
		case <-sigs:
			close(force)
		case <-done:
		}
	}()
	return ctx, func() { signal.Stop(sigs); close(done); cancel(nil) }
}

// usageError marks errors that exit with exitUsage.
type usageError struct{ error }

func run(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && (len(args[0]) > 0 && args[0][0] != '-' || isHelp(args[0])) {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, environ, stdout, stderr)
	case "publish":
		err = publish(ctx, args, environ, stdin, stdout, stderr)
	case "config":
		if len(args) == 0 || args[0] != "check" {
			err = usageError{errors.New("usage: fraiseql-node config check [flags] (the flags of serve)")}
			break
		}
		err = configCheck(args[1:], environ, stdout, stderr)
	case "migrate":
		err = migrate(ctx, args, environ, stdout, stderr)
	case "version":
		if len(args) > 0 {
			err = usageError{errors.New("usage: fraiseql-node version")}
			break
		}
		fmt.Fprintln(stdout, versionLine())
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = usageError{fmt.Errorf("unknown command %q\n\n%s", cmd, usage)}
	}
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "fraiseql-node:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "fraiseql-node:", err)
		return exitError
	}
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

const usage = `fraiseql-node: GraphQL subscriptions over WebSocket, from NATS JetStream.

Usage: fraiseql-node [COMMAND] [flags]

Commands:
  serve            run the node (default)
  publish          publish one event: fraiseql-node publish [--tenant T] TOPIC [JSON]
  config check     validate the configuration and print it
  migrate          create or upgrade the PostgreSQL bridge's schema (outbox, fraiseql.publish)
  version          print the version and commit
  help             print this text

Run 'fraiseql-node COMMAND -h' for a command's flags.
Exit codes: 0 success, 1 runtime failure, 2 bad flags or configuration.
Documentation: README.md and docs/ of the repository.
`

// commonFlags are the flags every command takes; they override file and env.
type commonFlags struct {
	config  string
	dataDir string
	natsURL string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "YAML configuration file")
	fs.StringVar(&c.dataDir, "data-dir", "", "data directory (embedded NATS store, nats.url); overrides data_dir")
	fs.StringVar(&c.natsURL, "nats-url", "", "external NATS URL; empty starts the embedded server; overrides nats.url")
}

// load reads the config file and env, then applies the flags that were set.
func (c *commonFlags) load(fs *flag.FlagSet, environ []string) (Config, error) {
	cfg, err := loadConfig(c.config, environ)
	if err != nil {
		return cfg, usageError{err}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data-dir":
			cfg.DataDir = c.dataDir
		case "nats-url":
			cfg.NATS.URL = c.natsURL
		}
	})
	return cfg, nil
}
