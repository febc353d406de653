package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// PruneOptions are the retention settings of PVE's "prune-backups" property
// string. A count of 0 means the option is not used.
type PruneOptions struct {
	KeepAll     bool
	KeepLast    int
	KeepHourly  int
	KeepDaily   int
	KeepWeekly  int
	KeepMonthly int
	KeepYearly  int
}

// pruneKey is one key of the prune-backups format with the field it sets.
type pruneKey struct {
	name  string
	field func(o *PruneOptions) *int
}

// pruneCountKeys are the counting keys in PVE's print order (sorted by
// name; keep-all, the only other key, sorts before them).
var pruneCountKeys = []pruneKey{
	{"keep-daily", func(o *PruneOptions) *int { return &o.KeepDaily }},
	{"keep-hourly", func(o *PruneOptions) *int { return &o.KeepHourly }},
	{"keep-last", func(o *PruneOptions) *int { return &o.KeepLast }},
	{"keep-monthly", func(o *PruneOptions) *int { return &o.KeepMonthly }},
	{"keep-weekly", func(o *PruneOptions) *int { return &o.KeepWeekly }},
	{"keep-yearly", func(o *PruneOptions) *int { return &o.KeepYearly }},
}

// ParsePruneOptions parses a prune-backups property string such as
// "keep-last=3,keep-daily=7" as PVE's parse_property_string with the
// format's validator: unknown or repeated keys, counts that are not
// integers >= 0 and a keep-all that is not a boolean are errors naming the
// key; a string without a positive count normalises to keep-all, and
// keep-all together with a positive count is an error.
func ParsePruneOptions(s string) (PruneOptions, error) {
	var o PruneOptions
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, hasEq := strings.Cut(part, "=")
		if !hasEq {
			return PruneOptions{}, fmt.Errorf("value without key, but schema does not define a default key: '%s'", part)
		}
		if k == "" || v == "" {
			return PruneOptions{}, fmt.Errorf("missing key or value in comma-separated list property: '%s'", part)
		}
		if seen[k] {
			return PruneOptions{}, fmt.Errorf("duplicate key in comma-separated list property: %s", k)
		}
		seen[k] = true
		if k == "keep-all" {
			switch strings.ToLower(v) {
			case "1", "on", "yes", "true":
				o.KeepAll = true
			case "0", "off", "no", "false":
				o.KeepAll = false
			default:
				return PruneOptions{}, fmt.Errorf("%s: type check ('boolean') failed - got '%s'", k, v)
			}
			continue
		}
		i := slices.IndexFunc(pruneCountKeys, func(pk pruneKey) bool { return pk.name == k })
		if i < 0 {
			return PruneOptions{}, fmt.Errorf("invalid key in comma-separated list property: %s", k)
		}
		n, err := strconv.ParseInt(strings.TrimPrefix(v, "+"), 10, 32)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return PruneOptions{}, fmt.Errorf("%s: value '%s' is out of range", k, v)
			}
			return PruneOptions{}, fmt.Errorf("%s: type check ('integer') failed - got '%s'", k, v)
		}
		if n < 0 {
			return PruneOptions{}, fmt.Errorf("%s: value must have a minimum value of 0", k)
		}
		*pruneCountKeys[i].field(&o) = int(n)
	}
	if !o.hasPositive() {
		return PruneOptions{KeepAll: true}, nil
	}
	if o.KeepAll {
		return PruneOptions{}, errors.New("keep-all cannot be set together with other options")
	}
	return o, nil
}

func (o PruneOptions) hasPositive() bool {
	for _, k := range pruneCountKeys {
		if *k.field(&o) > 0 {
			return true
		}
	}
	return false
}

// KeepsAll reports whether the options keep every backup: keep-all, or no
// positive count.
func (o PruneOptions) KeepsAll() bool { return o.KeepAll || !o.hasPositive() }

// String prints the normalised options as PVE's print_property_string:
// "keep-all=1" when everything is kept, else the positive counts sorted by
// key.
func (o PruneOptions) String() string {
	if o.KeepsAll() {
		return "keep-all=1"
	}
	var parts []string
	for _, k := range pruneCountKeys {
		if n := *k.field(&o); n > 0 {
			parts = append(parts, k.name+"="+strconv.Itoa(n))
		}
	}
	return strings.Join(parts, ",")
}

// Prune marks, as PVE's API returns them.
const (
	PruneKeep      = "keep"
	PruneRemove    = "remove"
	PruneProtected = "protected"
	PruneRenamed   = "renamed"
)

