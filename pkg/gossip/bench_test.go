package gossip

// Benchmarks of the gossip with in-process nodes on 127.0.0.1 (each with its
// own UDP and TCP sockets, DefaultTiming, TLS and encryption on). They report
// their own figures (medians over samples or nodes) rather than ns/op; run
// them once each:
//
//	go test -run '^$' -bench Gossip -benchtime 1x -timeout 30m ./pkg/gossip/
//
// PVENODE_GOSSIP_WINDOW (a duration, default 60s) sets the measuring window
// of the bandwidth benchmarks; the default covers at least one push/pull
// round of every node at 64 nodes (memberlist scales its interval to 60 s
// above 32 nodes).

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

var benchSizes = []int{3, 16, 64}

func benchWindow(b *testing.B) time.Duration {
	if s := os.Getenv("PVENODE_GOSSIP_WINDOW"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("PVENODE_GOSSIP_WINDOW: %v", err)
		}
		return d
	}
	return 60 * time.Second
}

// arrivals records when each node takes a given version of a given state.
type arrivals struct {
	mu      sync.Mutex
	origin  string
	version uint64
	want    int
	seen    map[string]time.Time
	done    chan struct{}
}

func (a *arrivals) expect(origin string, version uint64, want int) {
	a.mu.Lock()
	a.origin, a.version, a.want = origin, version, want
	a.seen = map[string]time.Time{}
	a.done = make(chan struct{})
	a.mu.Unlock()
}

func (a *arrivals) hook(node string) func(string, uint64) {
	return func(origin string, version uint64) {
		now := time.Now()
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.seen == nil || origin != a.origin || version < a.version {
			return
		}
		if _, ok := a.seen[node]; ok {
			return
		}
		a.seen[node] = now
		if len(a.seen) == a.want {
			close(a.done)
		}
	}
}

func (a *arrivals) last() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var t time.Time
	for _, s := range a.seen {
		if s.After(t) {
			t = s
		}
	}
	return t
}

