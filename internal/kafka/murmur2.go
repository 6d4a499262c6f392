package kafka

import "hash"

// Murmur2 is Kafka's key hash (the Java client's Utils.murmur2).
func Murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[length&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// Partition is Kafka's default partition for a key: toPositive(murmur2) % n.
func Partition(key []byte, n int32) int32 {
	return int32(Murmur2(key)&0x7fffffff) % n
}

// KafkaHasher is a hash.Hash32 for goka (processors, views, emitters) whose
// Sum32 is murmur2 with the sign bit cleared. goka computes abs(int32(h)) % n
// and sarama's custom hash partitioner abs(int32(h) % n); for a non-negative
// h both equal Kafka's (h & 0x7fffffff) % n, so every client agrees on which
// partition a key lives in.
func KafkaHasher() hash.Hash32 { return &murmurHash{} }

type murmurHash struct{ buf []byte }

func (h *murmurHash) Write(p []byte) (int, error) { h.buf = append(h.buf, p...); return len(p), nil }
func (h *murmurHash) Sum(b []byte) []byte {
	s := h.Sum32()
	return append(b, byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}
func (h *murmurHash) Reset()         { h.buf = h.buf[:0] }
func (h *murmurHash) Size() int      { return 4 }
func (h *murmurHash) BlockSize() int { return 4 }
func (h *murmurHash) Sum32() uint32  { return Murmur2(h.buf) & 0x7fffffff }
