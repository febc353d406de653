package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// account is the user a daemon switches to after Listen.
type account struct {
	name   string
	uid    int
	gid    int
	groups []int // supplementary groups, sorted, including gid
}

// lookupAccount resolves name with os/user (passwd and group files).
func lookupAccount(name string) (*account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("look up user %q: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("user %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("user %q: gid %q: %w", name, u.Gid, err)
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("user %q: groups: %w", name, err)
	}
	groups := []int{gid}
	for _, s := range ids {
		g, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("user %q: group id %q: %w", name, s, err)
		}
		groups = append(groups, g)
	}
	slices.Sort(groups)
	return &account{name: name, uid: uid, gid: gid, groups: slices.Compact(groups)}, nil
}

// dropPrivileges switches every thread of the process to a and then checks
// in /proc that it worked; an incomplete switch is an error the caller must
// treat as fatal.
//
// Go (since 1.16) applies syscall.Setgroups, Setresgid and Setresuid to all
// threads of the process (AllThreadsSyscall, or glibc's equivalent when cgo
// is linked). x/sys/unix.Setresgid and Setresuid delegate to those, but
// unix.Setgroups is a raw single-thread syscall, so syscall.Setgroups is used.
// The fs ids follow the effective ids; capabilities are cleared by the
// kernel when all uids become non-zero.
func dropPrivileges(a *account) error {
	if os.Geteuid() != 0 {
		if os.Getuid() == a.uid && os.Getgid() == a.gid {
			return nil // already running as the target user
		}
		return fmt.Errorf("switch to user %s: must be started as root", a.name)
	}
	if err := syscall.Setgroups(a.groups); err != nil {
		return fmt.Errorf("switch to user %s: setgroups: %w", a.name, err)
	}
	if err := unix.Setresgid(a.gid, a.gid, a.gid); err != nil {
		return fmt.Errorf("switch to user %s: setresgid: %w", a.name, err)
	}
	if err := unix.Setresuid(a.uid, a.uid, a.uid); err != nil {
		return fmt.Errorf("switch to user %s: setresuid: %w", a.name, err)
	}
	return verifyThreads(a)
}

// verifyThreads checks the credentials of every thread in /proc/self/task.
func verifyThreads(a *account) error {
	paths, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(paths) == 0 {
		return fmt.Errorf("switch to user %s: cannot list threads in /proc/self/task", a.name)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("switch to user %s: verify: %w", a.name, err)
		}
		if err := checkStatus(data, a); err != nil {
			return fmt.Errorf("switch to user %s: %s: %w", a.name, p, err)
		}
	}
	return nil
}

// checkStatus verifies a /proc/<pid>/status text: real, effective, saved
// and filesystem uid and gid are a's, the supplementary groups are a's, and
// (for a non-root target) no capability is permitted or effective.
func checkStatus(data []byte, a *account) error {
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	for _, c := range []struct {
		key  string
		want int
	}{{"Uid", a.uid}, {"Gid", a.gid}} {
		ids := strings.Fields(fields[c.key])
		if len(ids) != 4 {
			return fmt.Errorf("%s line %q: want 4 ids", c.key, fields[c.key])
		}
		for _, s := range ids {
			if s != strconv.Itoa(c.want) {
				return fmt.Errorf("%s is %q; want %d for real, effective, saved and fs", c.key, fields[c.key], c.want)
			}
		}
	}
	var groups []int
	for _, s := range strings.Fields(fields["Groups"]) {
		g, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("groups line %q: %w", fields["Groups"], err)
		}
		groups = append(groups, g)
	}
	slices.Sort(groups)
	if !slices.Equal(groups, a.groups) {
		return fmt.Errorf("groups are %v; want %v", groups, a.groups)
	}
	if a.uid != 0 {
		for _, k := range []string{"CapPrm", "CapEff"} {
			v, ok := fields[k]
			if !ok {
				return fmt.Errorf("no %s line", k)
			}
			if strings.Trim(v, "0") != "" {
				return fmt.Errorf("%s is %s; want none", k, v)
			}
		}
	}
	return nil
}
