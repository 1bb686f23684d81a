package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
)

// run runs ckpt with args against buffers.
func run(args ...string) (code int, stdout, stderr string) {
	ios, out, errOut := clitest.Streams()
	code = Main(args, ios)
	return code, out.String(), errOut.String()
}

// repeatedPrefix returns a package prefix s says twice ("zip: ... zip: "),
// or "".
func repeatedPrefix(s string) string {
	seen := map[string]bool{}
	parts := strings.Split(s, ": ")
	for _, p := range parts[:len(parts)-1] {
		if packageWord.MatchString(p) {
			if seen[p] {
				return p
			}
			seen[p] = true
		}
	}
	return ""
}

var packageWord = regexp.MustCompile(`^[a-z]{1,19}$`)

func TestRepeatedPrefix(t *testing.T) {
	for s, want := range map[string]string{
		"ckpt: a.pt: pickle: zip: not: zip: x\n":    "zip",
		"ckpt: a.pt: pickle: zip: entry: bad zip\n": "",
	} {
		if got := repeatedPrefix(s); got != want {
			t.Errorf("repeatedPrefix(%q) = %q, want %q", s, got, want)
		}
	}
}

// checkOneLine fails unless stderr is exactly one "ckpt: " line with no
// trace of a panic.
func checkOneLine(t *testing.T, stderr string) {
	t.Helper()
	if !strings.HasPrefix(stderr, "ckpt: ") || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("stderr = %q, want one line starting with \"ckpt: \"", stderr)
	}
	if m := repeatedPrefix(stderr); m != "" {
		t.Errorf("stderr = %q, repeats a prefix: %q", stderr, m)
	}
	for _, bad := range []string{"panic", "goroutine", "internal error"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr = %q, contains %q", stderr, bad)
		}
	}
}

func TestExitCodes(t *testing.T) {
	root := clitest.Root(t)
	pk := func(name string) string { return filepath.Join(root, "testdata", "pickle", name) }
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // a substring of the one stderr line, when code is 2
	}{
		{"inspect ok", []string{"inspect", pk("zip_state_dict.pt")}, 0, ""},
		{"diff equal across eras", []string{"diff", pk("zip_state_dict.pt"), pk("legacy_state_dict.pt")}, 0, ""},
		{"diff different names", []string{"diff", pk("checkpoint.pt"), pk("zip_state_dict.pt")}, 1, ""},
		{"diff json different", []string{"diff", "--json", pk("views.pt"), pk("dtypes.pt")}, 1, ""},
		{"missing file", []string{"inspect", "nonexistent.pt"}, 2, "nonexistent.pt: no such file or directory"},
		{"directory", []string{"inspect", root}, 2, "formats: a directory without model.safetensors"},
		{"not a checkpoint", []string{"inspect", filepath.Join(root, "go.mod")}, 2, "not a PyTorch, safetensors, ONNX or sharded-index file"},
		{"bad safetensors", []string{"inspect", filepath.Join(root, "testdata", "formats", "bad_trailing.safetensors")}, 2, "bad_trailing.safetensors: safetensors: "},
		{"diff bad b", []string{"diff", pk("zip_state_dict.pt"), filepath.Join(root, "testdata", "malicious", "payload_os_system_zip.pt")}, 2, `pickle: forbidden global "posix.system"`},
		{"unknown command", []string{"inspekt", "x"}, 2, "unknown command"},
		{"unknown flag", []string{"inspect", "--sha", pk("zip_state_dict.pt")}, 2, "unknown flag: --sha"},
		{"no args", []string{"inspect"}, 2, "accepts 1 arg(s), received 0"},
		{"too many args", []string{"diff", "a", "b", "c"}, 2, "accepts 2 arg(s), received 3"},
		{"bad atol", []string{"diff", "--atol", "x", "a", "b"}, 2, "invalid argument"},
		{"negative atol", []string{"diff", "--atol", "-1", pk("zip_state_dict.pt"), pk("zip_state_dict.pt")}, 2, "--atol -1"},
		{"bad dtype", []string{"convert", "--dtype", "int8", pk("zip_state_dict.pt"), filepath.Join(t.TempDir(), "o.pt")}, 2, `--dtype "int8"`},
		{"bad extension", []string{"convert", pk("zip_state_dict.pt"), filepath.Join(t.TempDir(), "o.txt")}, 2, "cannot tell the format"},
		{"help", []string{"--help"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			switch tt.code {
			case 2:
				checkOneLine(t, stderr)
				if !strings.Contains(stderr, tt.stderr) {
					t.Errorf("stderr = %q, want it to contain %q", stderr, tt.stderr)
				}
			default:
				if stderr != "" {
					t.Errorf("stderr = %q, want nothing", stderr)
				}
			}
		})
	}
}

