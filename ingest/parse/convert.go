package parse

import (
	"encoding/base64"
	"math/bits"
	"time"
)

// number is a decimal numeral split into its parts. The parts are substrings
// of the input, so splitting allocates nothing, and the value is exactly
// ±(int‖frac) × 10^(exp−len(frac)): decimals and integers are computed from
// the digits, never through float64, which cannot hold 0.1 or 2^53+1.
type number struct {
	neg       bool
	int, frac string
	exp       int64
	plain     bool // neither a fraction nor an exponent was written
}

// maxExp caps the magnitude of the exponents splitNumber returns, keeping
// the arithmetic on exponents far from int64 overflow. Capping changes no
// outcome: a nonzero value of fewer than 2^40 digits (every record) with an
// exponent beyond ±2^40 overflows every type or has digits beyond every
// scale either way.
const maxExp = 1 << 40

// splitNumber splits s, which must be a JSON number when strict is set.
// Otherwise (numbers written as strings) it also accepts a leading '+',
// leading zeros and a missing integer or fraction part (".5", "5."), which
// BigDecimal and other decimal libraries print or accept.
func splitNumber(s string, strict bool) (number, bool) {
	var n number
	i := 0
	if i < len(s) && (s[i] == '-' || !strict && s[i] == '+') {
		n.neg = s[i] == '-'
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	n.int = s[start:i]
	if strict && (len(n.int) == 0 || len(n.int) > 1 && n.int[0] == '0') {
		return n, false
	}
	n.plain = true
	if i < len(s) && s[i] == '.' {
		n.plain = false
		i++
		start = i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		n.frac = s[start:i]
		if strict && len(n.frac) == 0 {
			return n, false
		}
	}
	if len(n.int)+len(n.frac) == 0 {
		return n, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		n.plain = false
		i++
		neg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			neg = s[i] == '-'
			i++
		}
		start = i
		for ; i < len(s) && isDigit(s[i]); i++ {
			if n.exp < maxExp {
				n.exp = n.exp*10 + int64(s[i]-'0')
			}
		}
		if i == start {
			return n, false
		}
		n.exp = min(n.exp, maxExp)
		if neg {
			n.exp = -n.exp
		}
	}
	return n, i == len(s)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Outcomes of number.scaled.
const (
	scaledOK = iota
	scaledFraction
	scaledOverflow
)

// scaled returns the magnitude of n × 10^scale as a 128-bit integer, hi and
// lo. It fails with scaledFraction if that is not an integer (n has nonzero
// digits beyond scale fractional places) and with scaledOverflow if it has
// more than maxDigits digits (maxDigits ≤ 38, so the result always fits).
func (n number) scaled(scale, maxDigits int) (hi, lo uint64, outcome int) {
	all := len(n.int) + len(n.frac)
	at := func(i int) byte {
		if i < len(n.int) {
			return n.int[i]
		}
		return n.frac[i-len(n.int)]
	}
	first := 0
	for first < all && at(first) == '0' {
		first++
	}
	if first == all {
		return 0, 0, scaledOK // zero, whatever the exponent
	}
	last := all - 1
	for at(last) == '0' {
		last--
	}
	// The digits first..last, times 10^pow, are the result.
	pow := n.exp - int64(len(n.frac)) + int64(all-1-last) + int64(scale)
	if pow < 0 {
		return 0, 0, scaledFraction
	}
	if int64(last-first+1)+pow > int64(maxDigits) {
		return 0, 0, scaledOverflow
	}
	for i := first; i <= last; i++ {
		hi, lo = mul10Add(hi, lo, uint64(at(i)-'0'))
	}
	for ; pow > 0; pow-- {
		hi, lo = mul10Add(hi, lo, 0)
	}
	return hi, lo, scaledOK
}

// mul10Add returns (hi,lo)×10 + d for a 128-bit (hi,lo) known not to overflow.
func mul10Add(hi, lo, d uint64) (uint64, uint64) {
	carry, lo := bits.Mul64(lo, 10)
	lo, c := bits.Add64(lo, d, 0)
	return hi*10 + carry + c, lo
}

// intRange is the range of a signed integer type: its largest magnitude when
// positive, and the digits needed to write that.
type intRange struct {
	max    uint64 // 2^(bits-1) - 1; negatives may reach max+1
	digits int
	name   string
}

var (
	int32Range = intRange{1<<31 - 1, 10, "int32"}
	int64Range = intRange{1<<63 - 1, 19, "int64"}
)

// parseInt reads the JSON number s as an integer of range r. Integral values
// written with a fraction or exponent (1.0, 1e3) are accepted: they are the
// same number, and some producers print every number that way.
func parseInt(s string, r intRange) (int64, *RecordError) {
	n, ok := splitNumber(s, true)
	if !ok {
		return 0, recordErr("invalid number " + clip(s))
	}
	if n.plain && len(n.int) < 19 {
		// Fast path: fewer than 19 digits fit an int64 without checks.
		var v int64
		for i := 0; i < len(n.int); i++ {
			v = v*10 + int64(n.int[i]-'0')
		}
		if n.neg {
			v = -v
		}
		if v < -int64(r.max)-1 || v > int64(r.max) {
			return 0, recordErr(clip(s) + " overflows " + r.name)
		}
		return v, nil
	}
	return n.toInt(s, r)
}

func (n number) toInt(s string, r intRange) (int64, *RecordError) {
	hi, lo, outcome := n.scaled(0, r.digits)
	limit := r.max
	if n.neg {
		limit++
	}
	switch {
	case outcome == scaledFraction:
		return 0, recordErr(clip(s) + " is not an integer")
	case outcome == scaledOverflow || hi != 0 || lo > limit:
		return 0, recordErr(clip(s) + " overflows " + r.name)
	}
	if n.neg {
		return int64(-lo), nil // two's complement: also right for lo = 2^63
	}
	return int64(lo), nil
}

// parseIntString reads a string holding a base-10 integer, as protobuf's JSON
// mapping writes int64 values (JavaScript numbers cannot hold them).
func parseIntString(s string, r intRange) (int64, *RecordError) {
	n, ok := splitNumber(s, false)
	if !ok || !n.plain || len(n.int) == 0 || s[0] == '+' {
		return 0, recordErr("invalid integer " + quote(s))
	}
	return n.toInt(s, r)
}

// decimal is the unscaled value of a decimal as a 128-bit two's complement
// integer: wide enough for precision 38, the most Iceberg allows.
type decimal struct{ hi, lo uint64 }

// parseDecimal reads s, a JSON number (strict) or a string, as a decimal with
// the given precision and scale. Digits beyond the scale are an error unless
// they are zeros: rounding would silently change amounts.
func parseDecimal(s string, strict bool, precision, scale int) (decimal, *RecordError) {
	n, ok := splitNumber(s, strict)
	if !ok {
		if strict {
			return decimal{}, recordErr("invalid number " + clip(s))
		}
		return decimal{}, recordErr("invalid decimal " + quote(s))
	}
	hi, lo, outcome := n.scaled(scale, precision)
	switch outcome {
	case scaledFraction:
		return decimal{}, recordErr(clip(s) + " has more than " + itoa(scale) + " fractional digits")
	case scaledOverflow:
		return decimal{}, recordErr(clip(s) + " overflows decimal(" + itoa(precision) + "," + itoa(scale) + ")")
	}
	if n.neg {
		hi, lo = ^hi, ^lo
		var c uint64
		lo, c = bits.Add64(lo, 1, 0)
		hi += c
	}
	return decimal{hi, lo}, nil
}

// putBigEndian writes the low len(b) bytes of d into b, most significant
// first. The value fits: DecimalBytes(p) bytes hold every p-digit value.
func (d decimal) putBigEndian(b []byte) {
	hi, lo := d.hi, d.lo
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte(lo)
		lo = lo>>8 | hi<<56
		hi >>= 8
	}
}

