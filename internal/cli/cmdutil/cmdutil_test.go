package cmdutil

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/pickle"
)

func TestFileError(t *testing.T) {
	forbidden := &pickle.ForbiddenError{Global: "posix.system"}
	tests := []struct {
		name string
		path string
		err  error
		want string
	}{
		{"suffix", "evil.pt", fmt.Errorf("%w (in archive/data.pkl) (file evil.pt)", forbidden), `evil.pt: pickle: forbidden global "posix.system" (in archive/data.pkl)`},
		{"prefix", "x.safetensors", errors.New("safetensors: x.safetensors: header too large"), "x.safetensors: safetensors: header too large"},
		{"path error", "none.pt", fmt.Errorf("formats: %w", &fs.PathError{Op: "open", Path: "none.pt", Err: fs.ErrNotExist}), "none.pt: file does not exist"},
		{"repeated package", "a.pt", errors.New("pickle: pickle: zip: zip: not a valid zip file (file a.pt)"), "a.pt: pickle: zip: not a valid zip file"},
		{"in suffix", "m.onnx", errors.New(`onnx: offset 3: invalid field number 0 (in m.onnx)`), `m.onnx: onnx: offset 3: invalid field number 0`},
		{"repeated later", "b.pt", errors.New(`pickle: zip: entry "b/data.pkl": zip: checksum error (file b.pt)`), `b.pt: pickle: zip: entry "b/data.pkl": checksum error`},
		{"repeated words that are not prefixes", "c.pt", errors.New(`formats: tensor "x": bad dims: bad dims`), `c.pt: formats: tensor "x": bad dims: bad dims`},
		{"short path inside a word", "x", errors.New("formats: x: index: bad (file x)"), "x: formats: index: bad"},
		{"no mention", "a.pt", errors.New("formats: key \"x\" matches no tensor"), `a.pt: formats: key "x" matches no tensor`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := FileError(tt.path, tt.err)
			if got := err.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("errors.Is(FileError(err), err) = false, want true")
			}
			if ExitCode(err) != ExitInvalid {
				t.Errorf("exit code %d, want %d", ExitCode(err), ExitInvalid)
			}
			if again := FileError("other", err); again.Error() != err.Error() {
				t.Errorf("wrapping twice: got %q, want %q", again, err)
			}
		})
	}
	if FileError("x", nil) != nil {
		t.Errorf("FileError(x, nil) != nil")
	}
}

func TestHuman(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{Bytes(0), "0 B"},
		{Bytes(999), "999 B"},
		{Bytes(1000), "1.0 kB"},
		{Bytes(46_827_000), "46.8 MB"},
		{Bytes(999_999), "1.0 MB"},
		{Bytes(102_000_000_000), "102.0 GB"},
		{Count(62), "62"},
		{Count(1_642), "1.6 k"},
		{Count(11_689_512), "11.7 M"},
		{Count(999_999), "1.0 M"},
		{Count(7_000_000_000), "7.0 B"},
		{Grouped(0), "0"},
		{Grouped(999), "999"},
		{Grouped(1000), "1,000"},
		{Grouped(11_689_512), "11,689,512"},
		{Grouped(-1234), "-1,234"},
		{Shape(nil), "[]"},
		{Shape([]int64{64, 3, 7, 7}), "[64, 3, 7, 7]"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	v := map[string]any{"shape": []int64{4, 3, 3, 3}, "empty": []int64{}, "names": []string{"a", "b"}, "s": "[\n1]"}
	if err := WriteJSON(&b, v); err != nil {
		t.Fatal(err)
	}
	want := `{
  "empty": [],
  "names": [
    "a",
    "b"
  ],
  "s": "[\n1]",
  "shape": [4, 3, 3, 3]
}
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	if p := NewProgress(&IOStreams{ErrOut: &buf}, "x", nil); p != nil {
		t.Fatalf("NewProgress on a non-terminal = %v, want nil", p)
	}
	var nilBar *Progress
	nilBar.Update(1, 2) // a nil bar draws nothing and does not panic
	nilBar.Done()

	clock := time.Unix(0, 0)
	now := func() time.Time { return clock }
	p := NewProgress(&IOStreams{ErrOut: &buf, ErrIsTerminal: true}, "writing out.pt", now)
	p.Update(10, 100)
	if buf.Len() != 0 {
		t.Errorf("drew %q before ProgressDelay, want nothing", buf.String())
	}
	clock = clock.Add(ProgressDelay)
	p.Update(50_000_000, 100_000_000)
	if got := buf.String(); !strings.Contains(got, "writing out.pt [===============>              ]  50% 50.0 MB / 100.0 MB") {
		t.Errorf("got %q, want a half-full bar", got)
	}
	buf.Reset()
	p.Update(60_000_000, 100_000_000)
	if buf.Len() != 0 {
		t.Errorf("redrew %q within the redraw interval, want nothing", buf.String())
	}
	clock = clock.Add(time.Second)
	p.Update(40_000_000, 100_000_000)
	if buf.Len() != 0 {
		t.Errorf("drew %q for a count below one already shown, want nothing", buf.String())
	}
	p.Update(100_000_000, 100_000_000)
	if got := buf.String(); !strings.Contains(got, "100%") {
		t.Errorf("got %q, want the final 100%% drawn", got)
	}
	buf.Reset()
	p.Done()
	if got := buf.String(); got != "\r\x1b[K" {
		t.Errorf("Done wrote %q, want the line cleared", got)
	}
}

func TestPlural(t *testing.T) {
	for _, tt := range []struct {
		n    int
		noun string
		want string
	}{
		{0, "thread", "0 threads"}, {1, "thread", "1 thread"}, {2, "label", "2 labels"}, {1, "class", "1 class"},
		{10, "class", "10 classes"}, {3, "shape mismatch", "3 shape mismatches"}, {1, "key", "1 key"},
	} {
		if got := Plural(tt.n, tt.noun); got != tt.want {
			t.Errorf("Plural(%d, %q) = %q, want %q", tt.n, tt.noun, got, tt.want)
		}
	}
}
