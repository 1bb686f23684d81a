package pickle

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// torchFiles lists every file of testdata that torch wrote (torch.save,
// torch.jit.save: the .pt files outside testdata/malicious).
func torchFiles(t *testing.T) []string {
	var out []string
	filepath.WalkDir(filepath.Join("..", "testdata"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "malicious" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".pt") {
			out = append(out, p)
		}
		return nil
	})
	if len(out) < 30 {
		t.Fatalf("found %d .pt fixtures, want the whole of testdata", len(out))
	}
	return out
}

func scanFile(t *testing.T, path string) *Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Scan(strings.NewReader(string(b)), int64(len(b)))
}

// TestScanTorchFixtures: no false alarms on honest files. Every file torch
// wrote in testdata scans without errors and without findings above LOW.
func TestScanTorchFixtures(t *testing.T) {
	for _, p := range torchFiles(t) {
		t.Run(filepath.Base(filepath.Dir(p))+"/"+filepath.Base(p), func(t *testing.T) {
			rep := scanFile(t, p)
			if len(rep.Errors) > 0 {
				t.Errorf("got errors %v, want none", rep.Errors)
			}
			for _, f := range rep.Findings {
				if f.Severity > SeverityLow {
					t.Errorf("got finding %s %s %q at %d (%s), want none above LOW", f.Severity, f.Global, f.Entry, f.Offset, f.Description)
				}
			}
		})
	}
}

// TestScanMalicious: every file of testdata/malicious that the reader
// refuses for a global is reported with a finding naming that global, at
// HIGH or above; files the reader loads scan clean.
func TestScanMalicious(t *testing.T) {
	dir := filepath.Join("..", "testdata", "malicious")
	b, err := os.ReadFile(filepath.Join(dir, "expect.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		File  string `json:"file"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.File, func(t *testing.T) {
			rep := scanFile(t, filepath.Join(dir, c.File))
			q, ok := strings.CutPrefix(c.Error, "forbidden global ")
			if !ok {
				return
			}
			want, err := strconv.QuotedPrefix(q)
			if err == nil {
				want, err = strconv.Unquote(want)
			}
			if err != nil {
				t.Fatalf("expect.json: %q is not a quoted global", c.Error)
			}
			for _, f := range rep.Findings {
				if f.Severity >= SeverityHigh && (f.Global == want || f.Global == resolvedName(want)) {
					return
				}
			}
			t.Errorf("got findings %v, want one of HIGH or above naming %s", rep.Findings, want)
		})
	}
}

// resolvedName is module.name as CPython resolves it at protocol 2.
func resolvedName(full string) string {
	i := strings.LastIndexByte(full, '.')
	if i < 0 {
		return full
	}
	m, n := resolve(full[:i], full[i+1:], 2)
	return m + "." + n
}

// TestScanDoesNotStop: a pickle that calls two dangerous globals and then
// breaks is reported with both, and its error.
func TestScanDoesNotStop(t *testing.T) {
	// GLOBAL posix system, MARK, string, TUPLE, REDUCE, then the same for
	// builtins.exec through STACK_GLOBAL fed from the memo, then garbage.
	p := "\x80\x04cposix\nsystem\n(X\x02\x00\x00\x00idtR" +
		"X\x08\x00\x00\x00builtins\x94X\x04\x00\x00\x00exec\x94h\x00h\x01\x93(X\x01\x00\x00\x00xtR\xff"
	fs, _, err := ScanPickle([]byte(p))
	if err == nil {
		t.Errorf("got no error, want the invalid opcode's")
	}
	got := map[string]Severity{}
	for _, f := range fs {
		got[f.Op+" "+f.Global] = f.Severity
	}
	for _, w := range []string{"GLOBAL posix.system", "REDUCE posix.system", "STACK_GLOBAL builtins.exec", "REDUCE builtins.exec"} {
		if got[w] != SeverityCritical {
			t.Errorf("%s: got severity %v, want CRITICAL (findings %v)", w, got[w], fs)
		}
	}
}

// TestScanBounded: a pickle of many dangerous globals lists MaxFindings of
// them and counts the rest, at the worst severity.
func TestScanBounded(t *testing.T) {
	p := []byte("\x80\x02")
	for range MaxFindings + 500 {
		p = append(p, "cposix\nsystem\n0"...)
	}
	p = append(p, 'N', '.')
	fs, _, err := ScanPickle(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != MaxFindings+1 {
		t.Fatalf("got %d findings, want %d", len(fs), MaxFindings+1)
	}
	last := fs[len(fs)-1]
	if last.Global != "more-findings" || last.Severity != SeverityCritical || !strings.Contains(last.Description, "500 more") {
		t.Errorf("got last finding %+v, want 500 more CRITICAL findings counted", last)
	}
}
