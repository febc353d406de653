package loginguard

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// fakeClock is an injected clock. Its Sleep records the waits and, with
// advance set, moves the clock on by them; nothing really sleeps.
type fakeClock struct {
	now     time.Time
	advance bool
	slept   []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.slept = append(c.slept, d)
	if c.advance {
		c.now = c.now.Add(d)
	}
	return ctx.Err()
}

func newTestGuard(cfg Config) (*Guard, *fakeClock) {
	c := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	cfg.Now, cfg.Sleep = c.Now, c.Sleep
	return New(cfg), c
}

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
)

// seed sets the state of addr's source.
func seed(g *Guard, addr netip.Addr, score float64, next time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.source(Key(addr), g.cfg.Now())
	s.score, s.next = score, next
}

func TestAdmitWait(t *testing.T) {
	for _, tt := range []struct {
		name     string
		score    float64
		nextIn   time.Duration // the source's latest throttled check, from now
		want     time.Duration
		throttle bool
	}{
		{name: "Fresh", score: 0, want: 0},
		{name: "FourFailures", score: 4, want: 0},
		{name: "JustBelowFree", score: 4.99, want: 0},
		{name: "Free", score: 5, want: time.Second},
		{name: "FreePlusOneAndAHalf", score: 6.5, want: 2 * time.Second},
		{name: "FreePlusThree", score: 8, want: 8 * time.Second},
		{name: "CappedAtMaxWait", score: 9, want: 15 * time.Second},
		{name: "MaxScore", score: 32, want: 15 * time.Second},
		{name: "HugeScore", score: 1e9, want: 15 * time.Second},
		{name: "QueuedBehindEarlierCheck", score: 5, nextIn: 10 * time.Second, want: 11 * time.Second},
		{name: "PastCheckIgnored", score: 5, nextIn: -time.Minute, want: time.Second},
		{name: "QueueFull", score: 5, nextIn: 14500 * time.Millisecond, throttle: true},
		{name: "QueueFullAtCap", score: 9, nextIn: time.Second, throttle: true},
		{name: "NoWaitBelowFreeEvenWithQueue", score: 3, nextIn: time.Hour, want: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g, c := newTestGuard(Config{})
			seed(g, addrA, tt.score, c.now.Add(tt.nextIn))
			_, err := g.Admit(context.Background(), addrA)
			if tt.throttle {
				if !errors.Is(err, ErrThrottled) || len(c.slept) != 0 {
					t.Fatalf("Admit = %v after waits %v; want ErrThrottled at once", err, c.slept)
				}
				return
			}
			if err != nil {
				t.Fatalf("Admit: %v", err)
			}
			var got time.Duration
			if len(c.slept) > 0 {
				got = c.slept[0]
			}
			if got != tt.want {
				t.Errorf("Admit waited %v; want %v", got, tt.want)
			}
			if want := min(tt.score+1, DefaultMaxScore); g.Score(addrA) != want {
				t.Errorf("score after Admit %v; want %v (the attempt is charged)", g.Score(addrA), want)
			}
		})
	}
}

