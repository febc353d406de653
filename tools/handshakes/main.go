package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config is the parsed command line.
type config struct {
	addr       string
	serverName string
	caFile     string
	roots      *x509.CertPool // from caFile
	conns      int
	duration   time.Duration
	max        int64
	timeout    time.Duration
	mode       string
	curve      string
	pids       []int
}

// applyMode restricts tc to what -mode offers; false for an unknown mode.
func applyMode(tc *tls.Config, mode string) bool {
	switch mode {
	case "tls13":
		tc.MinVersion, tc.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	case "tls12-rsa":
		tc.MinVersion, tc.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		tc.CipherSuites = []uint16{
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		}
	case "tls12-ecdsa":
		tc.MinVersion, tc.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		tc.CipherSuites = []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		}
	default:
		return false
	}
	return true
}

// curveID returns the key exchange -curve names.
func curveID(name string) (tls.CurveID, bool) {
	switch name {
	case "x25519":
		return tls.X25519, true
	case "p256":
		return tls.CurveP256, true
	case "x25519mlkem768":
		return tls.X25519MLKEM768, true
	}
	return 0, false
}

// run is main without the process exit, so tests can drive it.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "handshakes: %v\n", err)
		}
		return 2
	}
	res, err := measure(context.Background(), cfg)
	if err != nil {
		fmt.Fprintf(stderr, "handshakes: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, res.line(cfg))
	if res.ok == 0 {
		return 1
	}
	return 0
}

func parseArgs(args []string, stderr io.Writer) (config, error) {
	var c config
	var pids string
	fs := flag.NewFlagSet("handshakes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "", "server host:port")
	fs.StringVar(&c.serverName, "server-name", "", "SNI name to send (none by default, as for an IP address)")
	fs.StringVar(&c.caFile, "ca", "", "CA certificate (PEM) the server certificate is verified against (required)")
	fs.IntVar(&c.conns, "conns", 32, "concurrent workers")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "stop starting handshakes after this long")
	fs.Int64Var(&c.max, "max", 1_000_000, "stop after starting this many handshakes (0: no limit)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "limit for one dial and handshake")
	fs.StringVar(&c.mode, "mode", "tls13", "tls13, tls12-rsa or tls12-ecdsa")
	fs.StringVar(&c.curve, "curve", "", "key exchange: x25519, p256, x25519mlkem768 (default: Go's list)")
	fs.StringVar(&pids, "pid", "", "comma-separated server pids whose CPU time to report")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() != 0:
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.addr == "":
		return c, errors.New("-addr is required")
	case c.conns < 1:
		return c, fmt.Errorf("-conns %d: must be at least 1", c.conns)
	case c.duration <= 0:
		return c, fmt.Errorf("-duration %s: must be positive", c.duration)
	case c.max < 0:
		return c, fmt.Errorf("-max %d: must not be negative", c.max)
	case c.timeout <= 0:
		return c, fmt.Errorf("-timeout %s: must be positive", c.timeout)
	}
	if !applyMode(&tls.Config{}, c.mode) {
		return c, fmt.Errorf("-mode %q: want tls13, tls12-rsa or tls12-ecdsa", c.mode)
	}
	if _, ok := curveID(c.curve); c.curve != "" && !ok {
		return c, fmt.Errorf("-curve %q: want x25519, p256 or x25519mlkem768", c.curve)
	}
	if c.caFile == "" {
		return c, errors.New("-ca is required: the server certificate is verified")
	}
	pemData, err := os.ReadFile(c.caFile)
	if err != nil {
		return c, fmt.Errorf("-ca: %w", err)
	}
	c.roots = x509.NewCertPool()
	if !c.roots.AppendCertsFromPEM(pemData) {
		return c, fmt.Errorf("-ca %s: no PEM certificate", c.caFile)
	}
	for _, f := range strings.Split(pids, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		pid, err := strconv.Atoi(f)
		if err != nil || pid < 1 {
			return c, fmt.Errorf("-pid: %q is not a process id", f)
		}
		c.pids = append(c.pids, pid)
	}
	return c, nil
}

// tlsConfig returns the client configuration of c: the server certificate
// verified against -ca, no session cache, no tickets, so every handshake is
// a full one.
func (c config) tlsConfig() *tls.Config {
	tc := &tls.Config{
		RootCAs:                c.roots,
		ServerName:             c.serverName,
		ClientSessionCache:     nil,
		SessionTicketsDisabled: true,
	}
	applyMode(tc, c.mode)
	if id, ok := curveID(c.curve); ok {
		tc.CurvePreferences = []tls.CurveID{id}
	}
	return tc
}

// result is what one measurement found.
type result struct {
	ok, failed int64
	elapsed    time.Duration
	latencies  []time.Duration // dial plus handshake, sorted
	state      tls.ConnectionState
	firstErr   error
	cpuTicks   int64 // CPU clock ticks of the -pid processes, -1 if unknown
}

// worker is one load loop's share of the result.
type worker struct {
	lat      []time.Duration
	failed   int64
	state    *tls.ConnectionState
	firstErr error
}

// measure runs the load described by c until its duration has passed, max
// handshakes were started or ctx is cancelled, and waits for all workers.
func measure(ctx context.Context, c config) (result, error) {
	tc := c.tlsConfig()
	before, err := cpuTicks(c.pids)
	if err != nil {
		return result{}, err
	}
	runCtx, cancel := context.WithTimeout(ctx, c.duration)
	defer cancel()

	var started atomic.Int64
	workers := make([]worker, c.conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &workers[i]
		wg.Go(func() {
			for runCtx.Err() == nil {
				if n := started.Add(1); c.max > 0 && n > c.max {
					return
				}
				// Each attempt gets its own limit, not runCtx, so that
				// handshakes under way at the deadline finish.
				t0 := time.Now()
				st, err := handshake(ctx, c.addr, tc, c.timeout)
				if err != nil {
					w.failed++
					if w.firstErr == nil {
						w.firstErr = err
					}
					continue
				}
				w.lat = append(w.lat, time.Since(t0))
				if w.state == nil {
					w.state = &st
				}
			}
		})
	}
	wg.Wait()
	res := result{elapsed: time.Since(start), cpuTicks: -1}
	after, err := cpuTicks(c.pids)
	if err != nil {
		return result{}, err
	}
	if before >= 0 && after >= 0 {
		res.cpuTicks = after - before
	}
	for i := range workers {
		w := &workers[i]
		res.latencies = append(res.latencies, w.lat...)
		res.failed += w.failed
		if res.firstErr == nil {
			res.firstErr = w.firstErr
		}
		if w.state != nil && res.state.Version == 0 {
			res.state = *w.state
		}
	}
	res.ok = int64(len(res.latencies))
	slices.Sort(res.latencies)
	return res, nil
}

// handshake dials addr, completes a TLS handshake and closes the connection.
func handshake(ctx context.Context, addr string, tc *tls.Config, timeout time.Duration) (tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{Config: tc}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	tlsConn := conn.(*tls.Conn)
	st := tlsConn.ConnectionState()
	return st, tlsConn.Close()
}

// cpuTicks returns the summed user and system time of pids in clock ticks
// (1/100 s on Linux), or -1 when no pids are given.
func cpuTicks(pids []int) (int64, error) {
	if len(pids) == 0 {
		return -1, nil
	}
	var sum int64
	for _, pid := range pids {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
		}
		t, err := parseStat(string(data))
		if err != nil {
			return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
		}
		sum += t
	}
	return sum, nil
}

