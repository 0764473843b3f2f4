package upstream

import (
	"os"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func metricString(m prometheus.Metric) string {
	var d dto.Metric
	m.Write(&d)
	return d.String()
}
