package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Binary messages of the processors' internal topics and tables (they cross
// process boundaries: between processor instances, and to views). Each starts with a version byte;
// integers are varints. Version 3 batches: one clock message carries many
// input records and one window message many rides, so the changelogs are
// written per batch, not per ride. Version 4: window keys subscribe to the
// sources' clocks, and a clock closes exactly the windows that subscribed.

// WireVersion is the version byte of every internal message; it is part of
// the pipeline record, so a pipeline written by another version is refused
// before anything is read.
const WireVersion = 4

var errShort = errors.New("truncated message")

// Amounts is what a window sums for one ride.
type Amounts struct {
	Zone       int32
	Cents      int64
	DistCenti  int64
	TipCents   int64
	Passengers int64
}

// NoPrev marks the first message route sends to a key after it was
// (re)assigned its partition: the receiver cannot check the chain then.
const NoPrev = -1

// ClockIn is a decoded input record forwarded by route to the clock stage.
type ClockIn struct {
	Offset    int64
	Heartbeat bool
	EventMs   int64
	Ride      Amounts
}

// Subscribe is what a window key sends every source partition's clock key
// when it is created: "tell me when you close my window". The clock answers
// at once when it closed the window already, and otherwise keeps the window
// in ClockState.Pending until its stream time passes the window's end + L.
// Either way its close marker goes to every shard key of the window. So a
// partition's first record closes every earlier window that has state,
// however far back, and the work is bounded by the windows that exist.
type Subscribe struct {
	WindowStart int64
}

// ClockBatch is what route sends the clock stage, keyed by the source
// partition's clock key: consecutive decoded records of one partition in
// offset order (undecodable ones are absent).
type ClockBatch struct {
	// Prev is the last input offset of the batch route sent before this one
	// in its current session, or NoPrev. A batch whose Prev is not the
	// clock's last applied offset follows a lost write and is skipped; route
	// sends it again after its restart (its commit never passes a failed
	// write).
	Prev  int64
	Items []ClockIn
}

// Last is the offset of the batch's last record.
func (b ClockBatch) Last() int64 { return b.Items[len(b.Items)-1].Offset }

// Output kinds of the clock stage: what one input record produced.
const (
	OutNone      uint8 = iota // nothing yet (a fresh state)
	OutOnTime                 // a ride counted in WindowStart
	OutLate                   // a ride that missed WindowStart
	OutHeartbeat              // a heartbeat
	OutRejected               // too far ahead of the stream time
	OutClose                  // no record: a subscription of a window this source had closed already
)

// ClockOut is what one input record produced at the clock.
type ClockOut struct {
	Offset      int64
	Out         uint8
	EventMs     int64
	Ride        Amounts
	WindowStart int64
	STBefore    int64
	// Closes are the starts of the subscribed windows this output closes;
	// their close markers go to every shard key.
	Closes []int64
}

// ClockState is the clock stage's value per source partition. Its changelog
// is also the clock's output stream: Outs are what the records of the last
// applied batch produced, so outputs and state are written in one record and
// a crash can never separate them.
type ClockState struct {
	Src        int32
	LastOffset int64 // -1: nothing applied
	// Seq numbers the clock's writes (its changelog records) per source:
	// route detects a lost changelog write by a gap.
	Seq   int64
	ST    int64
	Valid bool
	// Pending are the starts of the windows that subscribed and are not
	// closed for this source yet, ascending.
	Pending []int64
	// Recent are the starts of the last MaxRecent windows this source closed
	// (from Pending, or answering a subscription), ascending: a later
	// subscription of one of them, from another shard key of the window,
	// needs no answer, because the close markers went to every shard key.
	// Forgetting one only costs repeated markers, which the window stage
	// ignores.
	Recent []int64
	// Outs of the records applied last, in offset order.
	Outs []ClockOut
}

// WindowMsg travels from route to a window shard: the on-time rides of one
// clock batch for that shard, in offset order, then possibly the source's
// close marker for the window.
type WindowMsg struct {
	Marker bool
	Src    int32
	Offset int64 // source offset of the last ride, or of the record that closed the window
	// Prev is the offset of the message route sent before this one from the
	// same source to the same key in its current session, or NoPrev.
	Prev        int64
	WindowStart int64
	Rides       []Amounts
}

