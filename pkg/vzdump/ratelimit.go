package vzdump

import (
	"context"
	"time"
)

// rateLimiter keeps a data rate at or below bytesPerSec by sleeping; 0
// means no limit.
type rateLimiter struct {
	bytesPerSec int64
	start       time.Time
	sent        int64
}

func newRateLimiter(bytesPerSec int64) *rateLimiter {
	return &rateLimiter{bytesPerSec: bytesPerSec, start: time.Now()}
}

// wait accounts n bytes and sleeps until they are within the rate.
func (r *rateLimiter) wait(ctx context.Context, n int64) error {
	if r.bytesPerSec <= 0 {
		return nil
	}
	r.sent += n
	due := r.start.Add(time.Duration(float64(r.sent) / float64(r.bytesPerSec) * float64(time.Second)))
	d := time.Until(due)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
