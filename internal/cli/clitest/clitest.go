package clitest

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/spf13/cobra"
)

var update = flag.Bool("update", false, "rewrite golden files with the output the tests produce")

// pkgDir is the test's package directory, taken before any test changes
// the working directory.
var pkgDir, _ = os.Getwd()

// Streams returns IOStreams backed by buffers, with ErrOut not a terminal.
func Streams() (ios *cmdutil.IOStreams, stdout, stderr *bytes.Buffer) {
	stdout, stderr = new(bytes.Buffer), new(bytes.Buffer)
	return &cmdutil.IOStreams{In: new(bytes.Buffer), Out: stdout, ErrOut: stderr}, stdout, stderr
}

// Golden compares got with the file testdata/NAME.golden of the test's
// package, or writes got to it when the test runs with -update.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join(pkgDir, "testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// Root is the absolute path of the repository root, for fixtures under
// testdata/, found from the test's package directory.
func Root(t testing.TB) string {
	t.Helper()
	for d := pkgDir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatal("no go.mod above " + pkgDir)
		}
	}
}

// Parse builds a command with newCmd (a NewCmdX of internal/cli), runs it on
// args with a run function that only captures the options, and returns them.
// With wantErr it checks that the command refuses args instead, and returns
// nil; otherwise a refusal fails the test.
func Parse[O any](t testing.TB, newCmd func(*cmdutil.IOStreams, func(*O) error) *cobra.Command, args []string, wantErr bool) *O {
	t.Helper()
	ios, _, _ := Streams()
	var got *O
	cmd := newCmd(ios, func(o *O) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(ios.Out)
	cmd.SetErr(ios.ErrOut)
	err := cmd.Execute()
	switch {
	case wantErr && err == nil:
		t.Errorf("%q: got no error, want one", args)
		return nil
	case wantErr:
		return nil
	case err != nil:
		t.Fatalf("%q: %v", args, err)
	}
	return got
}
