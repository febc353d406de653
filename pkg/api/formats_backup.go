package api

import (
	"errors"
	"strconv"
)

// PruneBackupsFormat is PVE's "prune-backups" property-string format.
func PruneBackupsFormat() PropertyFormat {
	return PropertyFormat{
		"keep-all":     Bool().Opt(),
		"keep-daily":   Int().Min(0).Opt(),
		"keep-hourly":  Int().Min(0).Opt(),
		"keep-last":    Int().Min(0).Opt(),
		"keep-monthly": Int().Min(0).Opt(),
		"keep-weekly":  Int().Min(0).Opt(),
		"keep-yearly":  Int().Min(0).Opt(),
	}
}

// BackupFleecingFormat is PVE's "backup-fleecing" format.
func BackupFleecingFormat() PropertyFormat {
	return PropertyFormat{
		"enabled": Bool().Def(0).Opt().DefKey(),
		"storage": Str().Fmt("pve-storage-id").Opt(),
	}
}

// BackupPerformanceFormat is PVE's "backup-performance" format.
func BackupPerformanceFormat() PropertyFormat {
	return PropertyFormat{
		"max-workers":     Int().Range(1, 256).Def(16).Opt(),
		"pbs-entries-max": Int().Min(1).Def(1048576).Opt(),
	}
}

// checkPruneBackups parses a prune-backups value with PVE's extra rule:
// keep-all=1 together with a positive keep-* option is an error.
func checkPruneBackups(s string) error {
	v, err := ParsePropertyString(PruneBackupsFormat(), s, "")
	if err != nil {
		return err
	}
	if v["keep-all"] == "1" {
		for k, n := range v {
			if k == "keep-all" {
				continue
			}
			if i, _ := strconv.Atoi(n); i > 0 {
				return errors.New("keep-all conflicts with other options")
			}
		}
	}
	return nil
}

func checkPropertyFormat(f func() PropertyFormat) func(string) error {
	return func(s string) error {
		_, err := ParsePropertyString(f(), s, "")
		return err
	}
}