// TestParallelFlood sends many attempts from one address at the same
// instant: five go through, the next ones are queued ever further apart,
// and those whose turn would come after MaxWait are refused.
func TestParallelFlood(t *testing.T) {
	g, c := newTestGuard(Config{})
	ctx := context.Background()
	var refused int
	for range 20 {
		if _, err := g.Admit(ctx, addrA); errors.Is(err, ErrThrottled) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	want := []time.Duration{time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second}
	if wantRefused := 20 - DefaultFree - len(want); !equalDurations(c.slept, want) || refused != wantRefused {
		t.Errorf("waits %v, %d refused; want waits %v and %d refused", c.slept, refused, want, wantRefused)
	}

	// Another address is not slowed at all.
	c.slept = nil
	if _, err := g.Admit(ctx, addrB); err != nil || len(c.slept) != 0 {
		t.Errorf("Admit from another address: %v after %v; want at once", err, c.slept)
	}

	// 15 s later the queue has moved on: one more check, 15 s ahead.
	c.now = c.now.Add(15 * time.Second)
	c.slept = nil
	if _, err := g.Admit(ctx, addrA); err != nil || !equalDurations(c.slept, []time.Duration{15 * time.Second}) {
		t.Errorf("Admit 15 s into the flood: %v after %v; want a 15 s wait", err, c.slept)
	}
}

// TestSequential runs failed attempts one after the other, each answered
// after Delay, and checks that a correct password afterwards is only
// slowed, never refused.
func TestSequential(t *testing.T) {
	g, c := newTestGuard(Config{})
	c.advance = true
	ctx := context.Background()
	var admitWaits []time.Duration
	for range 12 {
		c.slept = nil
		a, err := g.Admit(ctx, addrA)
		if err != nil {
			t.Fatalf("sequential attempt refused: %v", err)
		}
		var w time.Duration
		if len(c.slept) > 0 {
			w = c.slept[0]
		}
		admitWaits = append(admitWaits, w)
		c.now = c.now.Add(500 * time.Millisecond) // the check
		a.Failed(ctx)
	}
	// Charges decay a little between attempts (each takes at least 3 s).
	want := []time.Duration{0, 0, 0, 0, 0, 0, time.Second, 2 * time.Second, 4 * time.Second,
		8 * time.Second, 15 * time.Second, 15 * time.Second}
	if !equalDurations(admitWaits, want) {
		t.Errorf("waits before the checks %v; want %v", admitWaits, want)
	}
	c.slept = nil
	a, err := g.Admit(ctx, addrA)
	if err != nil || len(c.slept) != 1 || c.slept[0] > DefaultMaxWait {
		t.Fatalf("correct password after the failures: %v after %v; want checked within %v", err, c.slept, DefaultMaxWait)
	}
	before := g.Score(addrA)
	a.Succeeded()
	if got := g.Score(addrA); got > before-0.99 {
		t.Errorf("score %v after a success; want the charge (1) taken back from %v", got, before)
	}
}

func TestFailedAnswersAtDelay(t *testing.T) {
	for _, tt := range []struct {
		name  string
		check time.Duration // how long the credentials check took
		want  []time.Duration
	}{
		{"FastCheck", 10 * time.Millisecond, []time.Duration{2990 * time.Millisecond}},
		{"PAMDelay", 2 * time.Second, []time.Duration{time.Second}},
		{"SlowCheck", 4 * time.Second, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g, c := newTestGuard(Config{})
			a, err := g.Admit(context.Background(), addrA)
			if err != nil {
				t.Fatal(err)
			}
			c.now = c.now.Add(tt.check)
			a.Failed(context.Background())
			if !equalDurations(c.slept, tt.want) {
				t.Errorf("Failed waited %v; want %v", c.slept, tt.want)
			}
		})
	}
}

func TestSuccessIsNotDelayed(t *testing.T) {
	g, c := newTestGuard(Config{})
	ctx := context.Background()
	for range 4 {
		a, _ := g.Admit(ctx, addrA)
		a.Failed(ctx)
	}
	c.slept = nil
	a, err := g.Admit(ctx, addrA)
	if err != nil || len(c.slept) != 0 {
		t.Fatalf("fifth attempt after four failures: %v after %v; want at once", err, c.slept)
	}
	a.Succeeded()
	a.Succeeded() // a second call changes nothing
	if got := g.Score(addrA); got != 4 {
		t.Errorf("score %v; want 4 (the success is not charged)", got)
	}
}

func TestDecay(t *testing.T) {
	g, c := newTestGuard(Config{})
	base := c.now
	seed(g, addrA, 32, time.Time{})
	for _, tt := range []struct {
		after time.Duration
		want  float64
	}{
		{0, 32},
		{5 * time.Minute, 16},
		{10 * time.Minute, 8},
		{20 * time.Minute, 2},
	} {
		c.now = base.Add(tt.after)
		if got := g.Score(addrA); got < tt.want-1e-9 || got > tt.want+1e-9 {
			t.Errorf("score %v after %v; want %v", got, tt.after, tt.want)
		}
	}
	c.slept = nil
	if _, err := g.Admit(context.Background(), addrA); err != nil || len(c.slept) != 0 {
		t.Errorf("Admit 20 min after a flood: %v after %v; want at once", err, c.slept)
	}
}

