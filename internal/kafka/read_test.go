package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A transactional producer leaves commit and abort markers in the log,
// offsets no consumer is given: ReadTopic still ends at the partition's end,
// with every record (uncommitted reads: an aborted transaction's too).
func TestReadTopicTransactionalInput(t *testing.T) {
	addr := fakeBroker(t)
	const topic = "tx"
	conn := Conn{Brokers: []string{addr}}
	admin, err := conn.NewAdmin("test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureTopics(admin, Topic{Name: topic, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("tx-producer"), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := 0
	for i, commit := range []bool{true, false, true} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for j := range 3 {
			if err := cl.ProduceSync(ctx, kgo.StringRecord(fmt.Sprintf("txn %d record %d", i, j))).FirstErr(); err != nil {
				t.Fatal(err)
			}
			want++
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	client, err := conn.NewClient("test")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	end, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var got []int64
	go func() {
		done <- ReadTopic(client, topic, func(m *sarama.ConsumerMessage) error { got = append(got, m.Offset); return nil })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("ReadTopic did not end (partition end %d)", end)
	}
	if len(got) != want || end <= int64(want) {
		t.Fatalf("read %d records at %v, want %d below the end %d, which counts the markers too", len(got), got, want, end)
	}
}
