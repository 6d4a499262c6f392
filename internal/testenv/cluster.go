package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/ridestream/ridestream/internal/kafka"
)

// Cluster is a multi-node Apache Kafka 4 KRaft cluster of a test package's
// own (scripts/kafka4.sh start-cluster): every node broker and controller,
// default.replication.factor 3, min.insync.replicas 2. Nodes are numbered
// from 1.
type Cluster struct {
	dir     string
	Brokers []string
}

// StartCluster starts an n-node cluster in a new directory.
func StartCluster(n int) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "ridestream-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	out, err := c.script("start-cluster", strconv.Itoa(n))
	if err != nil {
		c.Close()
		return nil, err
	}
	c.Brokers = strings.Split(strings.TrimSpace(out), ",")
	return c, nil
}

// UseIn makes env's tests run against the cluster.
func (c *Cluster) UseIn(env *Env) {
	env.Kafka = kafka.Conn{Brokers: c.Brokers}
	env.KafkaArgs = []string{"--brokers", strings.Join(c.Brokers, ",")}
	env.BrokerKind = fmt.Sprintf("%d-node Apache Kafka 4 cluster", len(c.Brokers))
}

// Kill SIGKILLs node i.
func (c *Cluster) Kill(i int) error {
	_, err := c.script("stop-node", strconv.Itoa(i), "kill")
	return err
}

// Stop stops node i cleanly (a rolling restart's step).
func (c *Cluster) Stop(i int) error { _, err := c.script("stop-node", strconv.Itoa(i)); return err }

// Start starts node i again, on its address, and waits until it serves.
func (c *Cluster) Start(i int) error { _, err := c.script("start-node", strconv.Itoa(i)); return err }

// Close stops every node and removes the cluster's files.
func (c *Cluster) Close() {
	_, _ = c.script("stop-cluster")
	os.RemoveAll(c.dir)
}

func (c *Cluster) script(args ...string) (string, error) {
	cmd := exec.Command(kafka4Script(), append([]string{args[0], c.dir}, args[1:]...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("kafka4.sh %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}
