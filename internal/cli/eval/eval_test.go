package eval

import (
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
)

func TestNewCmdEval(t *testing.T) {
	ios, _, _ := clitest.Streams()
	var got *Options
	cmd := NewCmdEval(ios, func(o *Options) error { got = o; return nil })
	cmd.SetArgs([]string{"--arch", "resnet18", "--weights", "w.pt", "--data", "d", "--image-size", "64", "--batch-size", "8", "--skip-bad", "--json"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Arch != "resnet18" || got.Weights != "w.pt" || got.Data != "d" || got.ImageSize != 64 || got.BatchSize != 8 || !got.SkipBad || !got.JSON {
		t.Errorf("options %+v do not match the flags", *got)
	}
}

func TestEvalUsageErrors(t *testing.T) {
	tests := []struct {
		o    Options
		want string
	}{
		{Options{Weights: "w", Data: "d", BatchSize: 1}, "--arch is required"},
		{Options{Arch: "resnet18", Data: "d", BatchSize: 1}, "--weights and --data"},
		{Options{Arch: "resnet18", Weights: "w", Data: "d"}, "--batch-size"},
		{Options{Arch: "resnet18", Weights: "missing.pt", Data: "d", BatchSize: 1}, "missing.pt"},
	}
	for _, tt := range tests {
		ios, _, _ := clitest.Streams()
		tt.o.IO = ios
		err := evalRun(&tt.o)
		if err == nil || !strings.Contains(err.Error(), tt.want) || cmdutil.ExitCode(err) != cmdutil.ExitInvalid {
			t.Errorf("%+v: got %v, want an exit-2 error with %q", tt.o, err, tt.want)
		}
	}
}
