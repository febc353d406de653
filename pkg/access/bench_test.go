package access

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/pvefs"
)

// acl10k builds a user.cfg with exactly 10,000 ACL entries (member, path,
// role) spread the way a large cluster spreads them: 2,000 users in two
// realms, 100 groups of about 40 members, 500 API tokens (half privilege
// separated), 3,000 guests, 50 pools of 60 guests and a storage each, 20
// storages, 8 nodes and 4 custom roles. Entries go 60% on /vms/<id>, 15% on
// /storage/<id>, 15% on /pool/<id>, the rest on /nodes/<node> and on "/",
// /vms and /storage; members are 50% users, 30% groups and 20% tokens; 70%
// propagate; 1% are NoAccess.
func acl10k(tb testing.TB) (data []byte, ids, paths []string) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	var users, tokens []string
	for i := range 2000 {
		realm := "pve"
		if i%4 == 3 {
			realm = "ldap-corp"
		}
		u := fmt.Sprintf("u%04d@%s", i, realm)
		users = append(users, u)
		fmt.Fprintf(&b, "user:%s:1:0:First%d:Last%d:u%d@example.com:::\n", u, i, i, i)
		if i < 500 {
			fmt.Fprintf(&b, "token:%s!ci:0:%d::\n", u, i%2)
			tokens = append(tokens, u+"!ci")
		}
	}
	var groups []string
	for g := range 100 {
		name := fmt.Sprintf("g%03d", g)
		groups = append(groups, name)
		var members []string
		for range 40 {
			members = append(members, users[rng.IntN(len(users))])
		}
		fmt.Fprintf(&b, "group:%s:%s::\n", name, strings.Join(members, ","))
	}
	var storages []string
	for s := range 20 {
		storages = append(storages, fmt.Sprintf("store-%02d", s))
	}
	var pools []string
	for p := range 50 {
		name := fmt.Sprintf("pool%02d", p)
		pools = append(pools, name)
		var vms []string
		for v := range 60 {
			vms = append(vms, fmt.Sprint(100+p*60+v))
		}
		fmt.Fprintf(&b, "pool:%s::%s:%s:\n", name, strings.Join(vms, ","), storages[p%len(storages)])
	}
	fmt.Fprintf(&b, "role:Starter:VM.Audit,VM.Console,VM.PowerMgmt:\nrole:Backup:VM.Audit,VM.Backup,Datastore.AllocateSpace:\n")
	fmt.Fprintf(&b, "role:Snap:VM.Snapshot,VM.Snapshot.Rollback:\nrole:NetAdmin:SDN.Allocate,SDN.Audit,Sys.Audit:\n")
	roles := []string{"PVEVMUser", "PVEVMAdmin", "PVEAuditor", "PVEDatastoreUser", "PVEPoolUser", "PVETemplateUser",
		"Starter", "Backup", "Snap", "NetAdmin"}
	type entry struct{ member, path, role string }
	seen := map[entry]bool{}
	for len(seen) < 10000 {
		var path string
		switch r := rng.IntN(100); {
		case r < 60:
			path = fmt.Sprintf("/vms/%d", 100+rng.IntN(3000))
		case r < 75:
			path = "/storage/" + storages[rng.IntN(len(storages))]
		case r < 90:
			path = "/pool/" + pools[rng.IntN(len(pools))]
		case r < 95:
			path = fmt.Sprintf("/nodes/node%d", rng.IntN(8))
		default:
			path = []string{"/", "/vms", "/storage"}[rng.IntN(3)]
		}
		var member string
		switch r := rng.IntN(10); {
		case r < 5:
			member = users[rng.IntN(len(users))]
		case r < 8:
			member = "@" + groups[rng.IntN(len(groups))]
		default:
			member = tokens[rng.IntN(len(tokens))]
		}
		role := roles[rng.IntN(len(roles))]
		if rng.IntN(100) == 0 {
			role = RoleNoAccess
		}
		e := entry{member, path, role}
		if seen[e] {
			continue
		}
		seen[e] = true
		prop := 0
		if rng.IntN(10) < 7 {
			prop = 1
		}
		fmt.Fprintf(&b, "acl:%d:%s:%s:%s:\n", prop, path, member, role)
	}
	ids = append(append(ids, users...), tokens...)
	for v := 100; v < 3100; v++ {
		paths = append(paths, fmt.Sprintf("/vms/%d", v))
	}
	for _, s := range storages {
		paths = append(paths, "/storage/"+s)
	}
	for _, p := range pools {
		paths = append(paths, "/pool/"+p)
	}
	for n := range 8 {
		paths = append(paths, fmt.Sprintf("/nodes/node%d", n))
	}
	return []byte(b.String()), ids, paths
}

