package kafka

import (
	"fmt"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Golden vectors from Kafka's UtilsTest.testMurmur2.
func TestMurmur2KafkaVectors(t *testing.T) {
	for in, want := range map[string]int32{
		"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
		"a-little-bit-longer-string": -1486304829, "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := int32(Murmur2([]byte(in))); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestPartitionAgreesEverywhere checks that Kafka's Java rule (as franz-go
// implements it), our Partition, sarama's hash partitioner fed KafkaHasher and
// goka's abs(int32(h)) % n all place every key on the same partition.
func TestPartitionAgreesEverywhere(t *testing.T) {
	javaRule := kgo.StickyKeyPartitioner(nil)
	for _, n := range []int32{1, 3, 8, 12, 16} {
		sp := sarama.NewCustomHashPartitioner(KafkaHasher)("t")
		tp := javaRule.ForTopic("t")
		for i := 0; i < 5000; i++ {
			key := []byte(fmt.Sprintf("%d#%d", 1730419200000+int64(i)*3600000, i%16))
			want := int32(tp.Partition(&kgo.Record{Key: key}, int(n)))
			if got := Partition(key, n); got != want {
				t.Fatalf("Partition(%s, %d) = %d, Kafka says %d", key, n, got, want)
			}
			got, err := sp.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(key)}, n)
			if err != nil || got != want {
				t.Fatalf("sarama partitioner(%s, %d) = %d (%v), Kafka says %d", key, n, got, err, want)
			}
			h := KafkaHasher()
			h.Write(key)
			g := int32(h.Sum32())
			if g < 0 {
				g = -g
			}
			if g%n != want {
				t.Fatalf("goka rule(%s, %d) = %d, Kafka says %d", key, n, g%n, want)
			}
		}
	}
}
