package pvescheduler

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/jobs"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// jobOnlyKeys are jobs.cfg keys that are not vzdump parameters (PVE's
// VZDump job run drops every option vzdump does not know).
var jobOnlyKeys = map[string]bool{"schedule": true, "enabled": true, "comment": true, "repeat-missed": true}

// VZDumpParams are the parameters of POST /nodes/{node}/vzdump for a job:
// its vzdump options, the job ID, and quiet (PVE's PVE::Jobs::VZDump::run).
func VZDumpParams(job jobs.VZDumpJob) url.Values {
	v := url.Values{}
	for k, val := range job.Opts {
		if !jobOnlyKeys[k] {
			v.Set(k, val)
		}
	}
	for k, list := range job.Lists {
		for _, e := range list {
			v.Add(k, e)
		}
	}
	v.Set("job-id", job.ID)
	v.Set("quiet", "1")
	return v
}

// TicketSource issues a ticket and CSRF token for a user.
type TicketSource func(ctx context.Context, userid string) (tk, csrf string, err error)

// DaemonRunner runs jobs through the local pvedaemon's API as root@pam
// (where every guest operation and its per-VM lock live), over its Unix
// socket.
type DaemonRunner struct {
	Node   string
	Socket string // pvedaemon's HTTP Unix socket
	Ticket TicketSource
	client *http.Client
}

// NewDaemonRunner returns a runner talking to pvedaemon at socket.
func NewDaemonRunner(node, socket string, tickets TicketSource) *DaemonRunner {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:          2,
		IdleConnTimeout:       time.Second,
		ResponseHeaderTimeout: time.Minute,
	}
	return &DaemonRunner{Node: node, Socket: socket, Ticket: tickets, client: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

// RunVZDump starts the job's backup task and returns its UPID.
func (r *DaemonRunner) RunVZDump(ctx context.Context, job jobs.VZDumpJob) (string, error) {
	upid, err := r.post(ctx, "/vzdump", VZDumpParams(job))
	if err != nil {
		return "", fmt.Errorf("vzdump: %w", err)
	}
	return upid, nil
}

// RunReplication starts a run of the replication job as a task of
// pvedaemon (where the VM's lock is) and returns its UPID.
func (r *DaemonRunner) RunReplication(ctx context.Context, jobID string) (string, error) {
	upid, err := r.post(ctx, "/replication/"+url.PathEscape(jobID)+"/pvenode-run", url.Values{})
	if err != nil {
		return "", fmt.Errorf("replication: %w", err)
	}
	return upid, nil
}

// post calls a method of this node below /nodes/{node} as root@pam and
// returns the UPID it answers.
func (r *DaemonRunner) post(ctx context.Context, path string, params url.Values) (string, error) {
	tk, csrf, err := r.Ticket(ctx, "root@pam")
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		"http://localhost/api2/json/nodes/"+url.PathEscape(r.Node)+path, strings.NewReader(params.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", ticket.CookieHeader(tk))
	req.Header.Set("CSRFPreventionToken", csrf)
	resp, err := r.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("pvedaemon: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("pvedaemon: %w", err)
	}
	var upid string
	if err := api.DecodeAnswer(resp.StatusCode, resp.Status, data, &upid); err != nil {
		return "", err
	}
	if upid == "" {
		return "", fmt.Errorf("unexpected answer %q", data)
	}
	return upid, nil
}
