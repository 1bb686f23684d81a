// Package clitest holds what the tests of ckpt's commands share: streams
// backed by buffers, golden files refreshed with
// `go test ./internal/cli/... -update`, the repository root for fixtures,
// and inputs generated from committed fixtures or at random for benchmarks.
// Only tests import it.
package clitest
