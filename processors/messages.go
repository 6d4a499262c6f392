package processors

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Binary messages of the internal topics. Each starts with a version byte;
// integers are varints. They are small on purpose: the clock and window
// values are written to a changelog on every ride.

const wireVersion = 2

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

// ClockIn is a decoded input record forwarded by route to the clock stage,
// keyed by its source partition's clock key.
type ClockIn struct {
	Offset int64
	// Prev is the input offset route forwarded before this one in its current
	// session, or NoPrev. A message whose Prev is not the clock's last applied
	// offset follows a lost write and is skipped; route sends it again after
	// its restart (its commit never passes a failed write).
	Prev      int64
	Heartbeat bool
	EventMs   int64
	Ride      Amounts
}

// Output kinds of the clock stage: what one input record produced.
const (
	OutNone      uint8 = iota // nothing yet (a fresh state)
	OutOnTime                 // a ride counted in WindowStart
	OutLate                   // a ride that missed WindowStart
	OutHeartbeat              // a heartbeat
	OutRejected               // too far ahead of the stream time
)

// ClockState is the clock stage's value per source partition. Its changelog
// is also the clock's output stream: Out describes what the record at
// LastOffset produced, so outputs and state are written in one record and a
// crash can never separate them.
type ClockState struct {
	Src        int32
	LastOffset int64 // -1: nothing applied
	// PrevOffset is LastOffset before this record: route checks the chain to
	// detect a lost changelog write.
	PrevOffset int64
	ST         int64
	Valid      bool
	// Out is the output of the record at LastOffset.
	Out         uint8
	EventMs     int64
	Ride        Amounts
	WindowStart int64
	STBefore    int64
	// Windows with start in [CloseFrom, CloseTo) closed at this record.
	CloseFrom, CloseTo int64
}

