package tasks

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
)

// ErrInvalidUPID is wrapped by the errors of Parse. PVE's API answers a
// parameter error "unable to parse worker upid" for it.
var ErrInvalidUPID = errors.New("unable to parse worker upid")

// UPID is a decoded unique process id:
//
//	UPID:<node>:<pid %08X>:<pstart %08X>:<starttime %08X>:<type>:<id>:<user>:
//
// (PVE::UPID::encode/decode in pve-common). pstart may grow to 9 hex digits
// after about 497 days of uptime.
type UPID struct {
	Node      string
	PID       int
	PStart    uint64
	StartTime int64
	Type      string
	ID        string // may be empty
	User      string // user id or full token id (user@realm!token)
}

// PVE's decode pattern. Perl's \s is written out: Go's \s lacks \v.
var upidRe = regexp.MustCompile(`^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\t\n\v\f\r /]+):([^:\t\n\v\f\r /]*):([^:\t\n\v\f\r /]+):$`)

// Parse decodes s with PVE's rules (hex digits in either case, a trailing
// colon, no ':', '/' or whitespace in type, id and user; the id may be empty).
func Parse(s string) (UPID, error) {
	m := upidRe.FindStringSubmatch(s)
	if m == nil {
		return UPID{}, fmt.Errorf("%w '%s'", ErrInvalidUPID, s)
	}
	pid, _ := strconv.ParseUint(m[3], 16, 32)
	pstart, _ := strconv.ParseUint(m[4], 16, 64)
	start, _ := strconv.ParseUint(m[5], 16, 32)
	return UPID{
		Node:      m[1],
		PID:       int(pid),
		PStart:    pstart,
		StartTime: int64(start),
		Type:      m[6],
		ID:        m[7],
		User:      m[8],
	}, nil
}

// String encodes u as PVE does (upper-case hex, zero-padded to 8 digits).
// For every UPID PVE writes, Parse(s).String() == s.
func (u UPID) String() string {
	return fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", u.Node, u.PID, u.PStart, u.StartTime, u.Type, u.ID, u.User)
}

// Validate reports whether String() gives a UPID that Parse accepts.
func (u UPID) Validate() error {
	if u.PID < 0 || u.PID > 0xFFFFFFFF || u.StartTime < 0 || u.StartTime > 0xFFFFFFFF || u.PStart > 0xFFFFFFFFF {
		return fmt.Errorf("%w: numeric field out of range", ErrInvalidUPID)
	}
	if _, err := Parse(u.String()); err != nil {
		return err
	}
	return nil
}

// logPath is the task log of the UPID string s (already validated): PVE
// takes the subdirectory from the starttime field as written, and the file
// name is the string itself.
func logPath(root, s string) string {
	// Submatch 5 is the starttime field as written.
	m := upidRe.FindStringSubmatch(s)
	st := m[5]
	return filepath.Join(root, st[len(st)-1:], s)
}
