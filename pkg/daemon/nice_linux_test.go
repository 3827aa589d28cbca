package daemon

import (
	"runtime"
	"syscall"
	"testing"
)

func TestLowerThreadPriority(t *testing.T) {
	done := make(chan [2]int)
	go func() {
		runtime.LockOSThread() // the thread ends with the goroutine
		tid := syscall.Gettid()
		err := lowerThreadPriority(writerNice)
		if tid == syscall.Getpid() {
			if err == nil {
				t.Error("the main thread's priority was lowered")
			}
			done <- [2]int{writerNice, 0}
			return
		}
		if err != nil {
			t.Error(err)
		}
		// The raw getpriority returns 20 - nice.
		own, _ := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
		proc, _ := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Getpid())
		done <- [2]int{20 - own, 20 - proc}
	}()
	got := <-done
	if got[0] != writerNice {
		t.Errorf("the thread's nice is %d, want %d", got[0], writerNice)
	}
	if got[1] == writerNice && writerNice != 0 {
		t.Errorf("the process's main thread got nice %d too", got[1])
	}
}
