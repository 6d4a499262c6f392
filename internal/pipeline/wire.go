package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/ride"
)

// Binary messages of the processors' internal topics and tables (they cross
// process boundaries: between processor instances, and to views). Each
// starts with a version byte; integers are varints. docs/design.md,
// "Topology", says who writes and reads each.
//
// Version 5: the clock aggregates each batch's on-time rides per
// aggregation (partial sums per window and group, runs per group for
// sessions) and the watermark stage forwards them to window keys and
// finalizes them as the pipeline's watermark passes; windows are deleted
// once final and forgotten.

// WireVersion is the version byte of every internal message; it is part of
// the pipeline record, so a pipeline written by another version is refused
// before anything is read.
const WireVersion = 5

var errShort = errors.New("truncated message")

// NoPrev marks the first message route sends to a key in its session: the
// receiver cannot check the chain then.
const NoPrev = -1

// ClockIn is a decoded input record forwarded by route to the clock stage:
// its ride carries the fields the pipeline's aggregations read.
type ClockIn struct {
	Offset    int64
	Heartbeat bool
	EventMs   int64
	Ride      ride.Ride
}

// ClockBatch is what route sends the clock stage, keyed by the source
// partition's clock key: consecutive decoded records of one partition in
// offset order (undecodable ones are absent).
type ClockBatch struct {
	// Prev is the last input offset of the batch route sent before this one
	// in its current session, or NoPrev. A batch that follows a lost write
	// is skipped; route sends it again after its restart (its commit never
	// passes a failed write).
	Prev  int64
	Items []ClockIn
}

// Last is the offset of the batch's last record.
func (b ClockBatch) Last() int64 { return b.Items[len(b.Items)-1].Offset }

// GroupAcc is one group's partial measures.
type GroupAcc struct {
	Group aggregate.Group
	Acc   aggregate.Acc
}

// WindowPartial is what some on-time rides add to one tumbling window:
// per group (ascending) their measures.
type WindowPartial struct {
	Start  int64
	Groups []GroupAcc
}

// GroupRuns are one group's runs of on-time rides (ascending) of a session
// aggregation.
type GroupRuns struct {
	Group aggregate.Group
	Runs  []aggregate.Run
}

// Partials is what a clock write adds to one aggregation: tumbling windows
// (ascending by start) or session groups (ascending by group).
type Partials struct {
	Windows []WindowPartial
	Runs    []GroupRuns
}

// Empty reports whether p adds nothing.
func (p Partials) Empty() bool { return len(p.Windows) == 0 && len(p.Runs) == 0 }

// LateOut is a ride that was late for aggregation Agg.
type LateOut struct {
	Offset      int64
	Agg         int
	EventMs     int64
	WindowStart int64 // tumbling only
	STBefore    int64
	Ride        ride.Ride
}

// RejectOut is a ride the stream-time rule rejected as an outlier.
type RejectOut struct {
	Offset  int64
	EventMs int64
	Why     string
}

// ClockState is the clock stage's value per source partition. Its changelog
// is also the clock's output stream: the outputs are those of the records
// this write decided, so outputs and state are written in one record and a
// crash can never separate them.
type ClockState struct {
	Src int32
	// LastOffset is the last input offset the clock received (-1: none);
	// From is LastOffset before this write: the write covers the records
	// (From, LastOffset] (and decided records it had received before).
	LastOffset, From int64
	// Seq numbers the clock's writes per source.
	Seq   int64
	ST    int64
	Valid bool
	// Pending are the records that wait for a jump's witnesses
	// (window.Stream), oldest first.
	Pending []ClockIn
	// The outputs of the records this write decided: per aggregation its
	// partials, the late rides and the outliers.
	Partials []Partials
	Late     []LateOut
	Rejected []RejectOut
}

