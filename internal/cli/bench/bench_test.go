package bench

import (
	"encoding/json"
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
