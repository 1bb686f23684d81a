package scan

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/pickle"
)

func TestNewCmdScan(t *testing.T) {
	tests := []struct {
		args    []string
		want    Options
		wantErr bool
	}{
		{args: []string{"a.pt"}, want: Options{Paths: []string{"a.pt"}, FailOn: "MEDIUM"}},
		{args: []string{"--json", "--fail-on", "critical", "a.pt", "dir"}, want: Options{Paths: []string{"a.pt", "dir"}, JSON: true, FailOn: "critical"}},
		{args: []string{"--sarif", "a.pt"}, want: Options{Paths: []string{"a.pt"}, SARIF: true, FailOn: "MEDIUM"}},
		{args: []string{}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got := clitest.Parse(t, NewCmdScan, tt.args, tt.wantErr)
			if got == nil {
				return
			}
			if strings.Join(got.Paths, ",") != strings.Join(tt.want.Paths, ",") || got.JSON != tt.want.JSON || got.SARIF != tt.want.SARIF || got.FailOn != tt.want.FailOn {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

// run runs scanRun and returns its exit code and output.
func run(t *testing.T, opts Options) (int, string) {
	t.Helper()
	ios, out, _ := clitest.Streams()
	opts.IO = ios
	if opts.FailOn == "" {
		opts.FailOn = "MEDIUM"
	}
	err := scanRun(&opts)
	return cmdutil.ExitCode(err), out.String()
}

// TestHonestFilesScanClean: every fixture torch (and NumPy, ONNX,
// safetensors' writers) made in testdata scans without a finding at or
// above MEDIUM and without an error: no false alarms. testdata/formats'
// bad_* files are deliberately broken and its .json descriptions are no
// model files: they are left out.
func TestHonestFilesScanClean(t *testing.T) {
	root := clitest.Root(t)
	var paths []string
	for _, d := range []string{"pickle", "models", "optim", "quickstart", "transfer", "nn", "npy", "onnx"} {
		paths = append(paths, filepath.Join(root, "testdata", d))
	}
	fmts, _ := filepath.Glob(filepath.Join(root, "testdata", "formats", "*"))
	for _, p := range fmts {
		if !strings.HasPrefix(filepath.Base(p), "bad_") && !strings.HasSuffix(p, ".json") {
			paths = append(paths, p)
		}
	}
	res := Scan(paths, pickle.SeverityMedium)
	pts := 0
	for _, f := range res.Files {
		if strings.HasSuffix(f.Path, ".pt") {
			pts++
		}
		for _, x := range f.Findings {
			if x.sev >= pickle.SeverityMedium {
				t.Errorf("%s: got %s finding %s (%s), want none", f.Path, x.Severity, x.Global, x.Description)
			}
		}
		for _, e := range f.Errors {
			t.Errorf("%s: got error %s, want none", f.Path, e)
		}
	}
	if pts < 50 {
		t.Errorf("scanned %d .pt files, want every fixture of testdata", pts)
	}
	if res.Summary.ExitCode != 0 {
		t.Errorf("got exit code %d, want 0", res.Summary.ExitCode)
	}
}

func mal(t *testing.T, name string) string {
	return filepath.Join(clitest.Root(t), "testdata", "malicious", name)
}

// TestExitCodes: a finding at or above --fail-on exits 1, even when the
// file also fails to parse; a file that cannot be read exits 2.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.pkl")
	// os.system named and called, then garbage: CPython has run it by then.
	if err := os.WriteFile(broken, []byte("cposix\nsystem\n(S'id'\ntR\xff\xff"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		paths  []string
		failOn string
		want   int
	}{
		{"critical payload", []string{mal(t, "payload_os_system_zip.pt")}, "", 1},
		{"critical with fail-on critical", []string{mal(t, "payload_eval_legacy_keys.pt")}, "CRITICAL", 1},
		{"high below fail-on critical", []string{mal(t, "reduce_plain_class.pkl")}, "CRITICAL", 0},
		{"payload then parse error", []string{broken}, "", 1},
		{"truncated zip", []string{mal(t, "trunc_zip_half.pt")}, "", 2},
		{"missing file", []string{filepath.Join(dir, "none.pt")}, "", 2},
		{"clean file", []string{filepath.Join(clitest.Root(t), "testdata", "pickle", "zip_state_dict.pt")}, "", 0},
		{"clean and unreadable", []string{filepath.Join(clitest.Root(t), "testdata", "pickle", "zip_state_dict.pt"), mal(t, "trunc_zip_half.pt")}, "", 2},
		{"LOW only below default", []string{filepath.Join(clitest.Root(t), "testdata", "pickle", "torchscript.pt")}, "", 0},
		{"LOW at fail-on LOW", []string{filepath.Join(clitest.Root(t), "testdata", "pickle", "torchscript.pt")}, "low", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, out := run(t, Options{Paths: tt.paths, FailOn: tt.failOn})
			if got != tt.want {
				t.Errorf("got exit %d, want %d; output:\n%s", got, tt.want, out)
			}
		})
	}
}

// TestJSON checks the --json schema on a payload that breaks after its
// dangerous call.
func TestJSON(t *testing.T) {
	_, out := run(t, Options{Paths: []string{mal(t, "payload_subprocess_legacy_object.pt")}, JSON: true})
	var res struct {
		Summary map[string]any `json:"summary"`
		Files   []struct {
			Path     string              `json:"path"`
			Format   string              `json:"format"`
			Findings []map[string]any    `json:"findings"`
			Errors   []string            `json:"errors"`
			Extra    map[string]struct{} `json:"-"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	if len(res.Files) != 1 || res.Files[0].Format != "legacy" {
		t.Fatalf("got files %+v, want one legacy file", res.Files)
	}
	found := false
	for _, f := range res.Files[0].Findings {
		for _, k := range []string{"severity", "entry", "offset", "global", "description"} {
			if _, ok := f[k]; !ok {
				t.Errorf("finding %v has no %q", f, k)
			}
		}
		if f["severity"] == "CRITICAL" && f["global"] == "subprocess.Popen" && f["entry"] == "pickle 4 of 5 (the object)" {
			found = true
		}
	}
	if !found {
		t.Errorf("got findings %v, want CRITICAL subprocess.Popen in pickle 4", res.Files[0].Findings)
	}
	if res.Summary["exit_code"] != float64(1) || res.Summary["critical"].(float64) < 1 {
		t.Errorf("got summary %v, want exit_code 1 and critical findings", res.Summary)
	}
}

// TestSARIF checks the SARIF log's shape: version 2.1.0, one result per
// finding with its rule, level and byte offset, unreadable files as
// notifications.
func TestSARIF(t *testing.T) {
	paths := []string{mal(t, "payload_exec_p4.pkl"), mal(t, "trunc_zip_half.pt")}
	_, out := run(t, Options{Paths: paths, SARIF: true})
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Rules []struct {
						ID string `json:"id"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				Level     string `json:"level"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region struct {
							ByteOffset *int64 `json:"byteOffset"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
			Invocations []struct {
				ExecutionSuccessful bool              `json:"executionSuccessful"`
				Notes               []json.RawMessage `json:"toolExecutionNotifications"`
			} `json:"invocations"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatalf("--sarif output is not JSON: %v", err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 {
		t.Fatalf("got version %q and %d runs, want 2.1.0 and 1", log.Version, len(log.Runs))
	}
	r := log.Runs[0]
	res := Scan(paths, pickle.SeverityMedium)
	if len(r.Results) != len(res.Files[0].Findings) {
		t.Errorf("got %d results, want %d (one per finding)", len(r.Results), len(res.Files[0].Findings))
	}
	rules := map[string]bool{}
	for _, ru := range r.Tool.Driver.Rules {
		rules[ru.ID] = true
	}
	for _, x := range r.Results {
		if !rules[x.RuleID] || x.Level != "error" || len(x.Locations) != 1 || x.Locations[0].PhysicalLocation.Region.ByteOffset == nil {
			t.Errorf("got result %+v, want a declared rule, level error and a byte offset", x)
		}
	}
	if len(r.Invocations) != 1 || r.Invocations[0].ExecutionSuccessful || len(r.Invocations[0].Notes) == 0 {
		t.Errorf("got invocations %+v, want one unsuccessful with the truncated file's error", r.Invocations)
	}
}

// TestText is the text report, against a golden file.
func TestText(t *testing.T) {
	root := clitest.Root(t)
	t.Chdir(root)
	_, out := run(t, Options{Paths: []string{"testdata/malicious/payload_getattr_chain_zip.pt", "testdata/pickle/torchscript.pt", "testdata/malicious/trunc_zip_tail.pt"}})
	clitest.Golden(t, "text", []byte(out))
	if !bytes.Contains([]byte(out), []byte("CRITICAL")) {
		t.Errorf("got\n%s\nwant a CRITICAL finding", out)
	}
}

// TestIndexBringsShards: a sharded checkpoint's index scans its shards.
func TestIndexBringsShards(t *testing.T) {
	dir := t.TempDir()
	payload, err := os.ReadFile(mal(t, "payload_os_system_zip.pt"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "pytorch_model-00001-of-00001.bin"), payload, 0o644)
	idx := filepath.Join(dir, "pytorch_model.bin.index.json")
	os.WriteFile(idx, []byte(`{"metadata": {}, "weight_map": {"w": "pytorch_model-00001-of-00001.bin"}}`), 0o644)
	res := Scan([]string{idx}, pickle.SeverityMedium)
	if len(res.Files) != 2 || res.Files[1].Format != "zip" || len(res.Files[1].Findings) == 0 || res.Summary.ExitCode != 1 {
		t.Errorf("got %+v, want the index and its shard with findings, exit 1", res)
	}
}

// TestCorpusNeverClean scans every file of the malformed and malicious
// corpora (testdata/gen/pickle_malicious.py, pickle_divergence.py): a file
// the reader refuses for a global exits 1; a torch file the reader refuses
// for any reason is never clean (exit 1 or 2); only bare pickles (which
// torch.load would not accept either) and files the reader loads exit 0.
func TestCorpusNeverClean(t *testing.T) {
	dir := filepath.Join(clitest.Root(t), "testdata", "malicious")
	var cases []struct {
		File  string `json:"file"`
		Error string `json:"error"`
	}
	for _, name := range []string{"expect.json", "divergence.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var cs []struct {
			File  string `json:"file"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(b, &cs); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, cs...)
	}
	if len(cases) < 160 {
		t.Fatalf("got %d corpus cases, want both corpora", len(cases))
	}
	for _, c := range cases {
		t.Run(c.File, func(t *testing.T) {
			res := Scan([]string{filepath.Join(dir, c.File)}, pickle.SeverityMedium)
			code := res.Summary.ExitCode
			f := res.Files[0]
			switch {
			case strings.HasPrefix(c.Error, "forbidden global") && code != 1:
				t.Errorf("got exit %d (%+v), want 1 for %s", code, f, c.Error)
			case c.Error != "" && code == 0 && f.Format != pickle.FormatPickle:
				t.Errorf("got exit 0 for a %s file the reader refuses (%s)", f.Format, c.Error)
			case c.Error == "" && code != 0:
				t.Errorf("got exit %d (%+v) for a file the reader loads, want 0", code, f)
			}
		})
	}
}

// TestScanFixtures checks the files of testdata/gen/scan_fixtures.py
// (NumPy object arrays, a pickle named .safetensors, joblib.dump's files,
// ONNX external data) against scan.json: the exit code, the findings, and
// for every file one-line errors, within 5 s and 1 GiB.
func TestScanFixtures(t *testing.T) {
	dir := filepath.Join(clitest.Root(t), "testdata", "malicious")
	b, err := os.ReadFile(filepath.Join(dir, "scan.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		File     string     `json:"file"`
		Exit     int        `json:"exit"`
		Findings [][]string `json:"findings"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.File, func(t *testing.T) {
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			start := time.Now()
			res := Scan([]string{filepath.Join(dir, c.File)}, pickle.SeverityMedium)
			took := time.Since(start)
			runtime.ReadMemStats(&m1)
			// The refusal bounds of issue 15; TotalAlloc counts every byte
			// allocated, so it bounds the peak from above.
			if took > 5*time.Second || m1.TotalAlloc-m0.TotalAlloc > 1<<30 {
				t.Errorf("took %v and allocated %d bytes, limits 5 s and 1 GiB", took, m1.TotalAlloc-m0.TotalAlloc)
			}
			for _, e := range res.Files[0].Errors {
				if strings.Contains(e, "\n") {
					t.Errorf("got a multi-line error %q", e)
				}
			}
			if res.Summary.ExitCode != c.Exit {
				t.Errorf("got exit %d (%+v), want %d", res.Summary.ExitCode, res.Files, c.Exit)
			}
			for _, w := range c.Findings {
				found := false
				for _, f := range res.Files[0].Findings {
					found = found || f.Severity == w[0] && f.Global == w[1]
				}
				if !found {
					t.Errorf("got findings %+v, want %s %s", res.Files[0].Findings, w[0], w[1])
				}
			}
		})
	}
}

// TestDirectoryFollowsFileLinks: links to files are scanned (Hugging Face's
// cache is made of them), an empty directory is an error.
func TestDirectoryFollowsFileLinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(mal(t, "payload_os_system_zip.pt"), filepath.Join(dir, "pytorch_model.bin")); err != nil {
		t.Skip(err)
	}
	res := Scan([]string{dir}, pickle.SeverityMedium)
	if res.Summary.Files != 1 || res.Summary.ExitCode != 1 {
		t.Errorf("got %+v, want the linked file scanned, exit 1", res.Summary)
	}
	code, _ := run(t, Options{Paths: []string{t.TempDir()}})
	if code != 2 {
		t.Errorf("empty directory: got exit %d, want 2", code)
	}
}

// TestNoFalseAlarmOnOtherFormats: a safetensors header of 73 bytes starts
// with 'I' (INT) and, pretty-printed, holds a newline: read as a pickle it
// is an anomalous INT line, which is not a finding for a safetensors file.
func TestNoFalseAlarmOnOtherFormats(t *testing.T) {
	h := `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}` + "\n}"
	h += strings.Repeat(" ", 73-len(h))
	b := append([]byte{73, 0, 0, 0, 0, 0, 0, 0}, h...)
	b = append(b, 0, 0, 0, 0)
	p := filepath.Join(t.TempDir(), "model.safetensors")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	res := Scan([]string{p}, pickle.SeverityMedium)
	if res.Summary.ExitCode != 0 || res.Files[0].Format != "safetensors" || len(res.Files[0].Findings) != 0 {
		t.Errorf("got %+v, want a clean safetensors file", res.Files)
	}
	// Text that starts like an INT opcode, in a directory: skipped.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "NOTES"), []byte("I think\nthis is text.\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "README"), []byte("config\nfiles\nare described here.\n"), 0o644)
	os.Link(p, filepath.Join(dir, "model.safetensors"))
	res = Scan([]string{dir}, pickle.SeverityMedium)
	if res.Summary.ExitCode != 0 || res.Summary.Skipped != 2 {
		t.Errorf("got %+v, want the text files skipped and exit 0", res.Summary)
	}
}
