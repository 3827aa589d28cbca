//go:build !linux

package daemon

// writerNice is the nice value of the store writer's thread.
const writerNice = 10

// lowerThreadPriority does nothing where threads have no nice value of
// their own.
func lowerThreadPriority(int) error { return nil }
