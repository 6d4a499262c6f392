package pipeline

import "fmt"

// goka codecs of the internal topics and tables: each encodes the values of
// one topic with the pipeline's Wire.

// ClockBatchCodec is the codec of the clock topic.
type ClockBatchCodec struct{ *Wire }

// Encode implements goka.Codec.
func (c ClockBatchCodec) Encode(v any) ([]byte, error) {
	m, ok := v.(ClockBatch)
	if !ok {
		return nil, fmt.Errorf("clock batch codec: got %T", v)
	}
	return c.EncodeClockBatch(m), nil
}

// Decode implements goka.Codec.
func (c ClockBatchCodec) Decode(b []byte) (any, error) { return c.DecodeClockBatch(b) }

// ClockStateCodec is the codec of the clock table.
type ClockStateCodec struct{ *Wire }

// Encode implements goka.Codec.
func (c ClockStateCodec) Encode(v any) ([]byte, error) {
	s, ok := v.(*ClockState)
	if !ok {
		return nil, fmt.Errorf("clock state codec: got %T", v)
	}
	return c.EncodeClockState(s), nil
}

// Decode implements goka.Codec.
func (c ClockStateCodec) Decode(b []byte) (any, error) { return c.DecodeClockState(b) }

// WatermarkMsgCodec is the codec of the watermark topic: Progress and Ack.
type WatermarkMsgCodec struct{ *Wire }

// Encode implements goka.Codec.
func (c WatermarkMsgCodec) Encode(v any) ([]byte, error) {
	switch m := v.(type) {
	case Progress:
		return c.EncodeProgress(m), nil
	case Ack:
		return c.EncodeAck(m), nil
	}
	return nil, fmt.Errorf("watermark message codec: got %T", v)
}

// Decode implements goka.Codec.
func (c WatermarkMsgCodec) Decode(b []byte) (any, error) { return c.DecodeWatermarkMsg(b) }

// WatermarkStateCodec is the codec of the watermark table.
type WatermarkStateCodec struct{ *Wire }

// Encode implements goka.Codec.
func (c WatermarkStateCodec) Encode(v any) ([]byte, error) {
	s, ok := v.(*WatermarkState)
	if !ok {
		return nil, fmt.Errorf("watermark state codec: got %T", v)
	}
	return c.EncodeWatermarkState(s), nil
}

// Decode implements goka.Codec.
func (c WatermarkStateCodec) Decode(b []byte) (any, error) { return c.DecodeWatermarkState(b) }

// KeyedWindowMsg is a window message with the index of its aggregation.
type KeyedWindowMsg struct {
	Agg int
	WindowMsg
}

// WindowMsgCodec is the codec of the windows topic.
type WindowMsgCodec struct{ *Wire }

// Encode implements goka.Codec.
func (c WindowMsgCodec) Encode(v any) ([]byte, error) {
	m, ok := v.(KeyedWindowMsg)
	if !ok {
		return nil, fmt.Errorf("window message codec: got %T", v)
	}
	return c.EncodeWindowMsg(m.Agg, m.WindowMsg), nil
}

// Decode implements goka.Codec.
func (c WindowMsgCodec) Decode(b []byte) (any, error) {
	agg, m, err := c.DecodeWindowMsg(b)
	return KeyedWindowMsg{Agg: agg, WindowMsg: m}, err
}

// WindowStateCodec is the codec of the window table.
type WindowStateCodec struct{ *Wire }

// Encode implements goka.Codec.
func (c WindowStateCodec) Encode(v any) ([]byte, error) {
	s, ok := v.(*WindowState)
	if !ok {
		return nil, fmt.Errorf("window state codec: got %T", v)
	}
	return c.EncodeWindowState(s), nil
}

// Decode implements goka.Codec.
func (c WindowStateCodec) Decode(b []byte) (any, error) { return c.DecodeWindowState(b) }

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
