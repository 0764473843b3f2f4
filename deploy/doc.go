// Package deploy holds mxedge's deployment files (systemd, container, compose,
// Kubernetes, example configurations, Grafana dashboard, Prometheus alerts).
// It has no code: its tests check that every file is valid and consistent with
// the configuration loader and docs/METRICS.md.
package deploy
