package vmlist

import (
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pvenode/pvenode/pkg/pvefs"
)

// Cache keeps the guest list and reads it again only when one of the
// directories it comes from changed (a config created, renamed or removed
// changes its directory's modification time) or changed less than a second
// ago: a call costs a stat of the nodes directory and of each guest
// directory. It is safe for concurrent
// use; the returned map is shared and must not be modified.
type Cache struct {
	root *pvefs.Root

	mu      sync.Mutex
	stamp   map[string]time.Time
	list    map[int]Guest
	version uint64
}

// NewCache returns a Cache over root.
func NewCache(root *pvefs.Root) *Cache { return &Cache{root: root} }

// Read returns the guest list and a version that changes whenever the list
// is read again.
func (c *Cache) Read() (map[int]Guest, uint64, error) {
	stamp, err := c.stamps()
	if err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.list != nil && sameStamps(stamp, c.stamp) && !racy(stamp, time.Now()) {
		return c.list, c.version, nil
	}
	list, err := Read(c.root)
	if err != nil {
		return nil, 0, err
	}
	c.list, c.stamp = list, stamp
	c.version++
	return list, c.version, nil
}

// stamps returns the modification times of the directories Read lists.
func (c *Cache) stamps() (map[string]time.Time, error) {
	dir, err := c.root.Path("nodes")
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	fi, err := os.Stat(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return out, nil
		}
		return nil, err
	}
	out[dir] = fi.ModTime()
	nodes, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if !n.IsDir() || !validNodeName(n.Name()) {
			continue
		}
		for _, gd := range guestDirs {
			p := filepath.Join(dir, n.Name(), gd.dir)
			if fi, err := os.Stat(p); err == nil {
				out[p] = fi.ModTime()
			}
		}
	}
	return out, nil
}

// racyWindow is how recent a directory change must be for the cache not
// to trust its time stamp: file systems stamp with a coarse clock (a few
// milliseconds), so a second change in the same tick as the one read would
// look like no change (git's "racy" entries).
const racyWindow = time.Second

// racy reports a directory changed within racyWindow of now.
func racy(stamp map[string]time.Time, now time.Time) bool {
	for _, t := range stamp {
		if now.Sub(t) < racyWindow {
			return true
		}
	}
	return false
}

func sameStamps(a, b map[string]time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for k, t := range a {
		if u, ok := b[k]; !ok || !u.Equal(t) {
			return false
		}
	}
	return true
}
