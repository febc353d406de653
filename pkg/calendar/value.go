package calendar

import (
	"fmt"
	"strconv"
	"strings"
)

// valueKind says which of the three item forms a fieldValue has.
type valueKind uint8

const (
	valueSingle   valueKind = iota // V
	valueRange                     // A..B
	valueRepeated                  // V/N or A..B/N (and */N)
)

// fieldValue is one item of a field list: a single value, an inclusive range
// or a repetition starting at start every step, optionally bounded by end.
type fieldValue struct {
	kind   valueKind
	start  uint32
	end    uint32 // valueRange, and valueRepeated when hasEnd
	step   uint32 // valueRepeated only; 0 matches start alone
	hasEnd bool
}

// contains reports whether v is one of the values the item stands for.
func (fv fieldValue) contains(v uint32) bool {
	switch fv.kind {
	case valueSingle:
		return v == fv.start
	case valueRange:
		return v >= fv.start && v <= fv.end
	default:
		if v < fv.start {
			return false
		}
		if fv.step == 0 {
			return v == fv.start
		}
		if fv.hasEnd && v > fv.end {
			return false
		}
		return (v-fv.start)%fv.step == 0
	}
}

// next returns the smallest value of the item greater than v that upstream's
// search would jump to. For repetitions without an end this may exceed the
// field's range (e.g. minute 60); the search then normalises the date, as
// upstream does.
func (fv fieldValue) next(v uint32) (uint32, bool) {
	switch fv.kind {
	case valueSingle:
		return fv.start, fv.start > v
	case valueRange:
		if v < fv.start {
			return fv.start, true
		}
		n := v + 1
		return n, n >= fv.start && n <= fv.end
	default:
		if v < fv.start {
			return fv.start, true
		}
		if fv.step == 0 {
			return 0, false
		}
		n := fv.start + ((v-fv.start+fv.step)/fv.step)*fv.step
		if fv.hasEnd && n > fv.end {
			return 0, false
		}
		return n, true
	}
}

// String renders the item in calendar-event syntax.
func (fv fieldValue) String() string {
	switch fv.kind {
	case valueSingle:
		return strconv.FormatUint(uint64(fv.start), 10)
	case valueRange:
		return fmt.Sprintf("%d..%d", fv.start, fv.end)
	default:
		if fv.hasEnd {
			return fmt.Sprintf("%d..%d/%d", fv.start, fv.end, fv.step)
		}
		return fmt.Sprintf("%d/%d", fv.start, fv.step)
	}
}

// fieldList is the parsed list of one field; an empty list matches any value.
type fieldList []fieldValue

func (l fieldList) any() bool { return len(l) == 0 }

func (l fieldList) contains(v uint32) bool {
	for _, fv := range l {
		if fv.contains(v) {
			return true
		}
	}
	return false
}

// next returns the smallest candidate greater than v over all items.
func (l fieldList) next(v uint32) (uint32, bool) {
	var best uint32
	found := false
	for _, fv := range l {
		if n, ok := fv.next(v); ok && (!found || n < best) {
			best, found = n, true
		}
	}
	return best, found
}

func (l fieldList) String() string {
	if len(l) == 0 {
		return "*"
	}
	parts := make([]string, len(l))
	for i, fv := range l {
		parts[i] = fv.String()
	}
	return strings.Join(parts, ",")
}