// Progress is what route forwards from one clock write to the watermark
// stage: the source's range of records and its clock after them, and what
// they added to every aggregation.
type Progress struct {
	Src int32
	// Seq is the clock write's; Prev the clock Seq route forwarded before
	// for this source in its session (NoPrev: the first).
	Seq, Prev int64
	// From, To: the write covers input records (From, To].
	From, To int64
	ST       int64
	Valid    bool
	Pending  []ClockIn
	Partials []Partials
}

// Ack tells the watermark stage that route has committed its reading of
// the watermark changelog past every write with Seq ≤ Done: route will
// never send what those writes output again, so their windows can be
// forgotten.
type Ack struct {
	Done int64
}

// SourceState is the watermark stage's knowledge of one input partition:
// the clock as of its last applied write.
type SourceState struct {
	Last     int64 // input offset: records up to it are applied (-1: none)
	ClockSeq int64
	ST       int64
	Valid    bool
	Pending  []ClockIn
}

// WindowRange is the windows of a tumbling aggregation from From to To
// (their starts), each window's successor starting at its end.
type WindowRange struct {
	From, To int64
}

// FinalRange is a range of windows finalized by the watermark write Seq.
type FinalRange struct {
	Seq int64
	WindowRange
}

// Span is a session's first and last event times.
type Span struct {
	First, Last int64
}

// GroupSpans are a session group's sessions not final yet, as its key
// holds them (ascending).
type GroupSpans struct {
	Group aggregate.Group
	Spans []Span
}

// GroupSeq is a session group messaged by the watermark write Seq.
type GroupSeq struct {
	Group aggregate.Group
	Seq   int64
}

// AggProgress is the watermark stage's open work for one aggregation.
type AggProgress struct {
	// Tumbling: windows that have partials and are not final (ascending,
	// disjoint), and final ones not forgotten yet.
	Open  []WindowRange
	Final []FinalRange
	// Sessions: groups with sessions not final yet, and groups whose keys
	// hold final sessions not forgotten yet.
	Groups []GroupSpans
	Forget []GroupSeq
}

// Routed is one message for a window key of aggregation Agg.
type Routed struct {
	Key string
	Agg int
	Msg WindowMsg
}

// WatermarkState is the watermark stage's only value. Its changelog is its
// output stream too: Outs are the messages for the window keys of its last
// write, and Side the late rides and outliers a repair derived.
type WatermarkState struct {
	Seq      int64
	Sources  []SourceState
	Aggs     []AggProgress
	Outs     []Routed
	Late     []SourcedLate
	Rejected []SourcedReject
}

// SourcedLate and SourcedReject are side outputs with their partition.
type SourcedLate struct {
	Src int32
	LateOut
}

// SourcedReject is a rejection with its partition.
type SourcedReject struct {
	Src int32
	RejectOut
}

// G is the watermark: the lowest stream time of all input partitions
// (ok false while one has none).
func (w *WatermarkState) G() (int64, bool) {
	var g int64
	for i, s := range w.Sources {
		if !s.Valid {
			return 0, false
		}
		if i == 0 || s.ST < g {
			g = s.ST
		}
	}
	return g, len(w.Sources) > 0
}

// WindowMsg is what route sends a window key for the watermark write Seq.
type WindowMsg struct {
	// Seq is the watermark write's; Prev the Seq of the message route sent
	// this key before in its session (NoPrev: the first), and AfterForget
	// says that message was a Forget, which may have deleted the key.
	Seq, Prev   int64
	AfterForget bool
	// Retry: a Forget the key sent itself again (outside the chain).
	Retry bool
	// Partial: on-time rides' measures: a tumbling window's Groups, or a
	// session group's Runs.
	Groups []GroupAcc
	Runs   []aggregate.Run
	// Finalize (tumbling): every partition has closed the window.
	Finalize bool
	// G (sessions, HasG): the watermark; sessions ending at least the gap
	// plus L before it are final.
	G    int64
	HasG bool
	// Forget: the finals of watermark writes ≤ Before are in Kafka for
	// good and route will not send their messages again: drop them.
	Forget bool
	Before int64
}