// benchCluster starts n nodes, waits for full membership and gives every
// node a state of guests guests.
func benchCluster(b *testing.B, n, guests int, arr *arrivals) *cluster {
	b.Helper()
	c := newCluster(b)
	if arr != nil {
		c.tweak = func(cfg *Config) { cfg.onAccept = arr.hook(cfg.Name) }
	}
	c.grow(n)
	c.waitMembers(n, 60*time.Second)
	for i, node := range c.nodes {
		node.SetLocalState(guestRecords(node.Name(), guests, uint64(i)), true)
	}
	// Every node holds every state, and the broadcast queues drained.
	waitFor(b, 60*time.Second, func() bool {
		for _, node := range c.nodes {
			node.mu.Lock()
			held := len(node.states)
			node.mu.Unlock()
			if held != n || node.queue.NumQueued() != 0 {
				return false
			}
		}
		return true
	}, "every node holds every state")
	return c
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func percentile(xs []float64, p float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// BenchmarkGossipConvergence: time from SetLocalState on one node until
// every other node holds that version; small states (20 guests, sent whole
// in gossip packets) and large ones (200 guests, announced and fetched).
func BenchmarkGossipConvergence(b *testing.B) {
	for _, size := range benchSizes {
		for _, st := range []struct {
			name   string
			guests int
		}{{"small", 20}, {"large", 200}} {
			b.Run(fmt.Sprintf("nodes=%d/state=%s", size, st.name), func(b *testing.B) {
				arr := &arrivals{}
				c := benchCluster(b, size, st.guests, arr)
				const samples = 20
				var ms []float64
				b.ResetTimer()
				for range b.N {
					for i := range samples {
						src := c.nodes[(i*7+1)%size]
						data := guestRecords(src.Name(), st.guests, uint64(1000+i))
						arr.expect(src.Name(), 0, size-1)
						start := time.Now()
						v, _, _ := src.SetLocalState(data, true)
						arr.mu.Lock()
						arr.version = v
						arr.mu.Unlock()
						select {
						case <-arr.done:
						case <-time.After(30 * time.Second):
							b.Fatalf("sample %d: %d of %d nodes after 30s", i, len(arr.seen), size-1)
						}
						ms = append(ms, float64(arr.last().Sub(start).Microseconds())/1000)
						// Let the queues drain so that samples do not overlap.
						time.Sleep(time.Duration(300+rand.IntN(200)) * time.Millisecond)
					}
				}
				b.StopTimer()
				b.ReportMetric(median(ms), "ms-median")
				b.ReportMetric(percentile(ms, 0.9), "ms-p90")
				b.ReportMetric(slices.Max(ms), "ms-max")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// rates measures each node's traffic over the window, in bytes per second
// (sent plus received; and sent alone).
func rates(nodes []*Node, window time.Duration, during func()) (total, sent []float64) {
	start := make([]Stats, len(nodes))
	for i, n := range nodes {
		start[i] = n.Stats()
	}
	t0 := time.Now()
	if during != nil {
		during()
	} else {
		time.Sleep(window)
	}
	secs := time.Since(t0).Seconds()
	for i, n := range nodes {
		s := n.Stats()
		out := float64(s.BytesSent()-start[i].BytesSent()) / secs
		in := float64(s.BytesReceived()-start[i].BytesReceived()) / secs
		total = append(total, out+in)
		sent = append(sent, out)
	}
	return total, sent
}

// BenchmarkGossipIdle: traffic per node at rest (every node holds a state of
// 20 guests that does not change): probes, acks, push/pull (TLS included).
func BenchmarkGossipIdle(b *testing.B) {
	window := benchWindow(b)
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			c := benchCluster(b, size, 20, nil)
			time.Sleep(2 * time.Second)
			b.ResetTimer()
			var total, sent []float64
			for range b.N {
				total, sent = rates(c.nodes, window, nil)
			}
			b.StopTimer()
			b.ReportMetric(median(total), "B/s-node-median")
			b.ReportMetric(slices.Max(total), "B/s-node-max")
			b.ReportMetric(median(sent), "B/s-sent-median")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkGossipActive: traffic per node when every node sets a changed
// state every 10 s (pvestatd's cycle), urgent, at a random phase.
func BenchmarkGossipActive(b *testing.B) {
	window := benchWindow(b)
	for _, size := range benchSizes {
		for _, st := range []struct {
			name   string
			guests int
		}{{"small", 20}, {"large", 200}} {
			b.Run(fmt.Sprintf("nodes=%d/state=%s", size, st.name), func(b *testing.B) {
				c := benchCluster(b, size, st.guests, nil)
				b.ResetTimer()
				var total, sent []float64
				for range b.N {
					total, sent = rates(c.nodes, window, func() {
						var wg sync.WaitGroup
						stop := time.After(window)
						done := make(chan struct{})
						for i, n := range c.nodes {
							wg.Add(1)
							go func() {
								defer wg.Done()
								time.Sleep(time.Duration(rand.Int64N(int64(10 * time.Second))))
								tick := time.NewTicker(10 * time.Second)
								defer tick.Stop()
								for k := uint64(1); ; k++ {
									n.SetLocalState(guestRecords(n.Name(), st.guests, uint64(i)<<32|k), true)
									select {
									case <-tick.C:
									case <-done:
										return
									}
								}
							}()
						}
						<-stop
						close(done)
						wg.Wait()
					})
				}
				b.StopTimer()
				b.ReportMetric(median(total), "B/s-node-median")
				b.ReportMetric(slices.Max(total), "B/s-node-max")
				b.ReportMetric(median(sent), "B/s-sent-median")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// BenchmarkGossipDetect: time from a node's shutdown (a crash: no leave)
// until every other node shows it dead; three nodes are killed in turn.
func BenchmarkGossipDetect(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			c := benchCluster(b, size, 5, nil)
			var all, each []float64
			b.ResetTimer()
			for range b.N {
				for k := 0; k < min(3, size-2); k++ {
					victim := c.nodes[len(c.nodes)-1-k]
					c.nodes[len(c.nodes)-1-k] = nil
					start := time.Now()
					victim.Shutdown()
					first := map[string]time.Duration{}
					waitFor(b, 60*time.Second, func() bool {
						for _, n := range c.nodes {
							if n == nil {
								continue
							}
							if _, ok := first[n.Name()]; ok {
								continue
							}
							if s, _ := stateOf(n, victim.Name()); s.Status == StatusDead {
								first[n.Name()] = time.Since(start)
							}
						}
						return len(first) == size-1-k
					}, "every node shows the victim dead")
					var last time.Duration
					for _, d := range first {
						each = append(each, d.Seconds())
						last = max(last, d)
					}
					all = append(all, last.Seconds())
				}
			}
			b.StopTimer()
			b.ReportMetric(median(each), "s-median-node")
			b.ReportMetric(median(all), "s-median-all")
			b.ReportMetric(slices.Max(all), "s-max-all")
			b.ReportMetric(0, "ns/op")
		})
	}
}
