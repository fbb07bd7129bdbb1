package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// lockFile is the file in data_dir that the node serving from it holds
// locked; it reads "pid <pid> listen <address>" so that a second node can
// say who holds the directory.
const lockFile = "fraiseql-node.lock"

var errLocked = errors.New("locked")

// dataDirLock is a held lock on a data directory; release ends it.
type dataDirLock struct{ f *os.File }

// lockDataDir makes dir (0700) and locks it for this process, which serves
// on listen. Another node's lock makes it fail with an error that names
// that node and --data-dir: two nodes sharing one directory would share one
// JetStream store and overwrite each other's nats.url.
func lockDataDir(dir, listen string) (*dataDirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	if err := tryLock(f); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if !errors.Is(err, errLocked) {
			return nil, fmt.Errorf("data_dir: lock %s: %w", path, err)
		}
		who := "another fraiseql-node"
		if h := strings.TrimSpace(string(holder)); h != "" {
			who += " (" + h + ")"
		}
		return nil, fmt.Errorf("data_dir %s is in use by %s: its embedded NATS store and nats.url belong to that node; "+
			"stop it, or give this node a directory of its own with --data-dir DIR (or FRAISEQL_DATA_DIR)", dir, who)
	}
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "pid %d listen %s\n", os.Getpid(), listen)
	}
	return &dataDirLock{f: f}, nil
}

// release unlocks the directory (closing the file drops the lock). The
// file stays: were it removed, a node that opened it just before could
// lock the old file while a third locks a new one.
func (l *dataDirLock) release() { l.f.Close() }
