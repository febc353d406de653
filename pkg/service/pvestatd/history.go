package pvestatd

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/pvenode/pvenode/pkg/clusterstate"
	"github.com/pvenode/pvenode/pkg/rrd"
)

// history keeps the status history of every node, guest and storage of
// the cluster (PVE: pmxcfs feeds every record it receives to the local
// rrdcached) and answers queries from pvedaemon over a Unix socket.
type history struct {
	store *rrd.Store
	log   *slog.Logger

	mu   sync.Mutex
	seen map[string]int64 // node -> collection time of the last state stored
}

func newHistory(store *rrd.Store, log *slog.Logger) *history {
	return &history{store: store, log: log, seen: map[string]int64{}}
}

var nan = math.NaN()

// record stores one node's state, once per collection.
func (h *history) record(st *clusterstate.NodeState) {
	if st == nil || st.Node.Time == 0 {
		return
	}
	h.mu.Lock()
	if h.seen[st.Node.Name] >= st.Node.Time {
		h.mu.Unlock()
		return
	}
	h.seen[st.Node.Name] = st.Node.Time
	h.mu.Unlock()
	t := st.Node.Time
	n := &st.Node
	h.update("pve-node-9.0/"+n.Name, t, []float64{
		n.LoadAvg, float64(n.MaxCPU), n.CPU, n.IOWait, float64(n.MemTotal), float64(n.MemUsed),
		float64(n.SwapTotal), float64(n.SwapUsed), float64(n.RootTotal), float64(n.RootUsed),
		float64(n.NetIn), float64(n.NetOut), float64(n.MemAvailable), nan, nan, nan, nan, nan, nan,
	})
	for i := range st.Guests {
		g := &st.Guests[i]
		vals := []float64{g.MaxCPU, g.CPU, float64(g.MaxMem), float64(g.Mem), float64(g.MaxDisk), float64(g.Disk),
			float64(g.NetIn), float64(g.NetOut), float64(g.DiskRead), float64(g.DiskWrite), float64(g.MemHost),
			nan, nan, nan, nan, nan, nan}
		if g.Uptime == 0 {
			// A stopped guest: PVE sends its runtime figures as unknown.
			for _, j := range []int{1, 3, 6, 7, 8, 9, 10} {
				vals[j] = nan
			}
		}
		h.update("pve-vm-9.0/"+strconv.Itoa(g.VMID), t, vals)
	}
	for _, s := range st.Storages {
		if s.Active {
			h.update("pve-storage-9.0/"+n.Name+"/"+s.ID, t, []float64{float64(s.Total), float64(s.Used)})
		}
	}
}

func (h *history) update(key string, t int64, vals []float64) {
	if err := h.store.Update(key, t, vals); err != nil && !errors.Is(err, rrd.ErrOutdated) {
		h.log.Warn("status history", "series", key, "err", err)
	}
}

// queryAnswer is a query result on the socket: the rrd.Result with
// unknown values as null.
type queryAnswer struct {
	Start  int64      `json:"start"`
	Step   int64      `json:"step"`
	Names  []string   `json:"names"`
	Values []*float64 `json:"values"`
}

// serve answers GET /query?key=&timeframe=&cf= on ln until it is closed.
func (h *history) serve(ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /query", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		cf, err := rrd.ParseCF(q.Get("cf"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res, err := h.store.Query(q.Get("key"), rrd.Timeframe(q.Get("timeframe")), cf)
		var nf *rrd.NotFoundError
		switch {
		case errors.As(err, &nf):
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a := queryAnswer{Start: res.Start, Step: res.Step, Names: res.Names, Values: make([]*float64, len(res.Values))}
		for i, v := range res.Values {
			if !math.IsNaN(v) {
				a.Values[i] = &res.Values[i]
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	err := srv.Serve(ln)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// listenHistory opens the query socket at path, root only.
func listenHistory(path string) (net.Listener, error) {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
