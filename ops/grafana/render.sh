#!/usr/bin/env bash
# Pictures of the three dashboards with real data: runs the Prometheus
# check of tests/monitoring (a real node and a real Prometheus) with a
# 90-second scripted load, then draws each dashboard's panels from what
# Prometheus returned into docs/img/dashboard-<name>.png.
# Needs what make test needs (prometheus, Redis) and python3-matplotlib.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=python3   # Debian's python3-matplotlib is on the system interpreter
python3 -c 'import matplotlib' 2>/dev/null || py=/usr/bin/python3
$py -c 'import matplotlib' || { echo "matplotlib missing: apt-get install -y python3-matplotlib" >&2; exit 1; }
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
FRAISEQL_DASHBOARD_DATA="$data" go test -tags integration -count=1 -timeout 10m \
  -run TestDashboardsAndAlertsReturnData ./tests/monitoring
for f in "$data"/*.data.json; do
  name=$(basename "$f" .data.json)
  $py ops/grafana/render.py "$f" "docs/img/dashboard-$name.png"
  echo "docs/img/dashboard-$name.png"
done
