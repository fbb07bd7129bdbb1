package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
)

func publish(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fraiseql-node publish [flags] TOPIC [JSON]   (JSON from stdin when omitted)")
		fs.PrintDefaults()
	}
	var common commonFlags
	common.register(fs)
	tenant := fs.String("tenant", "", "tenant to publish to (default: the config's tenant, public)")
	msgID := fs.String("id", "", "Nats-Msg-Id: publishing the same id twice within the duplicate window delivers once")
	if err := fs.Parse(args); err != nil {
		return usageErrorOrHelp(err)
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.Usage()
		return usageError{errors.New("publish takes TOPIC and an optional JSON body")}
	}
	cfg, err := common.load(fs, environ)
	if err != nil {
		return err
	}
	if *tenant != "" {
		cfg.Tenant = *tenant
	}
	topic := fs.Arg(0)
	var body []byte
	if fs.NArg() == 2 {
		body = []byte(fs.Arg(1))
	} else if body, err = io.ReadAll(io.LimitReader(stdin, 64<<20)); err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	if !json.Valid(body) {
		return usageError{errors.New("the event body is not valid JSON")}
	}
	ccfg := cfg.clusterConfig()
	if ccfg.URL == "" {
		url, err := os.ReadFile(filepath.Join(cfg.DataDir, natsURLFile))
		if err != nil {
			return fmt.Errorf("no --nats-url given and no running embedded node found in %s (start one with `go run ./cmd/fraiseql-node`): %w", cfg.DataDir, err)
		}
		ccfg.URL = strings.TrimSpace(string(url))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cl, err := cluster.Connect(ctx, ccfg, newLogger(LogConfig{Level: "warn", Format: "text"}, stderr))
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer cl.Close()
	res, err := cl.Publish(ctx, cfg.Tenant, topic, body, *msgID)
	if err != nil {
		return err
	}
	subject, _ := cl.Subject(cfg.Tenant, topic)
	dup := ""
	if res.Duplicate {
		dup = " (duplicate: already in the stream, not delivered again)"
	}
	fmt.Fprintf(stdout, "published to %s, stream sequence %d%s\n", subject, res.Seq, dup)
	return nil
}

func configCheck(args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fraiseql-node config check [flags]   (the flags of serve; prints the effective configuration)")
		fs.PrintDefaults()
	}
	var flags serveFlags
	cfg, err := flags.parse(fs, args, environ)
	if err != nil {
		return err
	}
	if _, err := loadSchema(cfg.Schema); err != nil {
		return usageError{err}
	}
	return printConfig(stdout, cfg)
}
