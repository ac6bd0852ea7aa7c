//go:build race

package host_test

// raceEnabled: the race detector is on, and sync.Pool drops items at random under it.
const raceEnabled = true
