package kafka

import (
	"context"
	"sync"

	"github.com/IBM/sarama"
)

// PrefixCommitGroup wraps a sarama.ConsumerGroup so that a partition's
// committed offset only ever covers a contiguous prefix of completed
// messages.
//
// goka marks a message when all emits of its callback are acked, and messages
// finish out of order all the time (a late ride with no emit completes before
// the ride before it). sarama keeps the largest marked offset, so a crash
// after such a jump loses the outputs of the skipped message. Behind this
// wrapper a mark for offset o only advances the commit once every message
// delivered before o is marked too.
type PrefixCommitGroup struct {
	sarama.ConsumerGroup
	// OnMark, when set, is told each time a partition's contiguous prefix of
	// completed messages grows: every message before next is complete.
	OnMark func(topic string, partition int32, next int64)
}

// Consume runs handler with sessions and claims that track completion.
func (g PrefixCommitGroup) Consume(ctx context.Context, topics []string, handler sarama.ConsumerGroupHandler) error {
	return g.ConsumerGroup.Consume(ctx, topics, &prefixHandler{inner: handler, onMark: g.OnMark})
}

type prefixHandler struct {
	inner  sarama.ConsumerGroupHandler
	onMark func(topic string, partition int32, next int64)
	mu     sync.Mutex
	sess   map[sarama.ConsumerGroupSession]*prefixSession
}

func (h *prefixHandler) wrap(s sarama.ConsumerGroupSession) *prefixSession {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sess == nil {
		h.sess = map[sarama.ConsumerGroupSession]*prefixSession{}
	}
	ps, ok := h.sess[s]
	if !ok {
		ps = &prefixSession{ConsumerGroupSession: s, parts: map[topicPartition]*tracker{}, onMark: h.onMark}
		h.sess[s] = ps
	}
	return ps
}

func (h *prefixHandler) Setup(s sarama.ConsumerGroupSession) error { return h.inner.Setup(h.wrap(s)) }

func (h *prefixHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	err := h.inner.Cleanup(h.wrap(s))
	h.mu.Lock()
	delete(h.sess, s)
	h.mu.Unlock()
	return err
}

func (h *prefixHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	ps := h.wrap(s)
	tr := ps.tracker(c.Topic(), c.Partition())
	out := make(chan *sarama.ConsumerMessage)
	done := make(chan struct{})
	go func() {
		defer close(out)
		for {
			select {
			case m, ok := <-c.Messages():
				if !ok {
					return
				}
				tr.delivered(m.Offset)
				select {
				case out <- m:
				case <-done:
					return
				}
			case <-done:
				return
			}
		}
	}()
	defer close(done)
	return h.inner.ConsumeClaim(ps, &prefixClaim{ConsumerGroupClaim: c, out: out})
}

type prefixClaim struct {
	sarama.ConsumerGroupClaim
	out chan *sarama.ConsumerMessage
}

func (c *prefixClaim) Messages() <-chan *sarama.ConsumerMessage { return c.out }

type topicPartition struct {
	topic     string
	partition int32
}

type prefixSession struct {
	sarama.ConsumerGroupSession
	mu     sync.Mutex
	parts  map[topicPartition]*tracker
	onMark func(topic string, partition int32, next int64)
}

func (s *prefixSession) tracker(topic string, partition int32) *tracker {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := topicPartition{topic, partition}
	t, ok := s.parts[k]
	if !ok {
		t = &tracker{done: map[int64]bool{}}
		s.parts[k] = t
	}
	return t
}

// MarkOffset records that the message at offset-1 is complete and commits the
// contiguous prefix.
func (s *prefixSession) MarkOffset(topic string, partition int32, offset int64, metadata string) {
	if next, ok := s.tracker(topic, partition).complete(offset - 1); ok {
		s.ConsumerGroupSession.MarkOffset(topic, partition, next, metadata)
		if s.onMark != nil {
			s.onMark(topic, partition, next)
		}
	}
}

// MarkMessage is MarkOffset(msg.Offset+1).
func (s *prefixSession) MarkMessage(msg *sarama.ConsumerMessage, metadata string) {
	s.MarkOffset(msg.Topic, msg.Partition, msg.Offset+1, metadata)
}

// tracker holds the delivered, not yet committable offsets of one partition.
type tracker struct {
	mu      sync.Mutex
	pending []int64 // delivered in order; pending[head:] are not committable yet
	head    int
	done    map[int64]bool
}

func (t *tracker) delivered(o int64) {
	t.mu.Lock()
	t.pending = append(t.pending, o)
	t.mu.Unlock()
}

// complete marks o done and returns the offset to commit when the prefix grew.
func (t *tracker) complete(o int64) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done[o] = true
	start := t.head
	for t.head < len(t.pending) && t.done[t.pending[t.head]] {
		delete(t.done, t.pending[t.head])
		t.head++
	}
	if t.head == start {
		return 0, false
	}
	next := t.pending[t.head-1] + 1
	if t.head > 1024 && t.head*2 > len(t.pending) {
		t.pending = append(t.pending[:0], t.pending[t.head:]...)
		t.head = 0
	}
	return next, true
}
