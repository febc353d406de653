package calendar

import (
	"fmt"
	"strconv"
	"strings"
)

// maxSpecLen bounds the length of a calendar event accepted by Parse. PVE has
// no explicit limit; real schedules are a few dozen bytes.
const maxSpecLen = 4096

// field describes one numeric component of a calendar event: its name for
// error messages, the exclusive upper bound PVE enforces while parsing, and
// the start value of "*/N".
type field struct {
	name  string
	limit uint32 // values must be < limit
	first uint32 // start of "*/N"
	kind  noteKind
}

// The fields of a calendar event (read-only).
var (
	fieldYear   = field{name: "year", limit: 2200, first: 0, kind: noteDate}
	fieldMonth  = field{name: "month", limit: 13, first: 1, kind: noteDate}
	fieldDay    = field{name: "day", limit: 32, first: 1, kind: noteDate}
	fieldHour   = field{name: "hour", limit: 24, first: 0, kind: noteTime}
	fieldMinute = field{name: "minute", limit: 60, first: 0, kind: noteTime}
	fieldSecond = field{name: "second", limit: 60, first: 0, kind: noteTime}
)

// noteKind groups diagnostics by the part of the grammar that produced them.
type noteKind uint8

const (
	noteWeekday noteKind = iota
	noteDate
	noteTime
)

// note is a diagnostic recorded while the parser backtracks; the most useful
// one explains the failure when the whole input cannot be consumed.
type note struct {
	pos   int
	kind  noteKind
	value bool // a bad value (too large, reversed range), not a missing token
	msg   string
}

// parser mirrors the structure of upstream's nom parser, including where it
// backtracks, so that exactly the same strings are accepted.
type parser struct {
	src   string
	notes []note
}

func (p *parser) note(pos int, kind noteKind, value bool, format string, args ...any) {
	if len(p.notes) < 64 {
		p.notes = append(p.notes, note{pos: pos, kind: kind, value: value, msg: fmt.Sprintf(format, args...)})
	}
}

func (p *parser) at(pos int) byte {
	if pos < len(p.src) {
		return p.src[pos]
	}
	return 0
}

