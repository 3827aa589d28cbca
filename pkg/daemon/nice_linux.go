package daemon

import (
	"errors"
	"syscall"
)

// writerNice is the nice value of the store writer's thread.
const writerNice = 10

// lowerThreadPriority sets the nice value of the calling thread (Linux
// keeps one per thread; raising it needs no privilege). The caller must be
// locked to its thread. The process's main thread is left alone: its nice
// value is the one tools show for the whole process, and the runtime
// never ends it.
func lowerThreadPriority(nice int) error {
	tid := syscall.Gettid()
	if tid == syscall.Getpid() {
		return errors.New("on the main thread")
	}
	return syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice)
}
