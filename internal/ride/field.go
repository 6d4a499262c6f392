package ride

// A Field is a numeric column of a ride message that the decoder reads,
// that the rides table keeps and that aggregations group by (integers) or
// measure (any). This table is its one definition: the decoder, the rides
// table's columns, the aggregations' declarations and the reference model
// all iterate it, so a new field is one entry here.
type Field struct {
	// Name is the JSON name producers send (the TLC column name).
	Name string
	// Column is the rides table's column.
	Column string
	// Kind says how the value is read and kept.
	Kind FieldKind
	// Limit bounds |value| (in hundredths for Hundredths fields).
	Limit int64
	// Required fields must be present for a ride to be valid.
	Required bool
	// SQLType is the rides table column's type.
	SQLType string
}

// FieldKind is how a field's value is read and kept.
type FieldKind uint8

const (
	// Integer: an id or a count, a JSON integer (186.0 as pandas writes
	// it too); kept as integer.
	Integer FieldKind = iota + 1
	// Hundredths: money or miles, read exactly as integer hundredths (the
	// decimal text is scaled, never a float); kept as numeric(…,2).
	Hundredths
)

// FieldID indexes Fields and Ride.Vals.
type FieldID int

// The fields, in the rides table's column order.
const (
	PULocationID FieldID = iota
	DOLocationID
	PassengerCount
	VendorID
	PaymentType
	RatecodeID
	TripDistance
	FareAmount
	TipAmount
	TollsAmount
	TotalAmount
	NumFields
)

const maxInt32 = 1 << 31

// Fields are the numeric fields of a ride, indexed by FieldID.
var Fields = [NumFields]Field{
	PULocationID:   {Name: "PULocationID", Column: "pu_location_id", Kind: Integer, Limit: maxInt32, Required: true, SQLType: "integer"},
	DOLocationID:   {Name: "DOLocationID", Column: "do_location_id", Kind: Integer, Limit: maxInt32, SQLType: "integer"},
	PassengerCount: {Name: "passenger_count", Column: "passenger_count", Kind: Integer, Limit: maxInt32, SQLType: "integer"},
	VendorID:       {Name: "VendorID", Column: "vendor_id", Kind: Integer, Limit: maxInt32, SQLType: "integer"},
	PaymentType:    {Name: "payment_type", Column: "payment_type", Kind: Integer, Limit: maxInt32, SQLType: "integer"},
	RatecodeID:     {Name: "RatecodeID", Column: "ratecode_id", Kind: Integer, Limit: maxInt32, SQLType: "integer"},
	TripDistance:   {Name: "trip_distance", Column: "trip_distance", Kind: Hundredths, Limit: MaxAbsDistanceCenti, SQLType: "numeric(10,2)"},
	FareAmount:     {Name: "fare_amount", Column: "fare_amount", Kind: Hundredths, Limit: MaxAbsCents, SQLType: "numeric(12,2)"},
	TipAmount:      {Name: "tip_amount", Column: "tip_amount", Kind: Hundredths, Limit: MaxAbsCents, SQLType: "numeric(12,2)"},
	TollsAmount:    {Name: "tolls_amount", Column: "tolls_amount", Kind: Hundredths, Limit: MaxAbsCents, SQLType: "numeric(12,2)"},
	TotalAmount:    {Name: "total_amount", Column: "total_amount", Kind: Hundredths, Limit: MaxAbsCents, Required: true, SQLType: "numeric(12,2)"},
}

// FieldByName returns the field whose JSON name is name.
func FieldByName(name string) (FieldID, bool) {
	for i, f := range Fields {
		if f.Name == name {
			return FieldID(i), true
		}
	}
	return 0, false
}