func itoa(i int) string {
	if i >= 0 && i < 10 {
		return string(rune('0' + i))
	}
	var b [20]byte
	n := len(b)
	neg := i < 0
	u := uint64(i)
	if neg {
		u = -u
	}
	for u > 0 {
		n--
		b[n] = byte('0' + u%10)
		u /= 10
	}
	if neg {
		n--
		b[n] = '-'
	}
	return string(b[n:])
}

// Time constants, in the units dates and timestamps are stored in.
const (
	secondsPerDay = 86400
	microsPerDay  = secondsPerDay * 1_000_000
	// maxEventDays is the furthest date whose midnight in microseconds fits
	// an int64.
	maxEventDays = (1<<63 - 1) / microsPerDay
)

// parseDate reads "YYYY-MM-DD" as days since 1970-01-01.
func parseDate(s string) (int64, bool) {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return 0, false
	}
	y, ok1 := digits(s[0:4])
	m, ok2 := digits(s[5:7])
	d, ok3 := digits(s[8:10])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, false
	}
	return daysFromCivil(y, m, d), true
}

// digits reads a run of ASCII digits.
func digits(s string) (int, bool) {
	v := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
	}
	return v, true
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is Howard Hinnant's days_from_civil for the proleptic
// Gregorian calendar, which Iceberg and Parquet dates use. y is 0..9999.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12 // March = 0
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// parseTimestamp reads an RFC 3339 timestamp, or one without a zone (read as
// UTC) and with 'T' or a space between date and time, as microseconds since
// the Unix epoch. Digits beyond microseconds are truncated.
func parseTimestamp(s string) (int64, bool) {
	if us, ok := parseTimestampFast(s); ok {
		return us, true
	}
	// The fast path takes every common form; time.Parse adds what it also
	// accepts (a comma before the fraction, offsets up to ±24:00).
	for _, layout := range timestampLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMicro(), true
		}
	}
	return 0, false
}