// parseStat returns utime+stime from the text of /proc/<pid>/stat.
func parseStat(s string) (int64, error) {
	// The command name is in parentheses and may contain spaces.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	// After the name: state(3) ... utime(14) stime(15), so indexes 11 and 12.
	if len(f) < 13 {
		return 0, errors.New("malformed stat: too few fields")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("malformed stat: %w", err)
	}
	return u + st, nil
}

// percentile returns the p-th percentile (0..100) of sorted, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// certName describes the public key of the served leaf certificate.
func certName(st tls.ConnectionState) string {
	if len(st.PeerCertificates) == 0 {
		return "none"
	}
	switch k := st.PeerCertificates[0].PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA-" + strings.ReplaceAll(k.Curve.Params().Name, "-", "")
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return "unknown"
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }

// line formats res as one line of key=value pairs.
func (res result) line(c config) string {
	secs := res.elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(res.ok) / secs
	}
	var b strings.Builder
	fmt.Fprintf(&b, "mode=%s conns=%d ok=%d failed=%d seconds=%.2f rate=%.1f p50_ms=%s p99_ms=%s",
		c.mode, c.conns, res.ok, res.failed, secs, rate,
		ms(percentile(res.latencies, 50)), ms(percentile(res.latencies, 99)))
	if res.state.Version != 0 {
		fmt.Fprintf(&b, " version=%s cert=%s curve=%s suite=%s",
			strings.ReplaceAll(tls.VersionName(res.state.Version), " ", ""), certName(res.state),
			res.state.CurveID, tls.CipherSuiteName(res.state.CipherSuite))
	}
	if res.cpuTicks >= 0 && res.ok > 0 {
		fmt.Fprintf(&b, " server_cpu_ms=%.3f", float64(res.cpuTicks)*10/float64(res.ok))
	}
	if res.firstErr != nil {
		fmt.Fprintf(&b, " first_error=%q", res.firstErr.Error())
	}
	return b.String()
}
