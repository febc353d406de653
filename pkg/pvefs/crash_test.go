package pvefs

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envKillDir names the config root of TestHelperRewriteBig.
const envKillDir = "PVEFS_KILL_HELPER_DIR"

// Bounds of the SIGKILL test.
const (
	killRounds   = 40
	killDeadline = 25 * time.Second
	bigLines     = 16384 // 64 bytes each: 1 MiB
)

// bigVersion returns version v of the file the helper writes: 1 MiB of
// lines that all depend on v, so that any mixture of two versions, a
// truncation or a hole is told apart from every complete version.
func bigVersion(v int) []byte {
	var b bytes.Buffer
	b.Grow(bigLines * 64)
	for i := range bigLines {
		fill := strings.Repeat(string(rune('a'+(v+i)%26)), 44)
		fmt.Fprintf(&b, "%09d %09d %s\n", v, i, fill)
	}
	return b.Bytes()
}

func versionOf(data []byte) (int, bool) {
	if len(data) < 9 {
		return 0, false
	}
	v, err := strconv.Atoi(string(data[:9]))
	return v, err == nil
}

// TestWriteFileSurvivesSIGKILL kills a helper process that rewrites a
// 1 MiB file in a loop (alternately with WriteFile and with Update) at
// random moments, many times. After every kill the file must be exactly one
// complete version, never older than the last one seen, and after all the
// kills both WriteFile and Update must still work: the temporary files of
// killed writers never collide with new ones, and the kernel released the
// dead holder's lock.
func TestWriteFileSurvivesSIGKILL(t *testing.T) {
	if os.Getenv(envKillDir) != "" || os.Getenv("PVEFS_HELPER_DIR") != "" {
		t.Skip("helper process")
	}
	if testing.Short() {
		t.Skip("kills processes for many seconds")
	}
	r, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.MkdirAll("priv", 0o700); err != nil {
		t.Fatal(err)
	}
	const name = "priv/big.cfg"
	if err := r.WriteFile(name, bigVersion(0), 0o600); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	deadline := time.Now().Add(killDeadline)
	last, rounds := 0, 0
	for ; rounds < killRounds && time.Now().Before(deadline); rounds++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperRewriteBig$", "-test.count=1", "-test.timeout=1m")
		c.Env = append(os.Environ(), envKillDir+"="+r.Dir())
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(10+rng.IntN(250)) * time.Millisecond)
		if err := c.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill: %v", err)
		}
		_ = c.Wait()
		cancel()

		data, err := r.ReadFile(name)
		if err != nil {
			t.Fatalf("round %d: %s after kill: %v", rounds, name, err)
		}
		v, ok := versionOf(data)
		if !ok || !bytes.Equal(data, bigVersion(v)) {
			t.Fatalf("round %d: %s after kill is not a complete version (%d bytes, starts %q)", rounds, name, len(data), data[:min(len(data), 20)])
		}
		if v < last {
			t.Fatalf("round %d: version went back from %d to %d", rounds, last, v)
		}
		last = v
	}
	stray, _ := filepath.Glob(filepath.Join(r.Dir(), "priv", ".big.cfg.tmp-*"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Update(ctx, name, 0o600, func([]byte) ([]byte, error) { return bigVersion(last + 1), nil }); err != nil {
		t.Fatalf("Update after the kills: %v", err)
	}
	if err := r.WriteFile(name, bigVersion(last+2), 0o600); err != nil {
		t.Fatalf("WriteFile after the kills: %v", err)
	}
	if got, _ := r.ReadFile(name); !bytes.Equal(got, bigVersion(last+2)) {
		t.Error("final content differs")
	}
	t.Logf("%d kills, last version %d, %d temporary files left by killed writers", rounds, last, len(stray))
	if last == 0 {
		t.Error("no helper completed a single write")
	}
}

func TestHelperRewriteBig(t *testing.T) {
	dir := os.Getenv(envKillDir)
	if dir == "" {
		t.Skip("only run as a helper process")
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	const name = "priv/big.cfg"
	ctx := context.Background()
	for i := range 10000 { // killed long before
		if i%2 == 0 {
			err = r.Update(ctx, name, 0o600, func(old []byte) ([]byte, error) {
				v, _ := versionOf(old)
				return bigVersion(v + 1), nil
			})
		} else {
			// unlocked, as a caller that owns the file alone would
			var old []byte
			if old, err = r.ReadFile(name); err == nil {
				v, _ := versionOf(old)
				err = r.WriteFile(name, bigVersion(v+1), 0o600)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