// ZoneAgg is one pickup zone's running sums in a window.
type ZoneAgg struct {
	Zone                                    int32
	Trips, Cents, DistCenti, TipCents, Pass int64
}

// WindowState is the window stage's value per (window, shard).
type WindowState struct {
	WindowStart, WindowEnd int64
	Zones                  []ZoneAgg // sorted by zone
	LastSeen               []int64   // per source: offset of the last applied ride or marker, -1 none
	Closed                 []bool    // per source: close marker applied
	Final                  bool
	FinalSrc               int32
	FinalOffset            int64
	// CreatedSrc and CreatedOffset name the message with rides that created
	// the key (-1: a close marker created it): when it is redelivered, the
	// key's subscriptions (which may have been lost with the crash) are sent
	// again.
	CreatedSrc    int32
	CreatedOffset int64
}

type enc struct{ b []byte }

func (e *enc) i(v int64)  { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) u8(v uint8) { e.b = append(e.b, v) }
func (e *enc) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}
func (e *enc) amounts(a Amounts) {
	e.i(int64(a.Zone))
	e.i(a.Cents)
	e.i(a.DistCenti)
	e.i(a.TipCents)
	e.i(a.Passengers)
}

// starts writes ascending window starts as deltas, which stay small.
func (e *enc) starts(ws []int64) {
	e.i(int64(len(ws)))
	prev := int64(0)
	for _, w := range ws {
		e.i(w - prev)
		prev = w
	}
}

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

// starts reads what enc.starts wrote; nil when empty.
func (d *dec) starts() []int64 {
	n := d.count()
	if n == 0 {
		return nil
	}
	ws := make([]int64, n)
	prev := int64(0)
	for i := range ws {
		prev += d.i()
		ws[i] = prev
	}
	return ws
}

func (d *dec) amounts() Amounts {
	return Amounts{Zone: int32(d.i()), Cents: d.i(), DistCenti: d.i(), TipCents: d.i(), Passengers: d.i()}
}

func (d *dec) version(what string) {
	if v := d.u8(); d.err == nil && v != WireVersion {
		d.err = fmt.Errorf("%s: unknown wire version %d", what, v)
	}
}

// Encode and Decode implement the goka codecs below.