// PruneEntry is one backup of a prune run, with the field names of PVE's
// prunebackups API. Type is qemu, lxc, openvz or unknown; VMID 0 means the
// owner is not known; Mark is one of the Prune* marks ("" before marking).
type PruneEntry struct {
	VolID string `json:"volid"`
	Type  string `json:"type"`
	VMID  int    `json:"vmid,omitempty"`
	CTime int64  `json:"ctime"`
	Mark  string `json:"mark"`
}

// pruneBucket names the period of ctime in loc that one retention option
// keeps a single backup of.
type pruneBucket func(t time.Time) string

// pruneBuckets pairs each count with its bucket, in PVE's fixed order: the
// shorter periods first, keep-last (every backup its own bucket) before
// all.
func (o PruneOptions) pruneBuckets() []struct {
	count  int
	bucket pruneBucket
} {
	return []struct {
		count  int
		bucket pruneBucket
	}{
		{o.KeepLast, func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }},
		{o.KeepHourly, func(t time.Time) string { return t.Format("2006-01-02T15") }},
		{o.KeepDaily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{o.KeepWeekly, func(t time.Time) string {
			y, w := t.ISOWeek()
			return fmt.Sprintf("%d-W%02d", y, w)
		}},
		{o.KeepMonthly, func(t time.Time) string { return t.Format("2006-01") }},
		{o.KeepYearly, func(t time.Time) string { return strconv.Itoa(t.Year()) }},
	}
}

// MarkBackupGroup marks the backups of one group (the same type and vmid)
// as PVE's prune_mark_backup_group, with the calendar buckets taken in loc
// (nil: time.Local). Entries already marked (protected, renamed) keep their
// mark and take no bucket. With keep-all or no positive count every other
// entry is kept. Otherwise, newest first, each option in turn keeps the
// newest backup of each of its next N buckets not already holding a kept
// backup, and removes the older backups of the buckets it took; what stays
// unmarked is removed.
func MarkBackupGroup(list []PruneEntry, o PruneOptions, loc *time.Location) {
	if loc == nil {
		loc = time.Local
	}
	if o.KeepsAll() {
		for i := range list {
			if list[i].Mark == "" || list[i].Mark == PruneRemove {
				list[i].Mark = PruneKeep
			}
		}
		return
	}
	order := make([]int, len(list))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch ca, cb := list[a].CTime, list[b].CTime; {
		case ca > cb:
			return -1
		case ca < cb:
			return 1
		}
		return 0
	})
	for _, opt := range o.pruneBuckets() {
		if opt.count <= 0 {
			continue
		}
		ids := make([]string, len(list))
		covered := map[string]bool{}
		for _, i := range order {
			ids[i] = opt.bucket(time.Unix(list[i].CTime, 0).In(loc))
			if list[i].Mark == PruneKeep {
				covered[ids[i]] = true
			}
		}
		taken := map[string]bool{}
		for _, i := range order {
			if list[i].Mark != "" || covered[ids[i]] {
				continue
			}
			if taken[ids[i]] {
				list[i].Mark = PruneRemove
				continue
			}
			if len(taken) >= opt.count {
				break
			}
			taken[ids[i]] = true
			list[i].Mark = PruneKeep
		}
	}
	for i := range list {
		if list[i].Mark == "" {
			list[i].Mark = PruneRemove
		}
	}
}

var (
	// backupArchiveRE is PVE's archive_info test: a vzdump archive of a
	// known guest type; group 2 is the archive extension.
	backupArchiveRE = regexp.MustCompile(`^vzdump-(lxc|openvz|qemu)-.+\.(tgz|(?:tar|vma)(?:\.(?:gz|lzo|zst|bz2))?)$`)
	// stdBackupNameRE is the standard name; group 1 is what the .log file
	// is named after.
	stdBackupNameRE = regexp.MustCompile(`^(vzdump-(lxc|openvz|qemu)-([1-9][0-9]{2,8})-(\d{4})_(\d{2})_(\d{2})-(\d{2})_(\d{2})_(\d{2}))\.(.+)$`)
)

// archiveInfo is what PVE's archive_info tells about a backup file name.
type archiveInfo struct {
	typ     string // lxc, openvz, qemu
	std     bool   // standard name: vmid, ctime and logName are set
	vmid    int
	ctime   int64
	logName string
}

// parseArchiveName is PVE's archive_info for a file name: ok is false for a
// name that is no vzdump archive. The time in a standard name is local time
// in loc.
func parseArchiveName(name string, loc *time.Location) (archiveInfo, bool) {
	m := backupArchiveRE.FindStringSubmatch(name)
	if m == nil {
		return archiveInfo{}, false
	}
	info := archiveInfo{typ: m[1]}
	s := stdBackupNameRE.FindStringSubmatch(name)
	if s == nil || s[2] != m[1] || s[10] != m[2] {
		return info, true
	}
	var n [7]int
	for i := range n {
		v, err := strconv.Atoi(s[i+3])
		if err != nil {
			return info, true
		}
		n[i] = v
	}
	info.std = true
	info.vmid = n[0]
	info.ctime = time.Date(n[1], time.Month(n[2]), n[3], n[4], n[5], n[6], 0, loc).Unix()
	info.logName = s[1] + ".log"
	return info, true
}

