package pvefs

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// Watcher reports changes of files in the config root. It watches the
// directories holding the files, so that atomic replacement by rename (how
// WriteFile works) is seen as well as removal and creation.
type Watcher struct {
	fw     *fsnotify.Watcher
	events chan string
	wg     sync.WaitGroup
}

// Watch starts reporting changes of the given names on the returned
// Watcher's Events channel. Each event is the name as given. Events may be
// coalesced; a receiver should re-read the file. Close stops the watcher.
func (r *Root) Watch(names ...string) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	byPath := map[string]string{}
	dirs := map[string]bool{}
	for _, n := range names {
		p, err := r.Path(n)
		if err != nil {
			fw.Close()
			return nil, err
		}
		byPath[p] = n
		dirs[filepath.Dir(p)] = true
	}
	for d := range dirs {
		if err := fw.Add(d); err != nil {
			fw.Close()
			return nil, fmt.Errorf("watch %s: %w", d, err)
		}
	}
	w := &Watcher{fw: fw, events: make(chan string, 16)}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer close(w.events)
		for {
			select {
			case ev, ok := <-fw.Events:
				if !ok {
					return
				}
				n, ok := byPath[ev.Name]
				if !ok || ev.Op == fsnotify.Chmod {
					continue
				}
				select {
				case w.events <- n:
				default: // a change of n is already queued or the reader is slow; coalesce
				}
			case _, ok := <-fw.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return w, nil
}

// Events returns the channel of changed names; it is closed by Close.
func (w *Watcher) Events() <-chan string { return w.events }

// Close stops the watcher and waits for its goroutine.
func (w *Watcher) Close() error {
	err := w.fw.Close()
	w.wg.Wait()
	return err
}

// WaitChange blocks until name changes or ctx is done; for tests and simple
// reload loops.
func (w *Watcher) WaitChange(ctx context.Context) (string, error) {
	select {
	case n, ok := <-w.events:
		if !ok {
			return "", fmt.Errorf("watch: closed")
		}
		return n, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
