package pvescheduler

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkSchedulingDelay measures the time from a job's calendar time to
// the start of its task, over b.N firings of a job due every second (real
// scheduler, real cron, real state files, a real task per run). PVE's own
// pvescheduler looks at jobs once a minute, so its delay is up to 60 s.
func BenchmarkSchedulingDelay(b *testing.B) {
	l := newLab(b)
	l.writeJobs(jobText("every-second", "*:*:*", "repeat-missed 0"))
	s := l.scheduler()
	// state changes between runs: the previous run must be seen stopped
	// before the next may start, as in production.
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer s.Stop()
	delays := make([]time.Duration, 0, b.N)
	var woken []time.Duration
	deadline := time.After(time.Duration(b.N)*time.Second + 30*time.Second)
	b.ResetTimer()
	for len(delays) < b.N {
		select {
		case f := <-l.fired:
			if f.Err != nil {
				b.Fatal(f.Err)
			}
			delays = append(delays, f.Started.Sub(f.Due))
			woken = append(woken, f.Woken.Sub(f.Due))
		case <-deadline:
			b.Fatalf("only %d firings", len(delays))
		}
	}
	b.StopTimer()
	slices.Sort(delays)
	q := func(p float64) float64 { return float64(delays[int(p*float64(len(delays)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "ms-median-delay")
	b.ReportMetric(q(0.99), "ms-p99-delay")
	b.ReportMetric(float64(delays[len(delays)-1].Microseconds())/1000, "ms-max-delay")
	slices.Sort(woken)
	b.ReportMetric(float64(woken[len(woken)/2].Microseconds())/1000, "ms-median-wake")
}
