package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestKubernetesConfigChecks: the node configuration and schema that the
// Kubernetes ConfigMap (ops/k8s/base) mounts pass `config check`, with
// the mounted paths pointed at local copies.
func TestKubernetesConfigChecks(t *testing.T) {
	b, err := os.ReadFile("../../ops/k8s/base/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(b, &cm); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	schema := filepath.Join(dir, "schema.graphql")
	secret := filepath.Join(dir, "jwt")
	os.WriteFile(schema, []byte(cm.Data["schema.graphql"]), 0o600)
	os.WriteFile(secret, []byte("a-test-secret-of-at-least-32-bytes-long"), 0o600)
	cfg := strings.NewReplacer(
		"/etc/fraiseql/schema/schema.graphql", schema,
		"/etc/fraiseql/secret/jwt", secret,
		"/var/lib/fraiseql", dir,
	).Replace(cm.Data["config.yaml"])
	file := filepath.Join(dir, "config.yaml")
	os.WriteFile(file, []byte(cfg), 0o600)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"config", "check", "--config", file}, nil, nil, &stdout, &stderr); code != exitOK {
		t.Fatalf("config check of the ConfigMap's config.yaml: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "nats.nats.svc.cluster.local") {
		t.Fatalf("effective config lacks the NATS service:\n%s", stdout.String())
	}
}