// Cluster is a session being formed or final (kept until forgotten).
type Cluster struct {
	aggregate.Run
	Final       bool
	FinalOffset int64 // the window-stage input offset of the message that finalized it
	FinalSeq    int64
}

// WindowState is the window stage's value per key: a tumbling window's
// (shard's) groups, or a session group's clusters.
type WindowState struct {
	Agg     int
	LastSeq int64
	// SeenOffset is the window-stage input offset of the last message the
	// key got (applied, duplicate or not): the key is deleted only once the
	// stage's commit has passed it, so no message of the key can come again.
	SeenOffset int64
	// Tumbling.
	Start, End int64
	Groups     []GroupAcc
	Final      bool
	// FinalOffset is the window-stage input offset of the message that
	// finalized the window: that message redelivered emits the same rows.
	FinalOffset, FinalSeq int64
	// Sessions.
	Group    aggregate.Group
	Clusters []Cluster
}

// Keys.

// WatermarkKey is the watermark stage's one key.
const WatermarkKey = "watermark"

// WindowKey is the window stage's key of a tumbling window's shard.
func WindowKey(agg string, start int64, shard int) string {
	return agg + "@" + strconv.FormatInt(start, 10) + "#" + strconv.Itoa(shard)
}

// SessionKey is the window stage's key of a session aggregation's group.
func SessionKey(agg string, k int, g aggregate.Group) string {
	var b strings.Builder
	b.WriteString(agg)
	b.WriteString("@g")
	for i := range k {
		b.WriteByte(':')
		if g.Null&(1<<i) != 0 {
			b.WriteString("null")
		} else {
			b.WriteString(strconv.FormatInt(g.V[i], 10))
		}
	}
	return b.String()
}

// ParseSessionKey reads a SessionKey with k group-by fields: the
// aggregation and the group (ok false for another key).
func ParseSessionKey(key string, k int) (agg string, g aggregate.Group, ok bool) {
	agg, rest, found := strings.Cut(key, "@g")
	if !found {
		return "", g, false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != k+1 || parts[0] != "" || k > aggregate.MaxGroupBy {
		return "", g, false
	}
	for i, v := range parts[1:] {
		if v == "null" {
			g.Null |= 1 << i
			continue
		}
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "", g, false
		}
		g.V[i] = x
	}
	return agg, g, true
}

// ParseWindowKey reads a WindowKey: the aggregation, the window start and
// the shard (ok false for another key).
func ParseWindowKey(key string) (agg string, start int64, shard int, ok bool) {
	agg, rest, found := strings.Cut(key, "@")
	if !found || strings.HasPrefix(rest, "g") {
		return "", 0, 0, false
	}
	s, sh, found := strings.Cut(rest, "#")
	if !found {
		return "", 0, 0, false
	}
	var err1, err2 error
	start, err1 = strconv.ParseInt(s, 10, 64)
	shard, err2 = strconv.Atoi(sh)
	return agg, start, shard, err1 == nil && err2 == nil
}

// Shard of a group among n.
func Shard(g aggregate.Group, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	var b [binary.MaxVarintLen64]byte
	for _, v := range g.V {
		h.Write(b[:binary.PutVarint(b[:], v)])
	}
	h.Write([]byte{g.Null})
	return int(h.Sum32() % uint32(n))
}

// Encoding.

type enc struct{ b []byte }

func (e *enc) i(v int64)  { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) u(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) u8(v uint8) { e.b = append(e.b, v) }
func (e *enc) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}
func (e *enc) str(s string) {
	e.u(uint64(len(s)))
	e.b = append(e.b, s...)
}

// n writes a length.
func (e *enc) n(n int) { e.u(uint64(n)) }

type dec struct {
	b   []byte
	err error
}

func (d *dec) i() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) u() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) u8() uint8 {
	if d.err != nil || len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) bool() bool { return d.u8() == 1 }

