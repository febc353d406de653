package pvedaemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/rrd"
)

// rrdClient asks pvestatd, which keeps the status history of the whole
// cluster, for a series (PVE's API reads through rrdcached the same way).
// It implements nodes.RRDSource.
type rrdClient struct {
	hc *http.Client
}

func newRRDClient(socket string) *rrdClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 2,
	}
	return &rrdClient{hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// rrdAnswer is pvestatd's answer (see pkg/service/pvestatd/history.go).
type rrdAnswer struct {
	Start  int64      `json:"start"`
	Step   int64      `json:"step"`
	Names  []string   `json:"names"`
	Values []*float64 `json:"values"`
}

// Query returns the series key's points of tf consolidated with cf.
func (c *rrdClient) Query(key string, tf rrd.Timeframe, cf rrd.CF) (*rrd.Result, error) {
	q := url.Values{"key": {key}, "timeframe": {string(tf)}, "cf": {cf.String()}}
	resp, err := c.hc.Get("http://pvestatd/query?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("status history (is pvestatd running?): %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		if resp.StatusCode == http.StatusNotFound {
			return nil, errors.New(msg) // rrdtool's "opening '...': No such file or directory"
		}
		return nil, fmt.Errorf("status history: %s", msg)
	}
	var a rrdAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, err
	}
	res := &rrd.Result{Start: a.Start, Step: a.Step, Names: a.Names, Values: make([]float64, len(a.Values))}
	for i, v := range a.Values {
		if v == nil {
			res.Values[i] = math.NaN()
		} else {
			res.Values[i] = *v
		}
	}
	return res, nil
}
