//go:build !race

package nn

// raceEnabled: see race_on_test.go.
const raceEnabled = false
