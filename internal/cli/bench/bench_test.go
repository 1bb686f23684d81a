package bench

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
)

func TestBenchJSON(t *testing.T) {
	ios, stdout, _ := clitest.Streams()
	if err := benchRun(&Options{IO: ios, Arch: "squeezenet1_1", Batch: 1, Size: 64, Iters: 3, Warmup: 1, JSON: true}); err != nil {
		t.Fatal(err)
	}
	var r Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Arch != "squeezenet1_1" || r.Batch != 1 || len(r.TimesMS) != 3 || !(r.MinMS <= r.MedianMS && r.MedianMS <= r.MaxMS) || r.Threads < 1 {
		t.Errorf("inconsistent result %+v", r)
	}
}

func TestBenchList(t *testing.T) {
	ios, stdout, _ := clitest.Streams()
	if err := benchRun(&Options{IO: ios, List: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "resnet18\n") {
		t.Errorf("list lacks resnet18:\n%s", stdout)
	}
}

func TestBenchUsage(t *testing.T) {
	ios, _, _ := clitest.Streams()
	for _, o := range []*Options{{IO: ios}, {IO: ios, Arch: "resnet18", Iters: 0, Batch: 1}, {IO: ios, Arch: "nope", Iters: 1, Batch: 1}} {
		if err := benchRun(o); cmdutil.ExitCode(err) != cmdutil.ExitInvalid {
			t.Errorf("%+v: got %v, want a usage error", *o, err)
		}
	}
}

// TestBenchText checks the text line, its counts in the singular, and that
// the architecture is detected from --weights without --arch.
func TestBenchText(t *testing.T) {
	ios, stdout, stderr := clitest.Streams()
	w := filepath.Join(clitest.Root(t), "testdata", "quickstart", "squeezenet1_1.pt")
	if err := benchRun(&Options{IO: ios, Weights: w, Batch: 1, Size: 64, Iters: 1, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	line := stdout.String()
	if !strings.HasPrefix(line, "squeezenet1_1 batch 1, 64x64, 1 thread (") || !strings.HasSuffix(line, " over 1 run\n") {
		t.Errorf("got %q, want \"squeezenet1_1 batch 1, 64x64, 1 thread (...) ... over 1 run\"", line)
	}
	if !strings.Contains(stderr.String(), "--arch squeezenet1_1 detected") {
		t.Errorf("stderr %q does not say the architecture was detected", stderr)
	}
}

func TestBenchTrainJSON(t *testing.T) {
	for _, strategy := range []string{"full", "head"} {
		t.Run(strategy, func(t *testing.T) {
			ios, stdout, _ := clitest.Streams()
			o := &Options{IO: ios, Arch: "resnet18", Batch: 2, Size: 32, Iters: 2, Warmup: 1, JSON: true, Train: true, Strategy: strategy}
			if err := benchRun(o); err != nil {
				t.Fatal(err)
			}
			var r TrainResult
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			if r.Mode != "train" || r.Strategy != strategy || r.Batch != 2 || len(r.TimesMS) != 2 ||
				!(r.MinMS <= r.MedianMS && r.MedianMS <= r.MaxMS) || r.Threads < 1 || r.PeakRSSMiB <= 0 {
				t.Errorf("inconsistent result %+v", r)
			}
		})
	}
}

func TestBenchTrainUsage(t *testing.T) {
	ios, _, _ := clitest.Streams()
	o := &Options{IO: ios, Arch: "resnet18", Batch: 1, Iters: 1, Train: true, Strategy: "all"}
	if err := benchRun(o); cmdutil.ExitCode(err) != cmdutil.ExitInvalid {
		t.Errorf("--strategy all: got %v, want a usage error", err)
	}
}
