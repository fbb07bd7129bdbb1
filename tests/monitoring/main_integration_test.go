//go:build integration

package monitoring

import (
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// promClient queries Prometheus; TestMain closes its idle connections
// before the leak check.
var promClient = &http.Client{Transport: &http.Transport{}}

func TestMain(m *testing.M) {
	code := m.Run()
	promClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goroutine leak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
