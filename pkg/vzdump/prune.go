package vzdump

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pvenode/pvenode/pkg/storage"
)

// pruneOptions returns the retention of a job: its prune-backups, else
// the storage's, else keep-all.
func pruneOptions(opts Options, dir *storage.Dir) (storage.PruneOptions, error) {
	s := opts.PruneBackups
	if s == "" && dir != nil {
		s = dir.Section.Options["prune-backups"]
	}
	o, err := storage.ParsePruneOptions(s)
	if err != nil {
		return o, fmt.Errorf("prune-backups '%s': %w", s, err)
	}
	return o, nil
}

// prune removes older backups of the guest that the retention does not
// keep (PVE's remove=1 after a successful backup).
func (g *guestRun) prune(ctx context.Context, dumpdir string, dir *storage.Dir) error {
	o, err := pruneOptions(g.opts, dir)
	if err != nil {
		return err
	}
	g.log.info("prune older backups with retention: %s", strings.ReplaceAll(o.String(), ",", ", "))
	pruned := 0
	if dir != nil {
		logf := func(format string, a ...any) {
			msg := fmt.Sprintf(format, a...)
			if w, ok := strings.CutPrefix(msg, "WARN: "); ok {
				g.log.warn("%s", w)
				return
			}
			g.log.info("%s", msg)
		}
		list, err := dir.PruneBackups(ctx, o, "qemu", g.vmid, false, g.e.loc(), logf)
		if err != nil {
			return err
		}
		for _, en := range list {
			if en.Mark == "remove" {
				pruned++
			}
		}
	} else {
		n, err := g.pruneDumpDir(dumpdir, o)
		if err != nil {
			return err
		}
		pruned = n
	}
	extra := ""
	if pruned > 0 {
		extra = " not covered by keep-retention policy"
	}
	g.log.info("pruned %d backup(s)%s", pruned, extra)
	return nil
}

// pruneDumpDir prunes the guest's archives in a plain dump directory.
func (g *guestRun) pruneDumpDir(dumpdir string, o storage.PruneOptions) (int, error) {
	ents, err := os.ReadDir(dumpdir)
	if err != nil {
		return 0, fmt.Errorf("list dump directory: %w", err)
	}
	var list []storage.PruneEntry
	for _, en := range ents {
		info, err := ParseArchiveName(en.Name(), g.e.loc())
		if err != nil || info.VMID != g.vmid {
			continue
		}
		p := filepath.Join(dumpdir, en.Name())
		mark := ""
		if _, err := os.Stat(p + ".protected"); err == nil {
			mark = "protected"
		}
		list = append(list, storage.PruneEntry{VolID: p, Type: "qemu", VMID: g.vmid, CTime: info.CTime.Unix(), Mark: mark})
	}
	storage.MarkBackupGroup(list, o, g.e.loc())
	n := 0
	var errs []error
	for _, en := range list {
		if en.Mark != "remove" {
			continue
		}
		n++
		g.log.info("delete old backup '%s'", en.VolID)
		if err := os.Remove(en.VolID); err != nil {
			errs = append(errs, err)
			continue
		}
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(en.VolID, ".zst"), ".gz"), ".vma")
		_ = os.Remove(base + ".log")
		_ = os.Remove(en.VolID + ".notes")
	}
	return n, errors.Join(errs...)
}