// WindowMsg travels from route to a window shard: a ride or a close marker.
type WindowMsg struct {
	Marker bool
	Src    int32
	Offset int64 // source offset of the ride or of the record that closed the window
	// Prev is the offset of the message route sent before this one from the
	// same source to the same key in its current session, or NoPrev.
	Prev        int64
	WindowStart int64
	Ride        Amounts
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

func (d *dec) amounts() Amounts {
	return Amounts{Zone: int32(d.i()), Cents: d.i(), DistCenti: d.i(), TipCents: d.i(), Passengers: d.i()}
}

func (d *dec) version(what string) {
	if v := d.u8(); d.err == nil && v != wireVersion {
		d.err = fmt.Errorf("%s: unknown wire version %d", what, v)
	}
}

// Encode and Decode implement the goka codecs below.

func (m ClockIn) encode() []byte {
	e := enc{b: make([]byte, 0, 48)}
	e.u8(wireVersion)
	e.i(m.Offset)
	e.i(m.Prev)
	e.bool(m.Heartbeat)
	e.i(m.EventMs)
	e.amounts(m.Ride)
	return e.b
}

func decodeClockIn(b []byte) (ClockIn, error) {
	d := dec{b: b}
	d.version("clock input")
	m := ClockIn{Offset: d.i(), Prev: d.i(), Heartbeat: d.bool(), EventMs: d.i(), Ride: d.amounts()}
	return m, d.err
}

func (s *ClockState) encode() []byte {
	e := enc{b: make([]byte, 0, 80)}
	e.u8(wireVersion)
	e.i(int64(s.Src))
	e.i(s.LastOffset)
	e.i(s.PrevOffset)
	e.i(s.ST)
	e.bool(s.Valid)
	e.u8(s.Out)
	e.i(s.EventMs)
	e.amounts(s.Ride)
	e.i(s.WindowStart)
	e.i(s.STBefore)
	e.i(s.CloseFrom)
	e.i(s.CloseTo)
	return e.b
}

func decodeClockState(b []byte) (*ClockState, error) {
	d := dec{b: b}
	d.version("clock state")
	s := &ClockState{Src: int32(d.i()), LastOffset: d.i(), PrevOffset: d.i(), ST: d.i(), Valid: d.bool(), Out: d.u8(), EventMs: d.i(),
		Ride: d.amounts(), WindowStart: d.i(), STBefore: d.i(), CloseFrom: d.i(), CloseTo: d.i()}
	return s, d.err
}

func (m WindowMsg) encode() []byte {
	e := enc{b: make([]byte, 0, 48)}
	e.u8(wireVersion)
	e.bool(m.Marker)
	e.i(int64(m.Src))
	e.i(m.Offset)
	e.i(m.Prev)
	e.i(m.WindowStart)
	if !m.Marker {
		e.amounts(m.Ride)
	}
	return e.b
}

func decodeWindowMsg(b []byte) (WindowMsg, error) {
	d := dec{b: b}
	d.version("window message")
	m := WindowMsg{Marker: d.bool(), Src: int32(d.i()), Offset: d.i(), Prev: d.i(), WindowStart: d.i()}
	if !m.Marker {
		m.Ride = d.amounts()
	}
	return m, d.err
}

func (s *WindowState) encode() []byte {
	e := enc{b: make([]byte, 0, 64+len(s.Zones)*24+len(s.LastSeen)*5)}
	e.u8(wireVersion)
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
	return e.b
}

func decodeWindowState(b []byte) (*WindowState, error) {
	d := dec{b: b}
	d.version("window state")
	s := &WindowState{WindowStart: d.i(), WindowEnd: d.i()}
	n := d.i()
	if n < 0 || n > int64(len(b)) {
		return nil, errShort
	}
	s.Zones = make([]ZoneAgg, n)
	for i := range s.Zones {
		s.Zones[i] = ZoneAgg{Zone: int32(d.i()), Trips: d.i(), Cents: d.i(), DistCenti: d.i(), TipCents: d.i(), Pass: d.i()}
	}
	n = d.i()
	if n < 0 || n > int64(len(b)) {
		return nil, errShort
	}
	s.LastSeen = make([]int64, n)
	s.Closed = make([]bool, n)
	for i := range s.LastSeen {
		s.LastSeen[i] = d.i()
		s.Closed[i] = d.bool()
	}
	s.Final = d.bool()
	s.FinalSrc = int32(d.i())
	s.FinalOffset = d.i()
	return s, d.err
}

// goka codecs.

type clockInCodec struct{}

func (clockInCodec) Encode(v any) ([]byte, error) {
	m, ok := v.(ClockIn)
	if !ok {
		return nil, fmt.Errorf("clock input codec: got %T", v)
	}
	return m.encode(), nil
}
func (clockInCodec) Decode(b []byte) (any, error) { return decodeClockIn(b) }

// ClockStateCodec is the goka codec of the clock table, for views.
type ClockStateCodec struct{}

func (ClockStateCodec) Encode(v any) ([]byte, error) {
	s, ok := v.(*ClockState)
	if !ok {
		return nil, fmt.Errorf("clock state codec: got %T", v)
	}
	return s.encode(), nil
}
func (ClockStateCodec) Decode(b []byte) (any, error) { return decodeClockState(b) }

type windowMsgCodec struct{}

func (windowMsgCodec) Encode(v any) ([]byte, error) {
	m, ok := v.(WindowMsg)
	if !ok {
		return nil, fmt.Errorf("window message codec: got %T", v)
	}
	return m.encode(), nil
}
func (windowMsgCodec) Decode(b []byte) (any, error) { return decodeWindowMsg(b) }

// WindowStateCodec is the goka codec of the window table, for views.
type WindowStateCodec struct{}

func (WindowStateCodec) Encode(v any) ([]byte, error) {
	s, ok := v.(*WindowState)
	if !ok {
		return nil, fmt.Errorf("window state codec: got %T", v)
	}
	return s.encode(), nil
}
func (WindowStateCodec) Decode(b []byte) (any, error) { return decodeWindowState(b) }

// rawCodec passes JSON side outputs and input bytes through.
type rawCodec struct{}

func (rawCodec) Encode(v any) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return b, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("raw codec: got %T", v)
}
func (rawCodec) Decode(b []byte) (any, error) { return b, nil }