var timestampLayouts = [...]string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

// parseTimestampFast parses "YYYY-MM-DD(T| )HH:MM:SS[.fraction][Z|±HH:MM]"
// at fixed offsets. It is on the hot path of every record with an event
// time, and is several times faster than time.Parse.
func parseTimestampFast(s string) (int64, bool) {
	if len(s) < 19 {
		return 0, false
	}
	days, ok := parseDate(s[:10])
	if !ok {
		return 0, false
	}
	switch s[10] {
	case 'T', 't', ' ':
	default:
		return 0, false
	}
	if s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	hh, ok1 := digits(s[11:13])
	mm, ok2 := digits(s[14:16])
	ss, ok3 := digits(s[17:19])
	if !ok1 || !ok2 || !ok3 || hh > 23 || mm > 59 || ss > 59 {
		return 0, false
	}
	rest := s[19:]
	var frac int64 // microseconds
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		for ; i < len(rest) && isDigit(rest[i]); i++ {
			if i <= 6 {
				frac = frac*10 + int64(rest[i]-'0')
			}
		}
		if i == 1 {
			return 0, false
		}
		for j := i; j <= 6; j++ {
			frac *= 10
		}
		rest = rest[i:]
	}
	var offset int64 // seconds east of UTC
	switch {
	case len(rest) == 0, rest == "Z", rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offset = int64(oh*3600 + om*60)
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}
	secs := days*secondsPerDay + int64(hh*3600+mm*60+ss) - offset
	return secs*1_000_000 + frac, true
}

// rawStd decodes base64 without padding and rejects encodings with nonzero
// trailing bits, so that each value has exactly one accepted encoding.
var rawStd = base64.RawStdEncoding.Strict()

// decodeBase64 decodes standard base64, with or without padding, into
// memory from a.
func decodeBase64(s []byte, a *arena) ([]byte, bool) {
	pad := 0
	for pad < 2 && pad < len(s) && s[len(s)-1-pad] == '=' {
		pad++
	}
	if pad > 0 && len(s)%4 != 0 {
		return nil, false
	}
	body := s[:len(s)-pad]
	dst := a.alloc(rawStd.DecodedLen(len(body)))
	n, err := rawStd.Decode(dst, body)
	if err != nil {
		return nil, false
	}
	return dst[:n], true
}
