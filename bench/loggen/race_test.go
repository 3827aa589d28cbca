//go:build race

package loggen

// raceEnabled makes the tests over millions of addresses smaller under the
// race detector, which slows them several times and finds nothing there.
const raceEnabled = true
