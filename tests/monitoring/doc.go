// Package monitoring checks the operators' kit against real components:
// the alert rules with promtool, and every Grafana panel and alert
// expression against a real Prometheus scraping a real node driven
// through a scripted session. The tests carry the integration build tag
// (make test runs them); they need Debian's prometheus package
// (prometheus, promtool) and the Redis of the integration suites.
package monitoring