// TestMalicious runs inspect on every file of the malicious corpus made by
// testdata/gen/pickle_malicious.py: each is refused with exit 2 and one
// line naming the file and the error its expect.json records, except the
// *_ok files, which are valid and list.
func TestMalicious(t *testing.T) {
	dir := filepath.Join(clitest.Root(t), "testdata", "malicious")
	var expect []struct {
		File, Error string
	}
	// divergence.json (testdata/gen/pickle_divergence.py): files torch and a
	// naive parser read differently.
	for _, name := range []string{"expect.json", "divergence.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var e []struct {
			File, Error string
		}
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatal(err)
		}
		expect = append(expect, e...)
	}
	if len(expect) < 160 {
		t.Fatalf("expect.json lists %d files, want the whole corpus", len(expect))
	}
	for _, e := range expect {
		t.Run(e.File, func(t *testing.T) {
			path := filepath.Join(dir, e.File)
			code, _, stderr := run("inspect", "--hash", path)
			if e.Error == "" {
				if code != 0 {
					t.Errorf("exit code %d, want 0 (stderr %q)", code, stderr)
				}
				return
			}
			if code != cmdutil.ExitInvalid {
				t.Fatalf("exit code %d, want %d", code, cmdutil.ExitInvalid)
			}
			checkOneLine(t, stderr)
			want := e.Error
			prefix := "ckpt: " + path + ": "
			if !strings.HasPrefix(stderr, prefix) {
				t.Errorf("stderr = %q, want prefix %q", stderr, prefix)
			}
			// The expected text is looked for after the file's name, which
			// may contain it (div_unhashable_*).
			msg := strings.TrimPrefix(stderr, prefix)
			// formats.Detect takes for pickles only files that start as
			// torch writes them: the bare protocol 0 pickles of the
			// divergence corpus are refused before the pickle reader.
			notPickle := strings.HasPrefix(e.File, "div_") && strings.HasSuffix(e.File, ".pkl") &&
				strings.Contains(msg, "formats: not a PyTorch, safetensors, ONNX")
			if !strings.Contains(msg, want) && !notPickle {
				t.Errorf("stderr = %q, want it to contain %q", stderr, want)
			}
		})
	}
}

// TestHelp checks that every command teaches: a Long text and examples
// that invoke it.
func TestHelp(t *testing.T) {
	ios, _, _ := clitest.Streams()
	root := NewRootCmd(ios)
	for _, name := range []string{"inspect", "convert", "diff", "scan"} {
		t.Run(name, func(t *testing.T) {
			cmd, _, err := root.Find([]string{name})
			if err != nil || cmd.Name() != name {
				t.Fatalf("command %q not registered (%v)", name, err)
			}
			if len(cmd.Long) < 200 {
				t.Errorf("Long is %d bytes, want a real explanation", len(cmd.Long))
			}
			if n := strings.Count(cmd.Example, "ckpt "+name); n < 2 {
				t.Errorf("Example has %d invocations of ckpt %s, want at least 2", n, name)
			}
			code, stdout, _ := run(name, "--help")
			if code != 0 || !strings.Contains(stdout, "Examples:") {
				t.Errorf("ckpt %s --help: exit %d, output without Examples:\n%s", name, code, stdout)
			}
		})
	}
}

// TestInternalError checks that a panic in a command (a bug in ckpt) is
// one "internal error" line with exit code 3, never 2 (bad input).
func TestInternalError(t *testing.T) {
	saved := commands
	defer func() { commands = saved }()
	commands = append(slices.Clone(saved), func(*cmdutil.IOStreams) *cobra.Command {
		return &cobra.Command{Use: "boom", RunE: func(*cobra.Command, []string) error {
			var m map[string]int
			m["x"] = 1 // a nil-map write: a Go runtime panic
			return nil
		}}
	})
	code, _, stderr := run("boom")
	if code != cmdutil.ExitInternal {
		t.Errorf("exit code %d, want %d", code, cmdutil.ExitInternal)
	}
	if !strings.HasPrefix(stderr, "ckpt: internal error") || strings.Count(stderr, "\n") != 1 || strings.Contains(stderr, "goroutine") {
		t.Errorf("stderr = %q, want one internal-error line", stderr)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := run("--version")
	if code != 0 || stderr != "" || !regexp.MustCompile(`^ckpt \S+ \(.*go1\.[0-9]+.*\)\n$`).MatchString(stdout) {
		t.Errorf("ckpt --version: exit %d, stdout %q, stderr %q; want \"ckpt VERSION (... goX.Y)\"", code, stdout, stderr)
	}
}
