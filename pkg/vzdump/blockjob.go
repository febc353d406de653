package vzdump

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/qemu"
)

// qmpTimeout bounds one QMP exchange of the block jobs.
const qmpTimeout = 10 * time.Second

// blockJob is one entry of query-block-jobs.
type blockJob struct {
	Device string `json:"device"` // the job id
	Len    int64  `json:"len"`
	Offset int64  `json:"offset"`
	Status string `json:"status"`
	Error  string `json:"error"`
}

// qmpDialer runs f on a fresh QMP connection of the VM. Connections are
// not held across the backup: QEMU serves one QMP client at a time, and
// status queries of the API must keep working meanwhile.
type qmpDialer func(ctx context.Context, f func(*qemu.QMPClient) error) error

// Job id prefixes of the block jobs: those of backups and those of the
// point-in-time copies for replication (SnapshotDisks) differ, so that
// both can run on the same VM and each only cleans up its own.
const (
	backupJobPrefix   = "vzdump-"
	snapshotJobPrefix = "replicate-"
)

// backupJobs are QEMU drive-backup jobs copying disks to raw files.
type backupJobs struct {
	qmp qmpDialer
	ids []string
}

// qmpDialAttempts bounds the connection attempts of one exchange.
const qmpDialAttempts = 3

// vmDialer returns the QMP dialer of VM vmid: a fresh connection for each
// exchange. A failed connection is tried again (bounded): QEMU may hand an
// event queued for the previous client to the next one before its
// greeting, which fails that handshake.
func (e *Engine) vmDialer(vmid int) qmpDialer {
	return func(ctx context.Context, f func(*qemu.QMPClient) error) error {
		for attempt := 1; ; attempt++ {
			dctx, cancel := context.WithTimeout(ctx, qmpTimeout)
			c, err := qemu.DialQMP(dctx, e.VMs.QMPSocket(vmid))
			cancel()
			if err == nil {
				defer c.Close()
				return f(c)
			}
			if attempt == qmpDialAttempts || ctx.Err() != nil {
				return err
			}
		}
	}
}

// startBackupJobs starts one drive-backup job (sync=full, raw target)
// per disk in a single QMP transaction, so that all disks are copied as of
// the same instant. The job ids are prefix and the drive key. speed is the
// job's rate limit in bytes/s (0: none). If the transaction fails, jobs it
// may have started nonetheless (a QMP timeout) are cleaned up.
func startBackupJobs(ctx context.Context, qmp qmpDialer, prefix string, disks []disk, targets []string, speed int64) (*backupJobs, error) {
	type driveBackup struct {
		JobID       string `json:"job-id"`
		Device      string `json:"device"`
		Target      string `json:"target"`
		Format      string `json:"format"`
		Sync        string `json:"sync"`
		Mode        string `json:"mode"`
		AutoDismiss bool   `json:"auto-dismiss"`
		Speed       int64  `json:"speed,omitempty"`
	}
	type action struct {
		Type string      `json:"type"`
		Data driveBackup `json:"data"`
	}
	j := &backupJobs{qmp: qmp}
	var actions []action
	for i, d := range disks {
		id := prefix + d.Key
		actions = append(actions, action{Type: "drive-backup", Data: driveBackup{
			JobID: id, Device: d.devName(), Target: targets[i], Format: "raw",
			Sync: "full", Mode: "absolute-paths", AutoDismiss: false, Speed: speed,
		}})
		j.ids = append(j.ids, id)
	}
	err := qmp(ctx, func(c *qemu.QMPClient) error {
		qctx, cancel := context.WithTimeout(ctx, qmpTimeout)
		defer cancel()
		return c.Execute(qctx, "transaction", map[string]any{"actions": actions}, nil)
	})
	if err != nil {
		if cerr := j.cleanup(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, fmt.Errorf("start backup jobs: %w", err)
	}
	return j, nil
}

// jobHooks are the callbacks of copyWithJobs, for its log lines and for
// what the caller does around the start of the jobs.
type jobHooks struct {
	leftover func(ids []string) // left-over jobs of the prefix were cancelled
	starting func()             // the jobs are about to be started
	started  func(ids []string) // the jobs started; the wait follows
	warn     func(error)        // cleaning up the jobs failed
}

// copyWithJobs copies disks of the running VM vmid point-in-time into the
// raw files targets: it cancels left-over jobs with the job id prefix,
// starts one block job per disk in one transaction (speed in bytes/s, 0:
// none), waits for them to conclude and cleans them up, also when the
// wait failed or ctx ended.
func (e *Engine) copyWithJobs(ctx context.Context, vmid int, prefix string, disks []disk, targets []string, speed int64, h jobHooks) error {
	dial := e.vmDialer(vmid)
	left, err := cancelLeftovers(ctx, dial, prefix)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		h.leftover(left)
	}
	h.starting()
	jobs, err := startBackupJobs(ctx, dial, prefix, disks, targets, speed)
	if err != nil {
		return err
	}
	h.started(jobs.ids)
	werr := jobs.wait(ctx, nil)
	if cerr := jobs.cleanup(); cerr != nil {
		h.warn(cerr)
	}
	return werr
}

