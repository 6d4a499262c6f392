package sink

import (
	"encoding/binary"

	"github.com/jackc/pgx/v5/pgtype"
)

// cents is an amount in hundredths that PostgreSQL receives as numeric with
// scale 2. pgx's numeric codec goes through math/big for every value; this
// writes numeric's binary form directly, which COPY of a million rides with
// five amounts each notices.
type cents int64

// centsCodec is pgx's numeric codec that also encodes cents.
type centsCodec struct{ pgtype.NumericCodec }

func (c centsCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(cents); ok && format == pgtype.BinaryFormatCode {
		return encodeCents{}
	}
	return c.NumericCodec.PlanEncode(m, oid, format, value)
}

type encodeCents struct{}

// Encode appends numeric's binary form: ndigits, weight, sign, dscale (all
// 16-bit), then base-10000 digits, most significant first.
func (encodeCents) Encode(value any, buf []byte) ([]byte, error) {
	v := int64(value.(cents))
	sign := uint16(0x0000)
	u := uint64(v)
	if v < 0 {
		sign, u = 0x4000, uint64(-v)
	}
	whole, frac := u/100, u%100
	var groups [5]uint16 // whole < 2^63/100 < 10000^5
	n := 0
	for ; whole > 0; whole /= 10000 {
		groups[n] = uint16(whole % 10000)
		n++
	}
	ndigits, weight := n, int16(n-1)
	if frac != 0 {
		ndigits++
	}
	if ndigits == 0 {
		weight = 0
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(ndigits))
	buf = binary.BigEndian.AppendUint16(buf, uint16(weight))
	buf = binary.BigEndian.AppendUint16(buf, sign)
	buf = binary.BigEndian.AppendUint16(buf, 2)
	for i := n - 1; i >= 0; i-- {
		buf = binary.BigEndian.AppendUint16(buf, groups[i])
	}
	if frac != 0 {
		buf = binary.BigEndian.AppendUint16(buf, uint16(frac*100))
	}
	return buf, nil
}

// registerCents makes conn's numeric columns accept cents.
func registerCents(m *pgtype.Map) {
	m.RegisterType(&pgtype.Type{Name: "numeric", OID: pgtype.NumericOID, Codec: centsCodec{}})
}
