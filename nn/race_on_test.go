//go:build race

package nn

// raceEnabled is set under the race detector, whose sync.Pool drops items
// at random: tests counting allocations of pooled scratch skip there.
const raceEnabled = true
