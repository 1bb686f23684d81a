package pickle

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJoblib scans files joblib.dump wrote (testdata/gen/scan_fixtures.py):
// the payload stored after the arrays is found at the offset of its
// opcode, which it can only be if every array's bytes were stepped over
// exactly; a bomb and a truncated array are refused with one-line errors.
func TestJoblib(t *testing.T) {
	dir := filepath.Join("..", "testdata", "malicious")
	b, err := os.ReadFile(filepath.Join(dir, "scan_joblib_payload_after_arrays.joblib"))
	if err != nil {
		t.Fatal(err)
	}
	rep := Scan(bytes.NewReader(b), int64(len(b)))
	if rep.Format != FormatJoblib || len(rep.Errors) > 0 || len(rep.Findings) == 0 {
		t.Fatalf("got format %q, findings %+v, errors %v; want joblib with findings", rep.Format, rep.Findings, rep.Errors)
	}
	for _, f := range rep.Findings {
		if f.Severity != SeverityCritical {
			t.Errorf("got %s %s, want CRITICAL", f.Severity, f.Global)
		}
		if want := map[string]byte{"STACK_GLOBAL": 0x93, "REDUCE": 'R'}[f.Op]; b[f.Offset] != want {
			t.Errorf("%s at offset %d: got byte %#x there, want %#x", f.Op, f.Offset, b[f.Offset], want)
		}
	}
	for _, c := range []struct{ file, want string }{
		{"scan_joblib_bz2_bomb.joblib", "decompression bomb"},
		{"scan_joblib_truncated_array.joblib", "ends inside an array"},
	} {
		b, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		rep := Scan(bytes.NewReader(b), int64(len(b)))
		if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].Error(), c.want) || strings.Contains(rep.Errors[0].Error(), "\n") {
			t.Errorf("%s: got errors %v, want one line containing %q", c.file, rep.Errors, c.want)
		}
	}
}
