// Package pgserver starts a throwaway PostgreSQL cluster from the server
// binaries installed on the machine (initdb + postgres on a free loopback
// port). It backs the embedded default of the binaries (no --database-url) and
// the tests when RIDESTREAM_TEST_DATABASE_URL is unset.
package pgserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Database is the database created in every throwaway cluster.
const Database = "ridestream"

// Server is a running throwaway cluster.
type Server struct {
	// URL connects to Database as the cluster's superuser.
	URL string
	// Port is the TCP port on 127.0.0.1.
	Port int

	dir  string
	cmd  *exec.Cmd
	done chan error
	keep bool
}

// Options adjust Start.
type Options struct {
	// Dir holds the cluster; empty means a new temporary directory, removed by Stop.
	Dir string
	// Log receives the server's output; nil discards it.
	Log *os.File
	// Settings are extra `-c name=value` server settings.
	Settings map[string]string
	// TLSCertFile and TLSKeyFile, when set, turn on TLS (ssl=on) with this
	// server certificate and key (PEM); they are copied into the cluster's
	// directory with the permissions PostgreSQL insists on.
	TLSCertFile, TLSKeyFile string
}

// BinDir finds the PostgreSQL server binaries: `pg_config --bindir` when it
// holds initdb, else the newest /usr/lib/postgresql/*/bin.
func BinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", errors.New("no PostgreSQL server binaries found (pg_config --bindir, /usr/lib/postgresql/*/bin): install the postgresql package")
	}
	sort.Slice(matches, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[j]))))
		return vi < vj
	})
	return filepath.Dir(matches[len(matches)-1]), nil
}

// Start initialises a cluster (unless Dir already holds one) and starts it.
// PostgreSQL refuses to run as root, so as root it runs as the `postgres`
// user (or `nobody`).
func Start(ctx context.Context, opt Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{dir: opt.Dir, keep: opt.Dir != "", done: make(chan error, 1)}
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "ridestream-pg-"); err != nil {
			return nil, fmt.Errorf("make postgres dir: %w", err)
		}
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("make postgres dir: %w", err)
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(s.dir, "data")
	sock := filepath.Join(s.dir, "sock")
	if err := os.MkdirAll(sock, 0o755); err != nil {
		return nil, fmt.Errorf("make socket dir: %w", err)
	}
	settings := maps.Clone(opt.Settings)
	if opt.TLSCertFile != "" {
		if settings == nil {
			settings = map[string]string{}
		}
		for src, dst := range map[string]string{opt.TLSCertFile: "server.crt", opt.TLSKeyFile: "server.key"} {
			b, err := os.ReadFile(src)
			if err != nil {
				return nil, fmt.Errorf("postgres TLS: %w", err)
			}
			if err := os.WriteFile(filepath.Join(s.dir, dst), b, 0o600); err != nil {
				return nil, fmt.Errorf("postgres TLS: %w", err)
			}
		}
		settings["ssl"] = "on"
		settings["ssl_cert_file"] = filepath.Join(s.dir, "server.crt")
		settings["ssl_key_file"] = filepath.Join(s.dir, "server.key")
	}
	if cred != nil {
		if err := chownTree(s.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
		// The directory's parents must be traversable by that user.
		_ = os.Chmod(filepath.Dir(s.dir), 0o755)
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		init := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "ridestream",
			"--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
		init.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := init.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("initdb %s: %w\n%s", data, err, out)
		}
	}
	if s.Port, err = freePort(); err != nil {
		return nil, err
	}
	args := []string{"-D", data, "-p", strconv.Itoa(s.Port), "-k", sock,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"}
	for k, v := range settings {
		args = append(args, "-c", k+"="+v)
	}
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), args...)
	// Pdeathsig: the cluster dies with the process that started it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	if opt.Log != nil {
		s.cmd.Stdout, s.cmd.Stderr = opt.Log, opt.Log
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	go func() { s.done <- s.cmd.Wait() }()

	admin := fmt.Sprintf("postgres://ridestream@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	s.URL = fmt.Sprintf("postgres://ridestream@127.0.0.1:%d/%s?sslmode=disable", s.Port, Database)
	if err := s.waitReady(ctx, admin); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context, admin string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, admin)
		if err == nil {
			defer conn.Close(ctx)
			var exists bool
			if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", Database).Scan(&exists); err != nil {
				return fmt.Errorf("check database: %w", err)
			}
			if !exists {
				if _, err := conn.Exec(ctx, "CREATE DATABASE "+Database); err != nil {
					return fmt.Errorf("create database: %w", err)
				}
			}
			return nil
		}
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("postgres exited during start-up: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after 60s: %w", err)
		}
	}
}

// Pid is the postmaster's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Kill stops the server abruptly (SIGKILL to its process group), as a crash
// would; the data directory stays.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		err := <-s.done
		s.done <- err
	}
}

// Stop shuts the server down (fast shutdown) and removes a temporary directory.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-s.done:
			s.done <- err
		case <-time.After(30 * time.Second):
			s.Kill()
		}
	}
	if !s.keep {
		_ = os.RemoveAll(s.dir)
	}
}

// Restart starts the same cluster again on the same port after Stop or Kill.
func (s *Server) Restart(ctx context.Context) error {
	cmd := exec.Command(s.cmd.Path, s.cmd.Args[1:]...)
	cmd.SysProcAttr = s.cmd.SysProcAttr
	cmd.Stdout, cmd.Stderr = s.cmd.Stdout, s.cmd.Stderr
	<-s.done
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	s.cmd = cmd
	go func() { s.done <- cmd.Wait() }()
	return s.waitReady(ctx, strings.Replace(s.URL, "/"+Database+"?", "/postgres?", 1))
}

func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and neither a postgres nor a nobody user exists to run PostgreSQL as")
}

func chownTree(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
		return nil
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