// count reads a length that cannot exceed the bytes left (each element
// takes at least one).
func (d *dec) count() int {
	n := d.i()
	if d.err == nil && (n < 0 || n > int64(len(d.b))) {
		d.err = errShort
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

// Kinds of clock topic messages.
const (
	kindBatch     uint8 = 0
	kindSubscribe uint8 = 1
)

func (m Subscribe) encode() []byte {
	e := enc{b: make([]byte, 0, 16)}
	e.u8(WireVersion)
	e.u8(kindSubscribe)
	e.i(m.WindowStart)
	return e.b
}

func (m ClockBatch) encode() []byte {
	e := enc{b: make([]byte, 0, 16+len(m.Items)*32)}
	e.u8(WireVersion)
	e.u8(kindBatch)
	e.i(m.Prev)
	e.i(int64(len(m.Items)))
	for _, in := range m.Items {
		e.i(in.Offset)
		e.bool(in.Heartbeat)
		e.i(in.EventMs)
		if !in.Heartbeat {
			e.amounts(in.Ride)
		}
	}
	return e.b
}

// decodeClockMsg decodes a clock topic message: a ClockBatch or a Subscribe.
func decodeClockMsg(b []byte) (any, error) {
	d := dec{b: b}
	d.version("clock message")
	switch k := d.u8(); {
	case d.err != nil:
		return nil, d.err
	case k == kindSubscribe:
		m := Subscribe{WindowStart: d.i()}
		return m, d.err
	case k != kindBatch:
		return nil, fmt.Errorf("clock message: unknown kind %d", k)
	}
	m := ClockBatch{Prev: d.i()}
	m.Items = make([]ClockIn, d.count())
	for i := range m.Items {
		in := &m.Items[i]
		in.Offset, in.Heartbeat, in.EventMs = d.i(), d.bool(), d.i()
		if !in.Heartbeat {
			in.Ride = d.amounts()
		}
	}
	if d.err == nil && len(m.Items) == 0 {
		d.err = errors.New("clock batch: no records")
	}
	return m, d.err
}

func (s *ClockState) encode() []byte {
	e := enc{b: make([]byte, 0, 32+len(s.Outs)*40)}
	e.u8(WireVersion)
	e.i(int64(s.Src))
	e.i(s.LastOffset)
	e.i(s.Seq)
	e.i(s.ST)
	e.bool(s.Valid)
	e.starts(s.Pending)
	e.starts(s.Recent)
	e.i(int64(len(s.Outs)))
	for _, o := range s.Outs {
		e.i(o.Offset)
		e.u8(o.Out)
		e.i(o.EventMs)
		if o.Out == OutOnTime || o.Out == OutLate {
			e.amounts(o.Ride)
		}
		e.i(o.WindowStart)
		e.i(o.STBefore)
		e.starts(o.Closes)
	}
	return e.b
}

func decodeClockState(b []byte) (*ClockState, error) {
	d := dec{b: b}
	d.version("clock state")
	s := &ClockState{Src: int32(d.i()), LastOffset: d.i(), Seq: d.i(), ST: d.i(), Valid: d.bool()}
	s.Pending, s.Recent = d.starts(), d.starts()
	s.Outs = make([]ClockOut, d.count())
	for i := range s.Outs {
		o := &s.Outs[i]
		o.Offset, o.Out, o.EventMs = d.i(), d.u8(), d.i()
		if o.Out == OutOnTime || o.Out == OutLate {
			o.Ride = d.amounts()
		}
		o.WindowStart, o.STBefore = d.i(), d.i()
		o.Closes = d.starts()
	}
	return s, d.err
}

func (m WindowMsg) encode() []byte {
	e := enc{b: make([]byte, 0, 32+len(m.Rides)*24)}
	e.u8(WireVersion)
	e.bool(m.Marker)
	e.i(int64(m.Src))
	e.i(m.Offset)
	e.i(m.Prev)
	e.i(m.WindowStart)
	e.i(int64(len(m.Rides)))
	for _, a := range m.Rides {
		e.amounts(a)
	}
	return e.b
}

func decodeWindowMsg(b []byte) (WindowMsg, error) {
	d := dec{b: b}
	d.version("window message")
	m := WindowMsg{Marker: d.bool(), Src: int32(d.i()), Offset: d.i(), Prev: d.i(), WindowStart: d.i()}
	if n := d.count(); n > 0 {
		m.Rides = make([]Amounts, n)
		for i := range m.Rides {
			m.Rides[i] = d.amounts()
		}
	}
	return m, d.err
}

func (s *WindowState) encode() []byte {
	e := enc{b: make([]byte, 0, 64+len(s.Zones)*24+len(s.LastSeen)*5)}
	e.u8(WireVersion)
	e.i(s.WindowStart)
	e.i(s.WindowEnd)
	e.i(int64(len(s.Zones)))
	for _, z := range s.Zones {
		e.i(int64(z.Zone))
		e.i(z.Trips)
		e.i(z.Cents)
		e.i(z.DistCenti)
		e.i(z.TipCents)
		e.i(z.Pass)
	}
	e.i(int64(len(s.LastSeen)))
	for i, o := range s.LastSeen {
		e.i(o)
		e.bool(s.Closed[i])
	}
	e.bool(s.Final)
	e.i(int64(s.FinalSrc))
	e.i(s.FinalOffset)
	e.i(int64(s.CreatedSrc))
	e.i(s.CreatedOffset)
	return e.b
}

func decodeWindowState(b []byte) (*WindowState, error) {
	d := dec{b: b}
	d.version("window state")
	s := &WindowState{WindowStart: d.i(), WindowEnd: d.i()}
	s.Zones = make([]ZoneAgg, d.count())
	for i := range s.Zones {
		s.Zones[i] = ZoneAgg{Zone: int32(d.i()), Trips: d.i(), Cents: d.i(), DistCenti: d.i(), TipCents: d.i(), Pass: d.i()}
	}
	n := d.count()
	s.LastSeen = make([]int64, n)
	s.Closed = make([]bool, n)
	for i := range s.LastSeen {
		s.LastSeen[i] = d.i()
		s.Closed[i] = d.bool()
	}
	s.Final = d.bool()
	s.FinalSrc = int32(d.i())
	s.FinalOffset = d.i()
	s.CreatedSrc = int32(d.i())
	s.CreatedOffset = d.i()
	return s, d.err
}

// goka codecs.

// ClockMsgCodec is the goka codec of the clock topic: ClockBatch and
// Subscribe values.
type ClockMsgCodec struct{}

// Encode implements goka.Codec.
func (ClockMsgCodec) Encode(v any) ([]byte, error) {
	switch m := v.(type) {
	case ClockBatch:
		return m.encode(), nil
	case Subscribe:
		return m.encode(), nil
	}
	return nil, fmt.Errorf("clock message codec: got %T", v)
}

// Decode implements goka.Codec.
func (ClockMsgCodec) Decode(b []byte) (any, error) { return decodeClockMsg(b) }

// ClockStateCodec is the goka codec of the clock table, for views.
type ClockStateCodec struct{}

// Encode implements goka.Codec.
func (ClockStateCodec) Encode(v any) ([]byte, error) {
	s, ok := v.(*ClockState)
	if !ok {
		return nil, fmt.Errorf("clock state codec: got %T", v)
	}
	return s.encode(), nil
}

// Decode implements goka.Codec.
func (ClockStateCodec) Decode(b []byte) (any, error) { return decodeClockState(b) }

// WindowMsgCodec is the goka codec of the windows topic.
type WindowMsgCodec struct{}

// Encode implements goka.Codec.
func (WindowMsgCodec) Encode(v any) ([]byte, error) {
	m, ok := v.(WindowMsg)
	if !ok {
		return nil, fmt.Errorf("window message codec: got %T", v)
	}
	return m.encode(), nil
}

// Decode implements goka.Codec.
func (WindowMsgCodec) Decode(b []byte) (any, error) { return decodeWindowMsg(b) }

// WindowStateCodec is the goka codec of the window table, for views.
type WindowStateCodec struct{}

// Encode implements goka.Codec.
func (WindowStateCodec) Encode(v any) ([]byte, error) {
	s, ok := v.(*WindowState)
	if !ok {
		return nil, fmt.Errorf("window state codec: got %T", v)
	}
	return s.encode(), nil
}

// Decode implements goka.Codec.
func (WindowStateCodec) Decode(b []byte) (any, error) { return decodeWindowState(b) }

// RawCodec passes JSON side outputs and input bytes through.
type RawCodec struct{}

// Encode implements goka.Codec.
func (RawCodec) Encode(v any) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return b, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("raw codec: got %T", v)
}

// Decode implements goka.Codec.
func (RawCodec) Decode(b []byte) (any, error) { return b, nil }

// WindowKey is the window stage's key of (window start, shard).
func WindowKey(start int64, shard int) string {
	return strconv.FormatInt(start, 10) + "#" + strconv.Itoa(shard)
}

// Clone returns a deep copy of s.
func (s *WindowState) Clone() *WindowState {
	c := *s
	c.Zones = slices.Clone(s.Zones)
	c.LastSeen = slices.Clone(s.LastSeen)
	c.Closed = slices.Clone(s.Closed)
	return &c
}

// Add counts one ride in its zone.
func (s *WindowState) Add(a Amounts) {
	i, found := slices.BinarySearchFunc(s.Zones, a.Zone, func(z ZoneAgg, zone int32) int { return int(z.Zone) - int(zone) })
	if !found {
		s.Zones = slices.Insert(s.Zones, i, ZoneAgg{Zone: a.Zone})
	}
	z := &s.Zones[i]
	z.Trips++
	z.Cents += a.Cents
	z.DistCenti += a.DistCenti
	z.TipCents += a.TipCents
	z.Pass += a.Passengers
}
