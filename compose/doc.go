// Package compose holds the Docker Compose setup for running ridestream with
// Redpanda and PostgreSQL (docker-compose.yml, README.md). It has no code of
// its own: its test parses docker-compose.yml and the repository's Dockerfile
// and checks them against the ridestream binary's real subcommands and flags,
// so the setup stays correct without a Docker engine.
package compose