// query returns our jobs by id.
func (j *backupJobs) query(ctx context.Context) (map[string]blockJob, error) {
	var list []blockJob
	err := j.qmp(ctx, func(c *qemu.QMPClient) error {
		qctx, cancel := context.WithTimeout(ctx, qmpTimeout)
		defer cancel()
		return c.Execute(qctx, "query-block-jobs", nil, &list)
	})
	if err != nil {
		return nil, err
	}
	out := map[string]blockJob{}
	for _, b := range list {
		out[b.Device] = b
	}
	return out, nil
}

// wait polls the jobs until all have concluded; progress gets the bytes
// done and the total after each poll. A failed job fails the wait; the
// concluded jobs are dismissed by cleanup.
func (j *backupJobs) wait(ctx context.Context, progress func(done, total int64)) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		jobs, err := j.query(ctx)
		if err != nil {
			return fmt.Errorf("query backup jobs: %w", err)
		}
		var done, total int64
		concluded := 0
		for _, id := range j.ids {
			b, ok := jobs[id]
			if !ok {
				return fmt.Errorf("backup job '%s' vanished", id)
			}
			done += b.Offset
			total += b.Len
			if b.Status == "concluded" || b.Status == "null" {
				if b.Error != "" {
					return fmt.Errorf("backup job '%s' failed: %s", id, b.Error)
				}
				concluded++
			}
		}
		if progress != nil {
			progress(done, total)
		}
		if concluded == len(j.ids) {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// cleanup cancels jobs still running, waits (bounded) until they
// concluded and dismisses them. It uses its own context so that it also
// runs after the backup's context was cancelled.
func (j *backupJobs) cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for {
		jobs, err := j.query(ctx)
		if err != nil {
			return fmt.Errorf("clean up backup jobs: %w", err)
		}
		pending := 0
		for _, id := range j.ids {
			b, ok := jobs[id]
			if !ok {
				continue
			}
			switch b.Status {
			case "concluded":
				err := j.qmp(ctx, func(c *qemu.QMPClient) error {
					return c.Execute(ctx, "block-job-dismiss", map[string]any{"id": id}, nil)
				})
				if err != nil {
					errs = append(errs, err)
				}
			case "aborting", "pending", "waiting", "null":
				pending++
			default:
				pending++
				_ = j.qmp(ctx, func(c *qemu.QMPClient) error {
					return c.Execute(ctx, "block-job-cancel", map[string]any{"device": id, "force": true}, nil)
				})
			}
		}
		if pending == 0 {
			return errors.Join(errs...)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("clean up backup jobs: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cancelLeftovers cancels and dismisses block jobs whose id starts with
// prefix, left by an earlier run that did not clean up (e.g. the daemon
// died); it returns their ids.
func cancelLeftovers(ctx context.Context, qmp qmpDialer, prefix string) ([]string, error) {
	probe := &backupJobs{qmp: qmp}
	jobs, err := probe.query(ctx)
	if err != nil {
		return nil, fmt.Errorf("query block jobs: %w", err)
	}
	for id := range jobs {
		if strings.HasPrefix(id, prefix) {
			probe.ids = append(probe.ids, id)
		}
	}
	if len(probe.ids) == 0 {
		return nil, nil
	}
	sort.Strings(probe.ids)
	return probe.ids, probe.cleanup()
}
