package pickle

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Limits every bad input must stay within (issue 2: "under 5 s and under
// 1 GiB of memory each").
const (
	badInputTime  = 5 * time.Second
	badInputBytes = 1 << 30
)

type loadResult struct {
	f     *File
	err   error
	alloc uint64
}

// boundedOpen opens path in a goroutine and reports the result, the bytes
// allocated meanwhile, or a timeout.
func boundedOpen(t *testing.T, path string) loadResult {
	t.Helper()
	done := make(chan loadResult, 1)
	go func() {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f, err := Open(path)
		runtime.ReadMemStats(&after)
		done <- loadResult{f, err, after.TotalAlloc - before.TotalAlloc}
	}()
	timer := time.NewTimer(badInputTime)
	defer timer.Stop()
	select {
	case r := <-done:
		return r
	case <-timer.C:
		t.Fatalf("%s: still loading after %v", path, badInputTime)
	}
	return loadResult{}
}

// TestMalicious loads every file of testdata/malicious (made by
// testdata/gen/pickle_malicious.py) and checks that it is refused with the
// expected one-line error, within the time and memory limits.
func TestMalicious(t *testing.T) {
	dir := filepath.Join("..", "testdata", "malicious")
	b, err := os.ReadFile(filepath.Join(dir, "expect.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		File  string         `json:"file"`
		Error string         `json:"error"`
		Meta  map[string]int `json:"meta"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 100 {
		t.Fatalf("expect.json lists %d cases, want the whole corpus", len(cases))
	}
	for _, c := range cases {
		t.Run(c.File, func(t *testing.T) {
			r := boundedOpen(t, filepath.Join(dir, c.File))
			if r.alloc > badInputBytes {
				t.Errorf("allocated %d bytes, limit %d", r.alloc, badInputBytes)
			}
			if c.Error == "" {
				if r.err != nil {
					t.Fatalf("got error %v, want success", r.err)
				}
				defer r.f.Close()
				for path, want := range c.Meta {
					found := false
					for _, m := range r.f.Meta {
						if m.Path == path {
							found = true
							if m.Value != int64(want) {
								t.Errorf("%s: got %v, want %d", path, m.Value, want)
							}
						}
					}
					if !found {
						t.Errorf("no metadata %s in %v", path, r.f.Meta)
					}
				}
				return
			}
			if r.err == nil {
				r.f.Close()
				t.Fatalf("got success, want error containing %q", c.Error)
			}
			// The message names the file; the expected text must be found in
			// the rest (a file called div_unhashable_* is not a match for
			// "unhashable").
			msg := strings.ReplaceAll(r.err.Error(), filepath.Join(dir, c.File), "")
			if !strings.Contains(msg, c.Error) {
				t.Errorf("got error %q, want it to contain %q", msg, c.Error)
			}
			if !strings.HasPrefix(msg, "pickle: ") {
				t.Errorf("got error %q, want the prefix \"pickle: \"", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("got a multi-line error %q", msg)
			}
			for _, p := range []string{"pickle: ", "zip: ", "tar: "} {
				if strings.Count(msg, p) > 1 {
					t.Errorf("got error %q, which repeats %q", msg, p)
				}
			}
		})
	}
}

// TestDivergence loads every file of testdata/malicious/divergence.json
// (made by testdata/gen/pickle_divergence.py, which records what CPython
// and torch read from each): the reader refuses it with the expected
// one-line error (or loads it, where torch does and nothing is ambiguous),
// within the time and memory limits, and Scan reports the expected
// findings.
func TestDivergence(t *testing.T) {
	dir := filepath.Join("..", "testdata", "malicious")
	b, err := os.ReadFile(filepath.Join(dir, "divergence.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		File  string     `json:"file"`
		Error string     `json:"error"`
		Scan  [][]string `json:"scan"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 30 {
		t.Fatalf("divergence.json lists %d cases, want the whole corpus", len(cases))
	}
	for _, c := range cases {
		t.Run(c.File, func(t *testing.T) {
			path := filepath.Join(dir, c.File)
			r := boundedOpen(t, path)
			if r.alloc > badInputBytes {
				t.Errorf("allocated %d bytes, limit %d", r.alloc, badInputBytes)
			}
			switch {
			case c.Error == "" && r.err != nil:
				t.Errorf("got error %v, want success", r.err)
			case c.Error != "" && r.err == nil:
				t.Errorf("got success, want error containing %q", c.Error)
			case c.Error != "":
				// The message names the file; the expected text must be found in
				// the rest (a file called div_unhashable_* is not a match for
				// "unhashable").
				msg := strings.ReplaceAll(r.err.Error(), path, "")
				if !strings.Contains(msg, c.Error) || !strings.HasPrefix(msg, "pickle: ") || strings.Contains(msg, "\n") {
					t.Errorf("got error %q, want one line starting \"pickle: \" containing %q", msg, c.Error)
				}
			}
			if r.f != nil {
				r.f.Close()
			}
			rep := scanFile(t, path)
			for _, want := range c.Scan {
				found := false
				for _, f := range rep.Findings {
					if f.Severity.String() == want[0] && f.Global == want[1] {
						found = true
					}
				}
				if !found {
					t.Errorf("got findings %v, want %s %s", rep.Findings, want[0], want[1])
				}
			}
			if len(c.Scan) == 0 {
				for _, f := range rep.Findings {
					if f.Severity > SeverityLow {
						t.Errorf("got finding %s %s (%s), want none above LOW", f.Severity, f.Global, f.Description)
					}
				}
			}
		})
	}
}
