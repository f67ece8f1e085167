// Package deploy holds no code: its tests check the deployment files beside
// them (Compose, kustomize, the Grafana dashboard and the Prometheus alerts)
// without a cluster, a container engine or a network. It is a module of its
// own so that kustomize, the Kubernetes API types, compose-go and Prometheus
// stay out of tokenservice's go.mod.
package deploy
