// Package k8s checks the Kubernetes manifests in ops/k8s against the real
// Kubernetes API types. It is a module of its own so that k8s.io/api is
// a dependency of this check only, never of the node; make test runs it.
package k8s
