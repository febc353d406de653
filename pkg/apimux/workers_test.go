package apimux

import (
	"sync"
	"testing"
	"time"
)

// TestWorkersReuse: calls one after another (each after the worker is idle
// again) run on one worker; calls at
// once each run (none waits for another); close ends the idle workers.
func TestWorkersReuse(t *testing.T) {
	var w workers
	done := make(chan struct{})
	for range 100 {
		w.run(func() { done <- struct{}{} })
		<-done
		waitIdle(t, &w, 1) // back in the idle list before the next call
	}
	if n := w.started.Load(); n != 1 {
		t.Errorf("%d workers started for 100 calls in a row; want 1", n)
	}

	// 20 calls that all block until every one has started: none may
	// wait for a worker.
	var started, release sync.WaitGroup
	started.Add(20)
	release.Add(1)
	for range 20 {
		w.run(func() { started.Done(); release.Wait() })
	}
	ok := make(chan struct{})
	go func() { started.Wait(); close(ok) }()
	select {
	case <-ok:
	case <-time.After(10 * time.Second):
		t.Fatal("calls at once did not all start")
	}
	release.Done()
	waitIdle(t, &w, 20)

	w.close()
	deadline := time.Now().Add(10 * time.Second)
	for w.live.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := w.live.Load(); n > 0 {
		t.Errorf("%d workers left after close", n)
	}
	// After close a call still runs (on a goroutine of its own).
	w.run(func() { done <- struct{}{} })
	<-done
}

func waitIdle(t *testing.T, w *workers, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		got := len(w.idle)
		w.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle workers; want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWorkerLeaveRace: a worker taken from the idle list at the moment
// its idle time ends still runs the call it is given.
func TestWorkerLeaveRace(t *testing.T) {
	var w workers
	ch := make(chan func(), 1)
	w.idle = append(w.idle, ch)
	if !w.leave(ch) || w.leave(ch) {
		t.Fatal("leave: want true once, then false")
	}
	ran := make(chan struct{})
	w.run(func() {}) // a worker that becomes idle
	waitIdle(t, &w, 1)
	w.run(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("call given to an idle worker did not run")
	}
	w.close()
}