// PruneBackups is PVE's prune_backups for this storage: it lists the
// backups (all, or only those of type typ and/or guest vmid; "" and 0 mean
// any), marks non-standard names "renamed" and protected ones "protected",
// marks each group of the same type and vmid with MarkBackupGroup (buckets
// in loc, nil: time.Local), and unless dryRun removes the backups marked
// "remove" with their .log and .notes files. logf (nil: discarded) gets
// PVE's log lines; a line starting "WARN: " is a warning. A backup that
// cannot be removed is logged and the run ends with an error after trying
// the others. The entries are returned in listing order.
func (d *Dir) PruneBackups(ctx context.Context, o PruneOptions, typ string, vmid int, dryRun bool, loc *time.Location, logf func(format string, a ...any)) ([]PruneEntry, error) {
	if loc == nil {
		loc = time.Local
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if !d.Section.HasContent(VTypeBackup) {
		return nil, fmt.Errorf("storage '%s' does not support backups", d.ID)
	}
	if err := d.Activate(ctx); err != nil {
		return nil, err
	}
	backups, err := d.listFiles(VTypeBackup, vmid)
	if err != nil {
		return nil, err
	}
	entries := make([]PruneEntry, 0, len(backups))
	groups := map[string][]int{}
	var groupOrder []string
	for _, b := range backups {
		_, volname, err := ParseVolumeID(b.VolID)
		if err != nil {
			return nil, fmt.Errorf("backup volume '%s': %w", b.VolID, err)
		}
		info, isArchive := parseArchiveName(strings.TrimPrefix(volname, "backup/"), loc)
		btype := "unknown"
		if isArchive {
			btype = info.typ
		}
		if typ != "" && typ != btype {
			continue
		}
		e := PruneEntry{VolID: b.VolID, Type: btype, VMID: b.VMID, CTime: b.CTime}
		if info.std {
			if vmid != 0 && info.vmid != vmid {
				return nil, fmt.Errorf("internal error - got wrong VMID '%d' != '%d'", info.vmid, vmid)
			}
			e.VMID, e.CTime = info.vmid, info.ctime
			g := btype + "/" + strconv.Itoa(info.vmid)
			if _, ok := groups[g]; !ok {
				groupOrder = append(groupOrder, g)
			}
			groups[g] = append(groups[g], len(entries))
		} else {
			e.Mark = PruneRenamed
		}
		if b.Protected {
			e.Mark = PruneProtected
		}
		entries = append(entries, e)
	}
	for _, g := range groupOrder {
		idx := groups[g]
		group := make([]PruneEntry, len(idx))
		for j, i := range idx {
			group[j] = entries[i]
		}
		MarkBackupGroup(group, o, loc)
		for j, i := range idx {
			entries[i].Mark = group[j].Mark
		}
	}
	if dryRun {
		return entries, nil
	}
	failed := false
	for _, e := range entries {
		if e.Mark != PruneRemove {
			continue
		}
		if err := ctx.Err(); err != nil {
			return entries, err
		}
		logf("removing backup '%s'", e.VolID)
		if err := d.removeArchive(e.VolID, loc, logf); err != nil {
			logf("error when removing backup '%s' - %v", e.VolID, err)
			failed = true
		}
	}
	if failed {
		return entries, errors.New("error pruning backups - check log")
	}
	return entries, nil
}

// removeArchive is PVE's archive_remove: a protected archive is refused, a
// missing one is no error, and its .log and .notes files go with it (a
// failure there is only a warning).
func (d *Dir) removeArchive(volid string, loc *time.Location, logf func(format string, a ...any)) error {
	path, _, err := d.VolumePath(volid)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(path + ".protected"); err == nil {
		return fmt.Errorf("cannot remove protected archive '%s'", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing archive %s failed: %w", path, err)
	}
	info, _ := parseArchiveName(filepath.Base(path), loc)
	if !info.std {
		return nil
	}
	dir := filepath.Dir(path)
	for _, side := range []struct{ kind, path string }{
		{"log", filepath.Join(dir, info.logName)},
		{"notes", path + ".notes"},
	} {
		if err := os.Remove(side.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			logf("WARN: Removing %s file failed: %v", side.kind, err)
		}
	}
	return nil
}
