package parse

import (
	"strconv"
	"strings"

	"github.com/valyala/fastjson"
)

// RecordError is returned for any record that cannot be decoded. It describes
// the record, never the decoder or the stream, so the caller dead-letters the
// record with Error() as the reason and carries on: retrying cannot fix it.
type RecordError struct {
	// Field is the path of the offending value, such as "items[2].sku";
	// empty when the record as a whole is at fault.
	Field string
	// Reason says what is wrong with the value or record.
	Reason string
}

// Error returns "field <Field>: <Reason>", or just the reason when no field
// is at fault.
func (e *RecordError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return "field " + e.Field + ": " + e.Reason
}

// in prefixes the path of the value at fault with seg, the name of a struct
// member or the "[i]" of a list element that contains it. Paths are built
// while the error unwinds so that decoding a good record never builds one.
func (e *RecordError) in(seg string) *RecordError {
	switch {
	case e.Field == "":
		e.Field = seg
	case e.Field[0] == '[':
		e.Field = seg + e.Field
	default:
		e.Field = seg + "." + e.Field
	}
	return e
}

func recordErr(reason string) *RecordError { return &RecordError{Reason: reason} }

// typeErr reports a JSON value of the wrong type.
func typeErr(want string, v *fastjson.Value) *RecordError {
	return recordErr("expected " + want + ", got " + jsonType(v))
}

func jsonType(v *fastjson.Value) string {
	switch t := v.Type(); t {
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "bool"
	default:
		return t.String()
	}
}

// maxQuoted bounds how much of a bad value an error repeats: reasons end up in
// dead-letter headers and logs, and a record may hold megabytes in one string.
const maxQuoted = 64

// quote renders s for an error message, shortened to maxQuoted bytes.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(strings.ToValidUTF8(s[:maxQuoted], "")) + "..."
}

// clip shortens number text for an error message; numbers need no quoting.
func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	return s[:maxQuoted] + "..."
}
