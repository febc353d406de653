package access

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/pvefs"
)

// Environment of the helper processes these tests start (the test binary,
// re-executed with -test.run naming one helper test).
const (
	envHelperRoot = "PVENODE_ACCESS_HELPER_ROOT"
	envHelperTag  = "PVENODE_ACCESS_HELPER_TAG"
)

func isHelper() bool { return os.Getenv(envHelperRoot) != "" }

// startHelper runs the test binary as a child executing the helper test
// named by run.
func startHelper(t *testing.T, ctx context.Context, run, root, tag string) *exec.Cmd {
	t.Helper()
	c := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+run+"$", "-test.count=1", "-test.timeout=2m")
	c.Env = append(os.Environ(), envHelperRoot+"="+root, envHelperTag+"="+tag)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && out.Len() > 0 {
			t.Logf("helper %s output:\n%s", tag, out.String())
		}
	})
	return c
}

// Concurrent writers in this test: crashGoroutines in each of
// crashProcs helper processes and in the test process itself, each adding
// crashUsersEach users.
const (
	crashProcs      = 4
	crashGoroutines = 4
	crashUsersEach  = 8
)

// TestUpdateUserCfgProcessesAndGoroutines adds distinct users to one
// user.cfg from many goroutines in several processes at once, each through
// UpdateUserCfg (a locked read-modify-write). Every user must be there at
// the end, and the file must read without new warnings and be in canonical
// form.
func TestUpdateUserCfgProcessesAndGoroutines(t *testing.T) {
	if isHelper() {
		t.Skip("helper process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	root, err := pvefs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	initial := readGolden(t, "user.cfg")
	if err := root.WriteFile(UserCfgFile, initial, 0o640); err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	for p := range crashProcs {
		cmds = append(cmds, startHelper(t, ctx, "TestHelperAddUsers", root.Dir(), fmt.Sprintf("p%d", p)))
	}
	if err := addUsers(ctx, root, "main"); err != nil {
		t.Error(err)
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("helper p%d: %v", i, err)
		}
	}
	data, err := root.ReadFile(UserCfgFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, warns := ParseUserCfg(UserCfgFile, data)
	if len(warns) != 1 || warns[0].Msg != `group "ops": member "ghost@pve" does not exist` {
		t.Errorf("warnings = %q; want only the one about ghost@pve", warningStrings(warns))
	}
	tags := []string{"main"}
	for p := range crashProcs {
		tags = append(tags, fmt.Sprintf("p%d", p))
	}
	for _, tag := range tags {
		for g := range crashGoroutines {
			for i := range crashUsersEach {
				id := crashUserID(tag, g, i)
				if cfg.Users[id] == nil || cfg.Token(id+"!tk") == nil || !cfg.Groups["crowd"].Members[id] ||
					!cfg.Permissions(id+"!tk", fmt.Sprintf("/vms/%d", 5000+g*100+i)).Has("VM.Audit") {
					t.Errorf("update for %s lost", id)
				}
			}
		}
	}
	want := len(userIDsOf(initial)) + (crashProcs+1)*crashGoroutines*crashUsersEach
	if len(cfg.Users) != want {
		t.Errorf("%d users; want %d", len(cfg.Users), want)
	}
	if !bytes.Equal(cfg.Marshal(), data) {
		t.Error("final user.cfg is not in canonical form")
	}
	if ents, _ := os.ReadDir(root.Dir()); len(ents) != 2 {
		t.Errorf("config root holds %d entries; want user.cfg and .locks", len(ents))
	}
}

// userIDsOf returns the users of a user.cfg.
func userIDsOf(data []byte) map[string]*User {
	c, _ := ParseUserCfg(UserCfgFile, data)
	return c.Users
}

func crashUserID(tag string, g, i int) string { return fmt.Sprintf("load-%s-g%d-%d@pve", tag, g, i) }

// addUsers runs crashGoroutines goroutines, each adding crashUsersEach
// users, with a token, a group membership and an ACL entry each.
func addUsers(ctx context.Context, root *pvefs.Root, tag string) error {
	var wg sync.WaitGroup
	errs := make(chan error, crashGoroutines*crashUsersEach)
	for g := range crashGoroutines {
		wg.Go(func() {
			for i := range crashUsersEach {
				id := crashUserID(tag, g, i)
				errs <- UpdateUserCfg(ctx, root, func(c *UserCfg) error {
					if c.Users[id] != nil {
						return fmt.Errorf("%s exists before it was added", id)
					}
					c.Users[id] = &User{Enable: true, Comment: "added by " + tag,
						Tokens: map[string]*Token{"tk": {Privsep: true}}}
					grp := c.Groups["crowd"]
					if grp == nil {
						grp = &Group{Members: map[string]bool{}}
						c.Groups["crowd"] = grp
					}
					grp.Members[id] = true
					path := fmt.Sprintf("/vms/%d", 5000+g*100+i)
					setEntry(&c.ACLNode(path, true).Users, id, "PVEAuditor", true)
					setEntry(&c.ACLNode(path, true).Tokens, id+"!tk", "PVEAuditor", false)
					return nil
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

func TestHelperAddUsers(t *testing.T) {
	if !isHelper() {
		t.Skip("only run as a helper process")
	}
	root, err := pvefs.Open(os.Getenv(envHelperRoot))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := addUsers(ctx, root, os.Getenv(envHelperTag)); err != nil {
		t.Fatal(err)
	}
}

// Bounds of the SIGKILL test.
const (
	killRounds   = 30
	killDeadline = 25 * time.Second
	killUsers    = 3000
)

// killVersion returns version v of the large user.cfg the helper writes:
// killUsers users with ACL entries, every comment saying "v<v>".
func killVersion(v int) *UserCfg {
	c := NewUserCfg()
	c.Roles["Starter"] = []string{"VM.Audit", "VM.Console", "VM.PowerMgmt"}
	for i := range killUsers {
		id := fmt.Sprintf("user%04d@pve", i)
		c.Users[id] = &User{Enable: true, Firstname: "Ünïcödé", Lastname: fmt.Sprint(i), Email: id,
			Comment: fmt.Sprintf("v%d", v)}
		setEntry(&c.aclNode(fmt.Sprintf("/vms/%d", 100+i)).Users, id, "Starter", i%2 == 0)
	}
	return c
}

var versionRe = regexp.MustCompile(`(?m)^user:user0000@pve:[^\n]*:v(\d+):[^\n]*$`)

// TestUserCfgSurvivesSIGKILL kills a helper that rewrites a large user.cfg
// (about 300 KB) in a loop through UpdateUserCfg, at random moments, again
// and again. After every kill the file must be exactly one complete version
// (never partial, never missing), no older than the one seen before, and
// the next write, by the next helper, must succeed: neither a leftover
// temporary file nor the dead helper's lock may get in its way.
func TestUserCfgSurvivesSIGKILL(t *testing.T) {
	if isHelper() {
		t.Skip("helper process")
	}
	if testing.Short() {
		t.Skip("kills processes for many seconds")
	}
	root, err := pvefs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := root.WriteFile(UserCfgFile, killVersion(0).Marshal(), 0o640); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	deadline := time.Now().Add(killDeadline)
	last, rounds := 0, 0
	for ; rounds < killRounds && time.Now().Before(deadline); rounds++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c := startHelper(t, ctx, "TestHelperRewriteUserCfg", root.Dir(), strconv.Itoa(rounds))
		// let it get through at least one write most of the time, then
		// kill it at a random moment
		time.Sleep(time.Duration(20+rng.IntN(300)) * time.Millisecond)
		if err := c.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill: %v", err)
		}
		_ = c.Wait()
		cancel()

		data, err := root.ReadFile(UserCfgFile)
		if err != nil {
			t.Fatalf("round %d: user.cfg after kill: %v", rounds, err)
		}
		m := versionRe.FindSubmatch(data)
		if m == nil {
			t.Fatalf("round %d: user.cfg after kill has no version (%d bytes)", rounds, len(data))
		}
		v, _ := strconv.Atoi(string(m[1]))
		if want := killVersion(v).Marshal(); !bytes.Equal(data, want) {
			t.Fatalf("round %d: user.cfg after kill is not complete version %d (%d bytes; want %d)", rounds, v, len(data), len(want))
		}
		if v < last {
			t.Fatalf("round %d: version went back from %d to %d", rounds, last, v)
		}
		last = v
	}
	// One more write, with a bound: the dead helpers' lock is released and
	// their temporary files do not matter.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := UpdateUserCfg(ctx, root, func(c *UserCfg) error { c.Users["after@pve"] = &User{Enable: true}; return nil }); err != nil {
		t.Fatalf("write after the kills: %v", err)
	}
	stray, _ := filepath.Glob(filepath.Join(root.Dir(), ".user.cfg.tmp-*"))
	t.Logf("%d kills, last version %d, %d temporary files left by killed writers", rounds, last, len(stray))
	if last == 0 {
		t.Error("no helper completed a single write")
	}
}

func TestHelperRewriteUserCfg(t *testing.T) {
	if !isHelper() {
		t.Skip("only run as a helper process")
	}
	root, err := pvefs.Open(os.Getenv(envHelperRoot))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 1000 { // killed long before
		err := UpdateUserCfg(ctx, root, func(c *UserCfg) error {
			v := 0
			if u := c.Users["user0000@pve"]; u != nil {
				v, _ = strconv.Atoi(strings.TrimPrefix(u.Comment, "v"))
			}
			for id, u := range killVersion(v + 1).Users {
				c.Users[id] = u
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
