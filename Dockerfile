# syntax=docker/dockerfile:1
#
# ridestream: one static binary with the subcommands process, sink, generate,
# heartbeat, reset and migrate. Build from the repository root:
#
#   docker build -t ridestream .
#
# compose/docker-compose.yml builds it for the demo stack.

# The build stage's Go must be at least go.mod's `go` line (compose/compose_test.go checks).
FROM golang:1.26 AS build
WORKDIR /src
# Module downloads first, so that a source change does not fetch them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Static (no cgo), so it runs on a base without libc; timetzdata embeds the
# time zone database that --time-zone needs whatever the base image holds.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -tags timetzdata -ldflags="-s -w" -o /ridestream ./cmd/ridestream

# Distroless: no shell, no package manager, runs as an unprivileged user. The
# ridestream services need neither a shell nor a healthcheck (compose orders
# them on the broker's and PostgreSQL's healthchecks instead), and the goka
# tables live in memory, so nothing writes to the file system.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /ridestream /usr/local/bin/ridestream
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/ridestream"]
CMD ["help"]
