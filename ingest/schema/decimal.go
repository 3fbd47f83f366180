package schema

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"

	"github.com/parquet-go/parquet-go"
)

var errDecimalSyntax = errors.New("invalid decimal syntax")

// DecimalValue converts a decimal number in text form (optional sign,
// digits, optional fraction, optional exponent) to a value of the decimal
// type t. Digits beyond t's scale are rounded half away from zero; more
// digits than t's precision are an error. digits is scratch space, returned
// for reuse.
func DecimalValue(s string, t Type, digits []byte) (parquet.Value, []byte, error) {
	// value = ±digits × 10^exp, digits without leading zeros.
	digits = digits[:0]
	neg := false
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	exp := 0
	sawDigit, sawDot := false, false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			sawDigit = true
			if len(digits) > 0 || c != '0' {
				digits = append(digits, c)
			}
			if sawDot {
				exp--
			}
			continue
		case c == '.' && !sawDot:
			sawDot = true
			continue
		}
		break
	}
	if !sawDigit {
		return parquet.Value{}, digits, fmt.Errorf("%q: %w", s, errDecimalSyntax)
	}
	if i < len(s) {
		if s[i] != 'e' && s[i] != 'E' {
			return parquet.Value{}, digits, fmt.Errorf("%q: %w", s, errDecimalSyntax)
		}
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e < -1e6 || e > 1e6 { // far beyond any precision; keeps exp+scale from overflowing
			return parquet.Value{}, digits, fmt.Errorf("%q: %w", s, errDecimalSyntax)
		}
		exp += e
	}

	// Scale: unscaled = digits × 10^(exp+scale).
	if len(digits) > 0 {
		shift := exp + t.Scale
		switch {
		case shift > 0:
			if len(digits)+shift > t.Precision {
				return parquet.Value{}, digits, fmt.Errorf("%s overflows %s", s, t)
			}
			for range shift {
				digits = append(digits, '0')
			}
		case shift < 0:
			keep := len(digits) + shift
			switch {
			case keep < 0:
				digits = digits[:0] // below half a unit
			default:
				up := digits[keep] >= '5'
				digits = digits[:keep]
				if up {
					digits = incrementDigits(digits)
				}
			}
		}
	}
	if len(digits) > t.Precision {
		return parquet.Value{}, digits, fmt.Errorf("%s overflows %s", s, t)
	}

	if t.Precision <= 18 {
		var n int64
		for _, c := range digits {
			n = n*10 + int64(c-'0') // at most 18 digits: no overflow
		}
		if neg {
			n = -n
		}
		if t.Precision <= 9 {
			return parquet.Int32Value(int32(n)), digits, nil
		}
		return parquet.Int64Value(n), digits, nil
	}
	n := new(big.Int)
	if len(digits) > 0 {
		n.SetString(string(digits), 10)
	}
	// A fresh array: the value outlives this call in the output row.
	b := make([]byte, DecimalBytes(t.Precision))
	n.FillBytes(b) // fits: DecimalBytes holds any number of Precision digits
	if neg && n.Sign() != 0 {
		for i := range b {
			b[i] = ^b[i]
		}
		for i := len(b) - 1; i >= 0; i-- {
			b[i]++
			if b[i] != 0 {
				break
			}
		}
	}
	return parquet.FixedLenByteArrayValue(b), digits, nil
}

// incrementDigits adds one to a decimal number in text form.
func incrementDigits(d []byte) []byte {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i] < '9' {
			d[i]++
			return d
		}
		d[i] = '0'
	}
	return append([]byte{'1'}, d...)
}