func countACLEntries(c *UserCfg) int {
	n := 0
	c.WalkACL(func(_ string, node *ACLNode) {
		for _, m := range []map[string]map[string]bool{node.Users, node.Groups, node.Tokens} {
			for _, roles := range m {
				n += len(roles)
			}
		}
	})
	return n
}

type permQuery struct {
	authid, path string
	privs        []string
}

// permQueries returns n distinct (id, path) queries drawn from ids and
// paths, asking for one or two privileges fitting the path.
func permQueries(ids, paths []string, n int, seed uint64) []permQuery {
	rng := rand.New(rand.NewPCG(seed, 7))
	seen := map[[2]string]bool{}
	var qs []permQuery
	for len(qs) < n {
		id, p := ids[rng.IntN(len(ids))], paths[rng.IntN(len(paths))]
		if seen[[2]string{id, p}] {
			continue
		}
		seen[[2]string{id, p}] = true
		privs := []string{"VM.Audit"}
		switch {
		case strings.HasPrefix(p, "/vms/") && rng.IntN(2) == 0:
			privs = []string{"VM.PowerMgmt", "VM.Console"}
		case strings.HasPrefix(p, "/storage/"):
			privs = []string{"Datastore.AllocateSpace"}
		case strings.HasPrefix(p, "/pool/"):
			privs = []string{"Pool.Audit"}
		case strings.HasPrefix(p, "/nodes/"):
			privs = []string{"Sys.Audit"}
		}
		qs = append(qs, permQuery{id, p, privs})
	}
	return qs
}

// BenchmarkPermissionCheck10kACL measures one permission check against a
// user.cfg with 10,000 ACL entries: evaluated from scratch
// (UserCfg.CheckPrivs, what every check would cost without memoisation),
// through the Authenticator on a memo miss (first check of an id and path
// after user.cfg changed) and on a memo hit. ParseUserCfg shows what the
// first check after a change of user.cfg pays on top, once.
func BenchmarkPermissionCheck10kACL(b *testing.B) {
	data, ids, paths := acl10k(b)
	cfg, warns := ParseUserCfg("user.cfg", data)
	if len(warns) > 0 {
		b.Fatalf("warnings: %v", warns[:min(len(warns), 5)])
	}
	if n := countACLEntries(cfg); n != 10000 {
		b.Fatalf("%d ACL entries; want 10000", n)
	}
	hot := permQueries(ids, paths, 4096, 1)
	granted := 0
	for _, q := range hot {
		if cfg.CheckPrivs(q.authid, q.path, q.privs, false) {
			granted++
		}
	}
	b.Logf("%d bytes of user.cfg; %d of %d sample checks granted", len(data), granted, len(hot))

	b.Run("UserCfg.CheckPrivs", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			q := hot[i%len(hot)]
			cfg.CheckPrivs(q.authid, q.path, q.privs, false)
			i++
		}
	})

	root, err := pvefs.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	if err := root.WriteFile(UserCfgFile, data, 0o640); err != nil {
		b.Fatal(err)
	}
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	a, err := NewAuthenticator(Deps{FS: root, Clock: clock.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}

	// More distinct queries than the memo holds (permMemoMax), visited in
	// turn: every check misses.
	cold := permQueries(ids, paths, 4*permMemoMax, 2)
	b.Run("Authenticator.CheckPrivs/miss", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			q := cold[i%len(cold)]
			a.CheckPrivs(q.authid, q.path, q.privs, false)
			i++
		}
	})
	b.Run("Authenticator.CheckPrivs/memoised", func(b *testing.B) {
		for _, q := range hot {
			a.CheckPrivs(q.authid, q.path, q.privs, false)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			q := hot[i%len(hot)]
			a.CheckPrivs(q.authid, q.path, q.privs, false)
			i++
		}
	})
	b.Run("ParseUserCfg", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			ParseUserCfg("user.cfg", data)
		}
	})
}

// TestPermissionCheck10kACLAgrees checks, outside the benchmark, that the
// memoised path answers like the direct evaluation on the 10k-entry
// config.
func TestPermissionCheck10kACLAgrees(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 10k-entry config")
	}
	data, ids, paths := acl10k(t)
	cfg, _ := ParseUserCfg("user.cfg", data)
	root, err := pvefs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := root.WriteFile(UserCfgFile, data, 0o640); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	a, err := NewAuthenticator(Deps{FS: root, Clock: clock.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		for _, q := range permQueries(ids, paths, 2000, 3) {
			want := cfg.CheckPrivs(q.authid, q.path, q.privs, false)
			if got := a.CheckPrivs(q.authid, q.path, q.privs, false); got != want {
				t.Fatalf("round %d: Authenticator.CheckPrivs(%s, %s, %v) = %v; UserCfg says %v", round, q.authid, q.path, q.privs, got, want)
			}
		}
	}
}
