package k8s

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/fraiseql/subscriptions/query"
)

const base = "../../ops/k8s/base"

// kinds maps apiVersion/kind to a fresh value of the real API type.
var kinds = map[string]func() any{
	"v1/ConfigMap":                                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                                     func() any { return &corev1.Secret{} },
	"v1/Service":                                    func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                            func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget":                 func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler":        func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/NetworkPolicy":            func() any { return &networkingv1.NetworkPolicy{} },
	"kustomize.config.k8s.io/v1beta1/Kustomization": nil, // checked below, not an API object
}

// strict decodes one YAML document into v, refusing unknown fields.
func strict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(j))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// objects strict-decodes every manifest the kustomization lists, by kind.
func objects(t *testing.T) map[string]any {
	t.Helper()
	kb, err := os.ReadFile(filepath.Join(base, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Namespace  string            `json:"namespace"`
		Labels     []json.RawMessage `json:"labels"`
		Resources  []string          `json:"resources"`
	}
	if err := strict(kb, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(base, "*.yaml"))
	if len(k.Resources) != len(files)-1 {
		t.Errorf("kustomization lists %d resources, the folder has %d manifests", len(k.Resources), len(files)-1)
	}
	out := map[string]any{}
	for _, f := range k.Resources {
		b, err := os.ReadFile(filepath.Join(base, f))
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---")) {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Fatalf("%s #%d: %v", f, i, err)
			}
			mk := kinds[head.APIVersion+"/"+head.Kind]
			if mk == nil {
				t.Fatalf("%s #%d: unexpected %s %s", f, i, head.APIVersion, head.Kind)
			}
			v := mk()
			if err := strict(doc, v); err != nil {
				t.Errorf("%s #%d (%s): %v", f, i, head.Kind, err)
				continue
			}
			out[head.Kind] = v
		}
	}
	return out
}

// TestManifestsDecodeStrictly: every manifest is a real Kubernetes object
// with no unknown field (a typo fails here, not at kubectl apply).
func TestManifestsDecodeStrictly(t *testing.T) {
	objs := objects(t)
	for _, kind := range []string{"ConfigMap", "Secret", "Service", "Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"} {
		if objs[kind] == nil {
			t.Errorf("no %s", kind)
		}
	}
	// The strict decoder must refuse a misspelt field, or this test proves nothing.
	if err := strict([]byte("apiVersion: v1\nkind: Service\nspec:\n  selectr: {}\n"), &corev1.Service{}); err == nil {
		t.Fatal("a misspelt field was accepted")
	}
}

// nodeConfig is the part of the node's config.yaml these checks read.
type nodeConfig struct {
	Listen    string `json:"listen"`
	OpsListen string `json:"ops_listen"`
	Schema    string `json:"schema"`
	Auth      struct {
		SecretFile string `json:"hs256_secret_file"`
	} `json:"auth"`
	Shutdown struct {
		DrainDelay  string `json:"drain_delay"`
		DrainWindow string `json:"drain_window"`
		Timeout     string `json:"timeout"`
	} `json:"shutdown"`
}

func duration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDeploymentMatchesNodeConfig: the Deployment's probes, ports, mounts
// and grace period agree with the node configuration it mounts.
func TestDeploymentMatchesNodeConfig(t *testing.T) {
	objs := objects(t)
	dep := objs["Deployment"].(*appsv1.Deployment)
	cm := objs["ConfigMap"].(*corev1.ConfigMap)
	var cfg nodeConfig
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := query.LoadSchema("schema.graphql", cm.Data["schema.graphql"]); err != nil {
		t.Errorf("the ConfigMap's schema does not load: %v", err)
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]

	// The grace period covers preStop and the node's whole shutdown.
	delay, window, timeout := duration(t, cfg.Shutdown.DrainDelay), duration(t, cfg.Shutdown.DrainWindow), duration(t, cfg.Shutdown.Timeout)
	if delay+window >= timeout {
		t.Errorf("drain_delay + drain_window (%v) must be below shutdown.timeout (%v)", delay+window, timeout)
	}
	var preStop time.Duration
	if h := c.Lifecycle; h == nil || h.PreStop == nil || h.PreStop.Sleep == nil {
		t.Error("no preStop sleep")
	} else {
		preStop = time.Duration(h.PreStop.Sleep.Seconds) * time.Second
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	if grace < preStop+timeout+5*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v < preStop %v + shutdown.timeout %v + 5s: the pod would be killed mid-drain", grace, preStop, timeout)
	}
	// Readiness must drop before drain_delay ends, or new clients keep coming.
	rp := c.ReadinessProbe
	if rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != "/readyz" || rp.HTTPGet.Port.String() != "ops" {
		t.Fatalf("readiness probe %+v, want /readyz on the ops port", rp)
	}
	if out := time.Duration(rp.PeriodSeconds*rp.FailureThreshold) * time.Second; out >= delay {
		t.Errorf("readiness takes %v to fail, not within drain_delay %v", out, delay)
	}
	if lp := c.LivenessProbe; lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v, want /healthz", lp)
	}

	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, addr := range map[string]string{"http": cfg.Listen, "ops": cfg.OpsListen} {
		if !strings.HasSuffix(addr, fmt.Sprintf(":%d", ports[name])) {
			t.Errorf("port %s is %d, the node listens on %s", name, ports[name], addr)
		}
	}
	mounts := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = true
	}
	for _, file := range []string{cfg.Schema, cfg.Auth.SecretFile} {
		if !mounts[filepath.Dir(file)] {
			t.Errorf("%s is not in a mounted volume", file)
		}
	}
	// The ops port is not on the Service, and the policy admits it from monitoring only.
	for _, p := range objs["Service"].(*corev1.Service).Spec.Ports {
		if p.TargetPort.String() == "ops" || p.TargetPort.IntValue() == int(ports["ops"]) {
			t.Error("the Service exposes the ops port")
		}
	}
	np := objs["NetworkPolicy"].(*networkingv1.NetworkPolicy)
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			if p.Port != nil && p.Port.String() == "ops" && len(r.From) == 0 {
				t.Error("the NetworkPolicy admits the ops port from anywhere")
			}
		}
	}
	hpa := objs["HorizontalPodAutoscaler"].(*autoscalingv2.HorizontalPodAutoscaler)
	if hpa.Spec.ScaleTargetRef.Name != dep.Name {
		t.Errorf("the HPA scales %q, not the Deployment", hpa.Spec.ScaleTargetRef.Name)
	}
}