func (p *parser) hasPrefix(pos int, prefix string) bool {
	return pos <= len(p.src) && strings.HasPrefix(p.src[pos:], prefix)
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// number parses a run of decimal digits that must be below f.limit.
func (p *parser) number(pos int, f field) (uint32, int, bool) {
	end := pos
	for end < len(p.src) && isDigit(p.src[end]) {
		end++
	}
	if end == pos {
		p.note(pos, f.kind, false, "expected a number for the %s", f.name)
		return 0, pos, false
	}
	digits := p.src[pos:end]
	v, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || v >= uint64(f.limit) {
		p.note(pos, f.kind, true, "%s %s too large (maximum %d)", f.name, digits, f.limit-1)
		return 0, pos, false
	}
	return uint32(v), end, true
}

// item parses V, A..B, V/N or A..B/N.
func (p *parser) item(pos int, f field) (fieldValue, int, bool) {
	start, i, ok := p.number(pos, f)
	if !ok {
		return fieldValue{}, pos, false
	}
	if p.hasPrefix(i, "..") {
		if end, j, ok := p.number(i+2, f); ok {
			if start > end {
				p.note(pos, f.kind, true, "%s range %d..%d: start is bigger than end", f.name, start, end)
				return fieldValue{}, pos, false
			}
			if p.at(j) == '/' {
				step, k, ok := p.number(j+1, f)
				if !ok {
					return fieldValue{}, pos, false
				}
				return fieldValue{kind: valueRepeated, start: start, end: end, step: step, hasEnd: true}, k, true
			}
			return fieldValue{kind: valueRange, start: start, end: end}, j, true
		}
		// Like upstream, a ".." without a valid end is left unconsumed.
	}
	if p.at(i) == '/' {
		step, k, ok := p.number(i+1, f)
		if !ok {
			return fieldValue{}, pos, false
		}
		return fieldValue{kind: valueRepeated, start: start, step: step}, k, true
	}
	return fieldValue{kind: valueSingle, start: start}, i, true
}

// list parses "*", "*/N" or a comma-separated list of items. An empty result
// means any value.
func (p *parser) list(pos int, f field) (fieldList, int, bool) {
	if p.at(pos) == '*' {
		rest := pos + 1
		if p.at(rest) == '/' {
			step, n, ok := p.number(rest+1, f)
			if !ok {
				return nil, pos, false
			}
			if step > 0 {
				return fieldList{{kind: valueRepeated, start: f.first, step: step}}, n, true
			}
			// Upstream leaves "/0" unconsumed, so "*/0" never parses.
			p.note(rest, f.kind, true, "a repetition of 0 (\"*/0\") is not allowed")
		}
		return fieldList{}, rest, true
	}
	first, i, ok := p.item(pos, f)
	if !ok {
		return nil, pos, false
	}
	items := fieldList{first}
	for p.at(i) == ',' && len(items) < maxListItems {
		next, j, ok := p.item(i+1, f)
		if !ok {
			break
		}
		items = append(items, next)
		i = j
	}
	return items, i, true
}

// maxListItems bounds a field list; a longer list cannot come from maxSpecLen
// bytes anyway, the bound only keeps the loop obviously finite.
const maxListItems = maxSpecLen

type timeSpec struct{ hour, minute, second fieldList }

// timeSpec parses [HOURS ":"] MINUTES [":" SECONDS]. As upstream, a failed
// hour list (e.g. "25:00") falls back to reading the text as MINUTES:SECONDS.
func (p *parser) timeSpec(pos int) (timeSpec, int, bool) {
	var ts timeSpec
	i := pos
	mark := len(p.notes)
	if hours, j, ok := p.list(pos, fieldHour); ok && p.at(j) == ':' {
		ts.hour = hours
		i = j + 1
	} else if !strings.Contains(p.token(pos), ":") {
		p.notes = p.notes[:mark] // the text has no hours; don't blame them
	}
	minutes, j, ok := p.list(i, fieldMinute)
	if !ok {
		return timeSpec{}, pos, false
	}
	ts.minute = minutes
	i = j
	ts.second = fieldList{{kind: valueSingle, start: 0}}
	if p.at(i) == ':' {
		if seconds, k, ok := p.list(i+1, fieldSecond); ok {
			ts.second = seconds
			i = k
		}
	}
	return ts, i, true
}

type dateSpec struct{ year, month, day fieldList }

// dateSpec parses YEARS-MONTHS-DAYS or MONTHS-DAYS.
func (p *parser) dateSpec(pos int) (dateSpec, int, bool) {
	// Diagnostics only count for the form with the text's number of dashes.
	dashes := strings.Count(p.token(pos), "-")
	mark := len(p.notes)
	if years, i, ok := p.list(pos, fieldYear); ok && p.at(i) == '-' {
		if months, j, ok := p.list(i+1, fieldMonth); ok && p.at(j) == '-' {
			if days, k, ok := p.list(j+1, fieldDay); ok {
				return dateSpec{year: years, month: months, day: days}, k, true
			}
		}
	}
	if dashes < 2 {
		p.notes = p.notes[:mark]
	}
	mark = len(p.notes)
	if months, i, ok := p.list(pos, fieldMonth); ok && p.at(i) == '-' {
		if days, j, ok := p.list(i+1, fieldDay); ok {
			return dateSpec{month: months, day: days}, j, true
		}
	}
	if dashes != 1 {
		p.notes = p.notes[:mark]
	}
	return dateSpec{}, pos, false
}

// weekdayNumber maps an accepted (lower-cased) name to Monday=0 .. Sunday=6.
func weekdayNumber(name string) (uint, bool) {
	switch name {
	case "mon", "monday":
		return 0, true
	case "tue", "tuesday":
		return 1, true
	case "wed", "wednesday":
		return 2, true
	case "thu", "thursday":
		return 3, true
	case "fri", "friday":
		return 4, true
	case "sat", "saturday":
		return 5, true
	case "sun", "sunday":
		return 6, true
	}
	return 0, false
}

// weekday parses one weekday name (any letters, matched case-insensitively).
func (p *parser) weekday(pos int) (uint, int, bool) {
	end := pos
	for end < len(p.src) && isLetter(p.src[end]) {
		end++
	}
	if end == pos {
		p.note(pos, noteWeekday, false, "expected a weekday name")
		return 0, pos, false
	}
	word := p.src[pos:end]
	day, ok := weekdayNumber(strings.ToLower(word))
	if !ok {
		p.note(pos, noteWeekday, true, "unknown weekday %q", word)
		return 0, pos, false
	}
	return day, end, true
}

// weekdayRange parses WD or WD..WD; ranges wrap around Sunday.
func (p *parser) weekdayRange(pos int) (weekdaySet, int, bool) {
	start, i, ok := p.weekday(pos)
	if !ok {
		return 0, pos, false
	}
	if p.hasPrefix(i, "..") {
		if end, j, ok := p.weekday(i + 2); ok {
			var set weekdaySet
			for d := start; ; d = (d + 1) % 7 {
				set |= 1 << d
				if d == end {
					break
				}
			}
			return set, j, true
		}
	}
	return 1 << start, i, true
}

func (p *parser) weekdayList(pos int) (weekdaySet, int, bool) {
	set, i, ok := p.weekdayRange(pos)
	if !ok {
		return 0, pos, false
	}
	for p.at(i) == ',' {
		more, j, ok := p.weekdayRange(i + 1)
		if !ok {
			break
		}
		set |= more
		i = j
	}
	return set, i, true
}

// token returns the text from pos up to the next blank.
func (p *parser) token(pos int) string {
	t := p.src[pos:]
	if k := strings.IndexAny(t, " \t"); k >= 0 {
		t = t[:k]
	}
	return t
}

func (p *parser) space(pos int) int {
	for pos < len(p.src) && (p.src[pos] == ' ' || p.src[pos] == '\t') {
		pos++
	}
	return pos
}

// ParseError reports a calendar event PVE would reject.
type ParseError struct {
	Spec   string // the event as given to Parse
	Rest   string // the unparsed remainder where the problem was found
	Reason string
}

func (e *ParseError) Error() string {
	if e.Rest == "" {
		return fmt.Sprintf("calendar event %q: %s", e.Spec, e.Reason)
	}
	return fmt.Sprintf("calendar event %q: %s (at %q)", e.Spec, e.Reason, e.Rest)
}

// failure explains why the text from pos on could not be parsed, using the
// most specific diagnostic recorded while backtracking.
func (p *parser) failure(spec string, pos int) *ParseError {
	rest := p.src[pos:]
	token := p.token(p.space(pos))
	preferred := noteTime
	switch {
	case token != "" && isLetter(token[0]):
		preferred = noteWeekday
	case strings.Contains(token, "-"):
		preferred = noteDate
	}
	best := -1
	better := func(n note, cur note) bool {
		if n.pos != cur.pos {
			return n.pos > cur.pos
		}
		return n.kind == preferred && cur.kind != preferred
	}
	for k, n := range p.notes {
		if n.pos < pos || (n.pos == pos && !n.value) {
			continue
		}
		if best < 0 || better(n, p.notes[best]) {
			best = k
		}
	}
	if best < 0 {
		if rest == "" {
			return &ParseError{Spec: spec, Reason: "expected a weekday, date or time"}
		}
		return &ParseError{Spec: spec, Rest: rest, Reason: fmt.Sprintf("unexpected %q", token)}
	}
	n := p.notes[best]
	return &ParseError{Spec: spec, Rest: p.src[n.pos:], Reason: n.msg}
}

// keywordEvent returns the event a shorthand keyword stands for. Keywords
// are matched case-sensitively and only on their own (or before "UTC").
func keywordEvent(word string) (Event, bool) {
	zero := zeroList
	switch word {
	case "minutely":
		return Event{second: zero()}, true
	case "hourly":
		return Event{minute: zero(), second: zero()}, true
	case "daily":
		return Event{hour: zero(), minute: zero(), second: zero()}, true
	case "weekly":
		return Event{days: 1 << 0, hour: zero(), minute: zero(), second: zero()}, true
	case "monthly":
		return Event{day: singles(1), hour: zero(), minute: zero(), second: zero()}, true
	case "yearly", "annually":
		return monthsFirstDay(1), true
	case "quarterly":
		return monthsFirstDay(1, 4, 7, 10), true
	case "semiannually", "semi-annually":
		return monthsFirstDay(1, 7), true
	}
	return Event{}, false
}

func singles(values ...uint32) fieldList {
	l := make(fieldList, len(values))
	for i, v := range values {
		l[i] = fieldValue{kind: valueSingle, start: v}
	}
	return l
}

func zeroList() fieldList { return singles(0) }

func monthsFirstDay(months ...uint32) Event {
	return Event{month: singles(months...), day: singles(1), hour: zeroList(), minute: zeroList(), second: zeroList()}
}

// perlSpace is what Perl's \s matches in ASCII; PVE trims the event with it
// before handing it to the parser.
const perlSpace = " \t\n\v\f\r"

// Parse parses a PVE calendar event such as "mon..fri 21:00", "*/15",
// "sat *-1..7 15:00" or "daily UTC". It accepts exactly the strings PVE
// accepts (see the package documentation for the quirks this implies) and
// returns a *ParseError otherwise.
func Parse(spec string) (*Event, error) {
	if len(spec) > maxSpecLen {
		return nil, &ParseError{Spec: spec[:64] + "...", Reason: fmt.Sprintf("event too long (%d bytes, maximum %d)", len(spec), maxSpecLen)}
	}
	text := strings.Trim(spec, perlSpace)
	if text == "" {
		return nil, &ParseError{Spec: spec, Reason: "event is empty"}
	}
	utc := false
	if s, ok := strings.CutSuffix(text, "UTC"); ok {
		utc = true
		text = strings.TrimRight(s, " ")
	}
	p := &parser{src: text}

	if text != "" && isLetter(text[0]) {
		if ev, ok := keywordEvent(text); ok {
			ev.spec, ev.utc = spec, utc
			return &ev, nil
		}
	}

	ev := &Event{spec: spec, utc: utc}
	hasDays, hasDate, hasTime := false, false, false
	i := 0
	if text != "" && isLetter(text[0]) {
		days, j, ok := p.weekdayList(0)
		if !ok {
			return nil, p.failure(spec, 0)
		}
		ev.days, hasDays = days, true
		i = p.space(j)
	}
	if ds, j, ok := p.dateSpec(i); ok {
		ev.year, ev.month, ev.day = ds.year, ds.month, ds.day
		hasDate = true
		i = p.space(j)
	}
	if ts, j, ok := p.timeSpec(i); ok {
		ev.hour, ev.minute, ev.second = ts.hour, ts.minute, ts.second
		hasTime = true
		i = j
	} else {
		ev.hour, ev.minute, ev.second = zeroList(), zeroList(), zeroList()
	}
	if !hasDays && !hasDate && !hasTime {
		return nil, p.failure(spec, i)
	}
	if i != len(text) {
		return nil, p.failure(spec, i)
	}
	return ev, nil
}

// MustParse is Parse for schedules known at compile time; it panics on error.
func MustParse(spec string) *Event {
	ev, err := Parse(spec)
	if err != nil {
		panic(err)
	}
	return ev
}
