package ride

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// fastWire fills w (and returns the value of the key custom, when set) from
// the common shape of a ride message without encoding/json: one flat object
// whose keys are plain ASCII and whose values are numbers, strings without
// escapes, true, false, null, or the NaN, Infinity and -Infinity literals
// Python writes. It returns false for anything else (nested values,
// escapes, keys that differ from a field name only in case, and every
// malformed input), and the caller then uses slowWire, whose result it must
// equal whenever it returns true (FuzzFastWire checks exactly that).
func fastWire(b []byte, w *wire, custom string) (event json.RawMessage, ok bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil, skipWS(b, i+1) == len(b)
	}
	for {
		// key
		if i >= len(b) || b[i] != '"' {
			return nil, false
		}
		ks := i + 1
		i = ks
		for i < len(b) && b[i] != '"' {
			if c := b[i]; c < 0x20 || c >= 0x80 || c == '\\' {
				return nil, false
			}
			i++
		}
		if i >= len(b) {
			return nil, false
		}
		key := b[ks:i]
		i = skipWS(b, i+1)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i = skipWS(b, i+1)
		// value
		vs := i
		if i = scalarEnd(b, i); i < 0 {
			return nil, false
		}
		if dst := w.field(key); dst != nil {
			*dst = b[vs:i]
		} else if w.foldsToField(key) {
			return nil, false
		}
		if custom != "" && string(key) == custom {
			event = b[vs:i]
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return event, skipWS(b, i+1) == len(b)
		default:
			return nil, false
		}
	}
}

// nonFiniteLiterals are the literals Python's json.dumps writes for floats
// that JSON has no number for.
var nonFiniteLiterals = [...]string{"NaN", "Infinity", "-Infinity"}

// slowWire is the fallback for what fastWire declines: encoding/json, after
// the non-finite literals outside strings are replaced by string markers
// that occur nowhere in b (so they cannot be confused with a value), which
// are then turned back into the literals. custom's value comes from a map,
// which matches keys exactly, as fastWire does.
func slowWire(b []byte, w *wire, custom string) (json.RawMessage, error) {
	marker := `\u0000ridestream`
	for bytes.Contains(b, []byte(marker)) {
		marker += `\u0000`
	}
	clean, replaced := replaceNonFinite(b, marker)
	v := reflect.New(wireStruct)
	if err := json.Unmarshal(clean, v.Interface()); err != nil {
		return nil, err
	}
	for i := range numWire {
		w[i] = v.Elem().Field(i).Interface().(json.RawMessage)
	}
	var event json.RawMessage
	if custom != "" {
		var all map[string]json.RawMessage
		if err := json.Unmarshal(clean, &all); err != nil {
			return nil, err
		}
		event = all[custom]
	}
	if replaced {
		restore := func(raw *json.RawMessage) {
			for _, lit := range nonFiniteLiterals {
				if string(*raw) == `"`+marker+lit+`"` {
					*raw = json.RawMessage(lit)
				}
			}
		}
		for i := range w {
			restore(&w[i])
		}
		restore(&event)
	}
	return event, nil
}

// replaceNonFinite returns b with each NaN, Infinity and -Infinity literal
// outside strings replaced by the string marker+literal, and whether there
// was one.
func replaceNonFinite(b []byte, marker string) ([]byte, bool) {
	var out []byte
	inString, escaped, last := false, false, 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if c == '"' {
			inString = true
			continue
		}
		if c != 'N' && c != 'I' && c != '-' {
			continue
		}
		for _, lit := range nonFiniteLiterals {
			if bytes.HasPrefix(b[i:], []byte(lit)) && (i == 0 || !isWordByte(b[i-1])) &&
				(i+len(lit) == len(b) || !isWordByte(b[i+len(lit)])) {
				out = append(out, b[last:i]...)
				out = append(out, `"`+marker+lit+`"`...)
				i += len(lit) - 1
				last = i + 1
				break
			}
		}
	}
	if out == nil {
		return b, false
	}
	return append(out, b[last:]...), true
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '+' || c == '-'
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scalarEnd returns the end of the number, plain string or literal at b[i:],
// or -1.
func scalarEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		for i++; i < len(b); i++ {
			switch c := b[i]; {
			case c == '"':
				return i + 1
			case c < 0x20 || c == '\\':
				return -1
			}
		}
		return -1
	case c == '-' && len(b)-i >= 9 && string(b[i:i+9]) == "-Infinity":
		return i + 9
	case c == '-' || (c >= '0' && c <= '9'):
		return numberEnd(b, i)
	default:
		for _, lit := range [...]string{"true", "false", "null", "NaN", "Infinity"} {
			if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
				return i + len(lit)
			}
		}
		return -1
	}
}

// numberEnd scans a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberEnd(b []byte, i int) int {
	digits := func(i int) (int, bool) {
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i, i > s
	}
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return -1
	}
	if b[i] == '0' {
		i++
	} else {
		var ok bool
		if i, ok = digits(i); !ok {
			return -1
		}
	}
	if i < len(b) && b[i] == '.' {
		var ok bool
		if i, ok = digits(i + 1); !ok {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		var ok bool
		if i, ok = digits(i); !ok {
			return -1
		}
	}
	return i
}

// wireNames are the JSON names of wire's entries, in index order.
var wireNames = func() [numWire]string {
	n := [numWire]string{"heartbeat", "tpep_pickup_datetime", "lpep_pickup_datetime", "pickup_datetime",
		"tpep_dropoff_datetime", "lpep_dropoff_datetime", "dropoff_datetime"}
	for i, f := range Fields {
		n[wFields+i] = f.Name
	}
	return n
}()

// wireIndex maps a JSON name to its wire index.
var wireIndex = func() map[string]int {
	m := make(map[string]int, numWire)
	for i, n := range wireNames {
		m[n] = i
	}
	return m
}()

// field returns the entry named exactly key, or nil.
func (w *wire) field(key []byte) *json.RawMessage {
	if i, ok := wireIndex[string(key)]; ok {
		return &w[i]
	}
	return nil
}

// byName returns the raw value of the entry whose JSON name is name.
func (w *wire) byName(name string) json.RawMessage {
	if f := w.field([]byte(name)); f != nil {
		return *f
	}
	return nil
}

// wireStruct is the struct encoding/json fills for the fallback: one
// RawMessage field per wire entry, tagged with its JSON name (so keys match
// as encoding/json matches them: exactly, else ignoring case).
var wireStruct = func() reflect.Type {
	fields := make([]reflect.StructField, numWire)
	for i, n := range wireNames {
		fields[i] = reflect.StructField{Name: fmt.Sprintf("F%d", i), Type: reflect.TypeFor[json.RawMessage](),
			Tag: reflect.StructTag(`json:"` + n + `"`)}
	}
	return reflect.StructOf(fields)
}()

// foldsToField says whether encoding/json would match key to a field
// case-insensitively (keys here are ASCII).
func (w *wire) foldsToField(key []byte) bool {
	for _, n := range wireNames {
		if strings.EqualFold(string(key), n) {
			return true
		}
	}
	return false
}
