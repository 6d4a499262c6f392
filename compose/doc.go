// Package compose holds the Docker Compose setup for running ridestream with
// Redpanda and PostgreSQL, watched by Prometheus (prometheus/: scrape
// configuration and alert rules) and Grafana (grafana/: provisioned
// datasource and dashboard). It has no code of its own: its tests parse
// docker-compose.yml, the monitoring files and the repository's Dockerfile
// and check them against the ridestream binary's real subcommands, flags and
// /metrics, so the setup stays correct without a Docker engine.
package compose