func (d *dec) str() string {
	n := d.count()
	if d.err != nil || n > len(d.b) {
		d.err = errShort
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads a length that cannot exceed the bytes left (each element
// takes at least one).
func (d *dec) count() int {
	n := d.u()
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = errShort
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

func (d *dec) version(what string) {
	if v := d.u8(); d.err == nil && v != WireVersion {
		d.err = fmt.Errorf("%s: unknown wire version %d", what, v)
	}
}

// Wire encodes and decodes the internal messages of one pipeline: how many
// group-by fields and measures each aggregation has, and which ride fields
// travel, come from its spec.
type Wire struct {
	aggs   []aggregate.Aggregation
	fields uint32 // presence bits of the fields route forwards
}

// NewWire is the pipeline's wire format.
func NewWire(aggs []aggregate.Aggregation) *Wire {
	w := &Wire{aggs: aggs}
	for _, a := range aggs {
		for _, f := range a.Fields() {
			w.fields |= ride.Bit(f)
		}
	}
	return w
}

// Aggs are the aggregations the wire was made for.
func (w *Wire) Aggs() []aggregate.Aggregation { return w.aggs }

// Fields are the presence bits of the ride fields route forwards.
func (w *Wire) Fields() uint32 { return w.fields }

func (w *Wire) ride(e *enc, r *ride.Ride) {
	has := r.Has & w.fields
	e.u(uint64(has))
	for f := range ride.NumFields {
		if has&ride.Bit(f) != 0 {
			e.i(r.Vals[f])
		}
	}
}

func (w *Wire) readRide(d *dec) ride.Ride {
	var r ride.Ride
	r.Has = uint32(d.u()) & w.fields
	for f := range ride.NumFields {
		if r.Has&ride.Bit(f) != 0 {
			r.Vals[f] = d.i()
		}
	}
	return r
}

func (w *Wire) group(e *enc, a int, g aggregate.Group) {
	e.u8(g.Null)
	for i := range w.aggs[a].GroupBy {
		if g.Null&(1<<i) == 0 {
			e.i(g.V[i])
		}
	}
}

func (w *Wire) readGroup(d *dec, a int) aggregate.Group {
	var g aggregate.Group
	g.Null = d.u8()
	for i := range w.aggs[a].GroupBy {
		if g.Null&(1<<i) == 0 {
			g.V[i] = d.i()
		}
	}
	return g
}

func (w *Wire) acc(e *enc, acc aggregate.Acc) {
	e.u(acc.Has)
	for _, v := range acc.Vals {
		e.i(v)
	}
}

func (w *Wire) readAcc(d *dec, a int) aggregate.Acc {
	acc := aggregate.Acc{Has: d.u(), Vals: make([]int64, len(w.aggs[a].Measures))}
	for i := range acc.Vals {
		acc.Vals[i] = d.i()
	}
	return acc
}

func (w *Wire) groups(e *enc, a int, gs []GroupAcc) {
	e.n(len(gs))
	for _, g := range gs {
		w.group(e, a, g.Group)
		w.acc(e, g.Acc)
	}
}

func (w *Wire) readGroups(d *dec, a int) []GroupAcc {
	n := d.count()
	if n == 0 {
		return nil
	}
	out := make([]GroupAcc, n)
	for i := range out {
		out[i].Group = w.readGroup(d, a)
		out[i].Acc = w.readAcc(d, a)
	}
	return out
}

func (w *Wire) runs(e *enc, rs []aggregate.Run) {
	e.n(len(rs))
	for _, r := range rs {
		e.i(r.First)
		e.i(r.Last - r.First)
		w.acc(e, r.Acc)
	}
}

func (w *Wire) readRuns(d *dec, a int) []aggregate.Run {
	n := d.count()
	if n == 0 {
		return nil
	}
	out := make([]aggregate.Run, n)
	for i := range out {
		out[i].First = d.i()
		out[i].Last = out[i].First + d.i()
		out[i].Acc = w.readAcc(d, a)
	}
	return out
}

func (w *Wire) partials(e *enc, ps []Partials) {
	e.n(len(ps))
	for a, p := range ps {
		e.n(len(p.Windows))
		for _, wp := range p.Windows {
			e.i(wp.Start)
			w.groups(e, a, wp.Groups)
		}
		e.n(len(p.Runs))
		for _, gr := range p.Runs {
			w.group(e, a, gr.Group)
			w.runs(e, gr.Runs)
		}
	}
}

func (w *Wire) readPartials(d *dec) []Partials {
	n := d.count()
	if d.err == nil && n != len(w.aggs) && n != 0 {
		d.err = fmt.Errorf("partials of %d aggregations, the pipeline has %d", n, len(w.aggs))
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]Partials, n)
	for a := range out {
		if k := d.count(); k > 0 {
			out[a].Windows = make([]WindowPartial, k)
			for i := range out[a].Windows {
				out[a].Windows[i].Start = d.i()
				out[a].Windows[i].Groups = w.readGroups(d, a)
			}
		}
		if k := d.count(); k > 0 {
			out[a].Runs = make([]GroupRuns, k)
			for i := range out[a].Runs {
				out[a].Runs[i].Group = w.readGroup(d, a)
				out[a].Runs[i].Runs = w.readRuns(d, a)
			}
		}
	}
	return out
}

func (w *Wire) items(e *enc, items []ClockIn) {
	e.n(len(items))
	for _, in := range items {
		e.i(in.Offset)
		e.bool(in.Heartbeat)
		e.i(in.EventMs)
		if !in.Heartbeat {
			w.ride(e, &in.Ride)
		}
	}
}

func (w *Wire) readItems(d *dec) []ClockIn {
	n := d.count()
	if n == 0 {
		return nil
	}
	out := make([]ClockIn, n)
	for i := range out {
		in := &out[i]
		in.Offset, in.Heartbeat, in.EventMs = d.i(), d.bool(), d.i()
		if !in.Heartbeat {
			in.Ride = w.readRide(d)
		}
	}
	return out
}

// Kinds of messages sharing a topic.
const (
	kindBatch    uint8 = 0
	kindProgress uint8 = 1
	kindAck      uint8 = 2
)

// EncodeClockBatch is a clock topic message.
func (w *Wire) EncodeClockBatch(m ClockBatch) []byte {
	e := enc{b: make([]byte, 0, 16+len(m.Items)*24)}
	e.u8(WireVersion)
	e.u8(kindBatch)
	e.i(m.Prev)
	w.items(&e, m.Items)
	return e.b
}

// DecodeClockBatch reads a clock topic message.
func (w *Wire) DecodeClockBatch(b []byte) (ClockBatch, error) {
	d := dec{b: b}
	d.version("clock batch")
	if k := d.u8(); d.err == nil && k != kindBatch {
		return ClockBatch{}, fmt.Errorf("clock batch: unknown kind %d", k)
	}
	m := ClockBatch{Prev: d.i()}
	m.Items = w.readItems(&d)
	if d.err == nil && len(m.Items) == 0 {
		d.err = errors.New("clock batch: no records")
	}
	return m, d.err
}

func (w *Wire) late(e *enc, l LateOut) {
	e.i(l.Offset)
	e.n(l.Agg)
	e.i(l.EventMs)
	e.i(l.WindowStart)
	e.i(l.STBefore)
	w.ride(e, &l.Ride)
}

func (w *Wire) readLate(d *dec) LateOut {
	l := LateOut{Offset: d.i(), Agg: int(d.u()), EventMs: d.i(), WindowStart: d.i(), STBefore: d.i()}
	l.Ride = w.readRide(d)
	if d.err == nil && l.Agg >= len(w.aggs) {
		d.err = fmt.Errorf("late ride of aggregation %d, the pipeline has %d", l.Agg, len(w.aggs))
	}
	return l
}

func (w *Wire) reject(e *enc, r RejectOut) {
	e.i(r.Offset)
	e.i(r.EventMs)
	e.str(r.Why)
}

func (w *Wire) readReject(d *dec) RejectOut {
	return RejectOut{Offset: d.i(), EventMs: d.i(), Why: d.str()}
}

// EncodeClockState is a clock table value.
func (w *Wire) EncodeClockState(s *ClockState) []byte {
	e := enc{b: make([]byte, 0, 64)}
	e.u8(WireVersion)
	e.i(int64(s.Src))
	e.i(s.LastOffset)
	e.i(s.From)
	e.i(s.Seq)
	e.i(s.ST)
	e.bool(s.Valid)
	w.items(&e, s.Pending)
	w.partials(&e, s.Partials)
	e.n(len(s.Late))
	for _, l := range s.Late {
		w.late(&e, l)
	}
	e.n(len(s.Rejected))
	for _, r := range s.Rejected {
		w.reject(&e, r)
	}
	return e.b
}

// DecodeClockState reads a clock table value.
func (w *Wire) DecodeClockState(b []byte) (*ClockState, error) {
	d := dec{b: b}
	d.version("clock state")
	s := &ClockState{Src: int32(d.i()), LastOffset: d.i(), From: d.i(), Seq: d.i(), ST: d.i(), Valid: d.bool()}
	s.Pending = w.readItems(&d)
	s.Partials = w.readPartials(&d)
	if n := d.count(); n > 0 {
		s.Late = make([]LateOut, n)
		for i := range s.Late {
			s.Late[i] = w.readLate(&d)
		}
	}
	if n := d.count(); n > 0 {
		s.Rejected = make([]RejectOut, n)
		for i := range s.Rejected {
			s.Rejected[i] = w.readReject(&d)
		}
	}
	return s, d.err
}

// EncodeProgress is a watermark topic message.
func (w *Wire) EncodeProgress(m Progress) []byte {
	e := enc{b: make([]byte, 0, 64)}
	e.u8(WireVersion)
	e.u8(kindProgress)
	e.i(int64(m.Src))
	e.i(m.Seq)
	e.i(m.Prev)
	e.i(m.From)
	e.i(m.To)
	e.i(m.ST)
	e.bool(m.Valid)
	w.items(&e, m.Pending)
	w.partials(&e, m.Partials)
	return e.b
}

// EncodeAck is a watermark topic message.
func (w *Wire) EncodeAck(m Ack) []byte {
	e := enc{b: make([]byte, 0, 8)}
	e.u8(WireVersion)
	e.u8(kindAck)
	e.i(m.Done)
	return e.b
}

// DecodeWatermarkMsg reads a watermark topic message: a Progress or an Ack.
func (w *Wire) DecodeWatermarkMsg(b []byte) (any, error) {
	d := dec{b: b}
	d.version("watermark message")
	switch k := d.u8(); {
	case d.err != nil:
		return nil, d.err
	case k == kindAck:
		return Ack{Done: d.i()}, d.err
	case k != kindProgress:
		return nil, fmt.Errorf("watermark message: unknown kind %d", k)
	}
	m := Progress{Src: int32(d.i()), Seq: d.i(), Prev: d.i(), From: d.i(), To: d.i(), ST: d.i(), Valid: d.bool()}
	m.Pending = w.readItems(&d)
	m.Partials = w.readPartials(&d)
	return m, d.err
}

// EncodeWindowMsg is a windows topic message for a key of aggregation agg.
func (w *Wire) EncodeWindowMsg(agg int, m WindowMsg) []byte {
	e := enc{b: make([]byte, 0, 32)}
	e.u8(WireVersion)
	e.n(agg)
	e.i(m.Seq)
	e.i(m.Prev)
	e.bool(m.AfterForget)
	e.bool(m.Retry)
	w.groups(&e, agg, m.Groups)
	w.runs(&e, m.Runs)
	e.bool(m.Finalize)
	e.bool(m.HasG)
	e.i(m.G)
	e.bool(m.Forget)
	e.i(m.Before)
	return e.b
}

// DecodeWindowMsg reads a windows topic message and its aggregation.
func (w *Wire) DecodeWindowMsg(b []byte) (int, WindowMsg, error) {
	d := dec{b: b}
	agg, m := w.readWindowMsg(&d)
	return agg, m, d.err
}

func (w *Wire) readWindowMsg(d *dec) (int, WindowMsg) {
	d.version("window message")
	agg := d.aggIndex(len(w.aggs))
	if d.err != nil {
		return 0, WindowMsg{}
	}
	m := WindowMsg{Seq: d.i(), Prev: d.i(), AfterForget: d.bool(), Retry: d.bool()}
	m.Groups = w.readGroups(d, agg)
	m.Runs = w.readRuns(d, agg)
	m.Finalize, m.HasG, m.G, m.Forget, m.Before = d.bool(), d.bool(), d.i(), d.bool(), d.i()
	return agg, m
}

func (d *dec) aggIndex(n int) int {
	a := int(d.u())
	if d.err == nil && a >= n {
		d.err = fmt.Errorf("aggregation %d, the pipeline has %d", a, n)
	}
	return a
}

// EncodeWindowState is a window table value.
func (w *Wire) EncodeWindowState(s *WindowState) []byte {
	e := enc{b: make([]byte, 0, 64)}
	e.u8(WireVersion)
	e.n(s.Agg)
	e.i(s.LastSeq)
	e.i(s.SeenOffset)
	if w.aggs[s.Agg].Kind == aggregate.Tumbling {
		e.i(s.Start)
		e.i(s.End - s.Start)
		w.groups(&e, s.Agg, s.Groups)
		e.bool(s.Final)
		e.i(s.FinalOffset)
		e.i(s.FinalSeq)
		return e.b
	}
	w.group(&e, s.Agg, s.Group)
	e.n(len(s.Clusters))
	for _, c := range s.Clusters {
		e.i(c.First)
		e.i(c.Last - c.First)
		w.acc(&e, c.Acc)
		e.bool(c.Final)
		e.i(c.FinalOffset)
		e.i(c.FinalSeq)
	}
	return e.b
}

// DecodeWindowState reads a window table value.
func (w *Wire) DecodeWindowState(b []byte) (*WindowState, error) {
	d := dec{b: b}
	d.version("window state")
	s := &WindowState{Agg: d.aggIndex(len(w.aggs))}
	if d.err != nil {
		return nil, d.err
	}
	s.LastSeq, s.SeenOffset = d.i(), d.i()
	if w.aggs[s.Agg].Kind == aggregate.Tumbling {
		s.Start = d.i()
		s.End = s.Start + d.i()
		s.Groups = w.readGroups(&d, s.Agg)
		s.Final, s.FinalOffset, s.FinalSeq = d.bool(), d.i(), d.i()
		return s, d.err
	}
	s.Group = w.readGroup(&d, s.Agg)
	if n := d.count(); n > 0 {
		s.Clusters = make([]Cluster, n)
		for i := range s.Clusters {
			c := &s.Clusters[i]
			c.First = d.i()
			c.Last = c.First + d.i()
			c.Acc = w.readAcc(&d, s.Agg)
			c.Final, c.FinalOffset, c.FinalSeq = d.bool(), d.i(), d.i()
		}
	}
	return s, d.err
}

// EncodeWatermarkState is the watermark table's value.
func (w *Wire) EncodeWatermarkState(s *WatermarkState) []byte {
	e := enc{b: make([]byte, 0, 256)}
	e.u8(WireVersion)
	e.i(s.Seq)
	e.n(len(s.Sources))
	for _, src := range s.Sources {
		e.i(src.Last)
		e.i(src.ClockSeq)
		e.i(src.ST)
		e.bool(src.Valid)
		w.items(&e, src.Pending)
	}
	e.n(len(s.Aggs))
	for a, ap := range s.Aggs {
		e.n(len(ap.Open))
		for _, r := range ap.Open {
			e.i(r.From)
			e.i(r.To - r.From)
		}
		e.n(len(ap.Final))
		for _, r := range ap.Final {
			e.i(r.Seq)
			e.i(r.From)
			e.i(r.To - r.From)
		}
		e.n(len(ap.Groups))
		for _, g := range ap.Groups {
			w.group(&e, a, g.Group)
			e.n(len(g.Spans))
			for _, sp := range g.Spans {
				e.i(sp.First)
				e.i(sp.Last - sp.First)
			}
		}
		e.n(len(ap.Forget))
		for _, g := range ap.Forget {
			w.group(&e, a, g.Group)
			e.i(g.Seq)
		}
	}
	e.n(len(s.Outs))
	for _, o := range s.Outs {
		e.str(o.Key)
		e.b = append(e.b, w.EncodeWindowMsg(o.Agg, o.Msg)...)
	}
	e.n(len(s.Late))
	for _, l := range s.Late {
		e.i(int64(l.Src))
		w.late(&e, l.LateOut)
	}
	e.n(len(s.Rejected))
	for _, r := range s.Rejected {
		e.i(int64(r.Src))
		w.reject(&e, r.RejectOut)
	}
	return e.b
}

// DecodeWatermarkState reads the watermark table's value.
func (w *Wire) DecodeWatermarkState(b []byte) (*WatermarkState, error) {
	d := dec{b: b}
	d.version("watermark state")
	s := &WatermarkState{Seq: d.i()}
	if n := d.count(); n > 0 {
		s.Sources = make([]SourceState, n)
		for i := range s.Sources {
			src := &s.Sources[i]
			src.Last, src.ClockSeq, src.ST, src.Valid = d.i(), d.i(), d.i(), d.bool()
			src.Pending = w.readItems(&d)
		}
	}
	n := d.count()
	if d.err == nil && n != len(w.aggs) {
		return nil, fmt.Errorf("watermark state of %d aggregations, the pipeline has %d", n, len(w.aggs))
	}
	s.Aggs = make([]AggProgress, n)
	for a := range s.Aggs {
		ap := &s.Aggs[a]
		for range d.count() {
			from := d.i()
			ap.Open = append(ap.Open, WindowRange{From: from, To: from + d.i()})
		}
		for range d.count() {
			seq, from := d.i(), d.i()
			ap.Final = append(ap.Final, FinalRange{Seq: seq, WindowRange: WindowRange{From: from, To: from + d.i()}})
		}
		for range d.count() {
			gs := GroupSpans{Group: w.readGroup(&d, a)}
			for range d.count() {
				first := d.i()
				gs.Spans = append(gs.Spans, Span{First: first, Last: first + d.i()})
			}
			ap.Groups = append(ap.Groups, gs)
		}
		for range d.count() {
			g := w.readGroup(&d, a)
			ap.Forget = append(ap.Forget, GroupSeq{Group: g, Seq: d.i()})
		}
	}
	for range d.count() {
		key := d.str()
		agg, m := w.readWindowMsg(&d)
		if d.err != nil {
			break
		}
		s.Outs = append(s.Outs, Routed{Key: key, Agg: agg, Msg: m})
	}
	for range d.count() {
		src := int32(d.i())
		s.Late = append(s.Late, SourcedLate{Src: src, LateOut: w.readLate(&d)})
	}
	for range d.count() {
		src := int32(d.i())
		s.Rejected = append(s.Rejected, SourcedReject{Src: src, RejectOut: w.readReject(&d)})
	}
	return s, d.err
}

// Clone is a copy of s that shares nothing with it.
func (s *WindowState) Clone() *WindowState {
	c := *s
	c.Groups = make([]GroupAcc, len(s.Groups))
	for i, g := range s.Groups {
		c.Groups[i] = GroupAcc{Group: g.Group, Acc: g.Acc.Clone()}
	}
	c.Clusters = make([]Cluster, len(s.Clusters))
	for i, cl := range s.Clusters {
		c.Clusters[i] = cl
		c.Clusters[i].Acc = cl.Acc.Clone()
	}
	return &c
}