func TestKey(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"192.0.2.1", "192.0.2.1/32"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
	} {
		if got := Key(netip.MustParseAddr(tt.addr)).String(); got != tt.want {
			t.Errorf("Key(%s) = %s; want %s", tt.addr, got, tt.want)
		}
	}
	if got := Key(netip.Addr{}); got.IsValid() {
		t.Errorf("Key(invalid) = %v; want the invalid prefix", got)
	}
}

// TestIPv6Prefix checks that one /64 is one source.
func TestIPv6Prefix(t *testing.T) {
	g, c := newTestGuard(Config{})
	ctx := context.Background()
	for i := range 6 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)})
		if _, err := g.Admit(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if !equalDurations(c.slept, []time.Duration{time.Second}) {
		t.Errorf("six attempts from one /64 waited %v; want the sixth 1 s", c.slept)
	}
	c.slept = nil
	if _, err := g.Admit(ctx, netip.MustParseAddr("2001:db8:0:1::1")); err != nil || len(c.slept) != 0 {
		t.Errorf("another /64: %v after %v; want at once", err, c.slept)
	}
}

func TestBoundedSources(t *testing.T) {
	g, _ := newTestGuard(Config{MaxSources: 3})
	ctx := context.Background()
	addrs := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1", "192.0.2.4"}
	for _, s := range addrs {
		if _, err := g.Admit(ctx, netip.MustParseAddr(s)); err != nil {
			t.Fatal(err)
		}
	}
	if g.Len() != 3 {
		t.Errorf("%d sources remembered; want 3", g.Len())
	}
	for addr, want := range map[string]float64{"192.0.2.1": 2, "192.0.2.2": 0, "192.0.2.3": 1, "192.0.2.4": 1} {
		if got := g.Score(netip.MustParseAddr(addr)); got != want {
			t.Errorf("score of %s = %v; want %v (least recently used dropped)", addr, got, want)
		}
	}
}

func TestClientGoneWhileWaiting(t *testing.T) {
	g, _ := newTestGuard(Config{})
	seed(g, addrA, 7, time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Admit(ctx, addrA); !errors.Is(err, context.Canceled) {
		t.Errorf("Admit with a cancelled context: %v; want context.Canceled", err)
	}
	if got := g.Score(addrA); got != 8 {
		t.Errorf("score %v; want 8 (an abandoned attempt stays charged)", got)
	}
}

// TestSleep checks the real wait ends with the context, without waiting.
func TestSleep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("sleep(cancelled, 1h) = %v; want context.Canceled", err)
	}
	if err := sleep(context.Background(), 0); err != nil {
		t.Errorf("sleep(0) = %v; want nil", err)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFailureLine(t *testing.T) {
	for _, tt := range []struct{ rhost, user, msg, want string }{
		{"192.0.2.123", "root@pam", "Authentication failure",
			"authentication failure; rhost=192.0.2.123 user=root@pam msg=Authentication failure"},
		{"2001:db8::1", "jose@pve", "invalid credentials",
			"authentication failure; rhost=2001:db8::1 user=jose@pve msg=invalid credentials"},
		{"", "x y@pve", "no such user ('x y@pve')",
			"authentication failure; rhost= user=x y@pve msg=no such user ('x y@pve')"},
		{"192.0.2.1", "a\nHOST pvedaemon[1]: authentication failure; rhost=198.51.100.1 user=b@pve", "m\r\x00",
			`authentication failure; rhost=192.0.2.1 user=a\nHOST pvedaemon[1]: authentication failure; rhost=198.51.100.1 user=b@pve msg=m\r\x00`},
	} {
		if got := FailureLine(tt.rhost, tt.user, tt.msg); got != tt.want {
			t.Errorf("FailureLine(%q, %q, %q) =\n%q; want\n%q", tt.rhost, tt.user, tt.msg, got, tt.want)
		}
	}
}
