// Package cli is ckpt's command line: one sub-package per command, wired
// together here. Main runs a command line against injected streams and
// returns the exit code, so the whole CLI is testable with buffers.
package cli

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ckptkit/ckpt/internal/cli/bench"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/internal/cli/convert"
	"github.com/ckptkit/ckpt/internal/cli/diff"
	"github.com/ckptkit/ckpt/internal/cli/eval"
	"github.com/ckptkit/ckpt/internal/cli/finetune"
	"github.com/ckptkit/ckpt/internal/cli/inspect"
	"github.com/ckptkit/ckpt/internal/cli/predict"
	runcmd "github.com/ckptkit/ckpt/internal/cli/run"
	"github.com/ckptkit/ckpt/internal/cli/scan"
	"github.com/ckptkit/ckpt/internal/cli/verify"
)

// System returns the process's own streams.
func System() *cmdutil.IOStreams {
	return &cmdutil.IOStreams{
		In:            os.Stdin,
		Out:           os.Stdout,
		ErrOut:        os.Stderr,
		ErrIsTerminal: term.IsTerminal(int(os.Stderr.Fd())),
	}
}

// NewRootCmd returns the ckpt command with every sub-command.
func NewRootCmd(ios *cmdutil.IOStreams) *cobra.Command {
	root := &cobra.Command{
		Use:   "ckpt <command>",
		Short: "Read, convert, verify and run model checkpoints without Python",
		Long: `ckpt reads PyTorch checkpoints (every format torch has written), safetensors
and ONNX files without running any code they contain, converts between them
losslessly, and runs torchvision models natively in Go to prove the weights
compute what PyTorch computes.

Exit codes: 0 success, 1 a check found a difference,
2 usage error or unreadable, invalid or refused input,
3 internal error (a bug in ckpt: please report it).`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("ckpt {{.Version}}\n")
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	root.SetIn(ios.In)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return cmdutil.UsageError("%s (see '%s --help')", err, c.CommandPath())
	})
	root.CompletionOptions.HiddenDefaultCmd = true
	for _, add := range commands {
		root.AddCommand(add(ios))
	}
	return root
}

// commands lists the constructors of the sub-commands.
var commands = []func(*cmdutil.IOStreams) *cobra.Command{
	func(ios *cmdutil.IOStreams) *cobra.Command { return inspect.NewCmdInspect(ios, nil) },
	func(ios *cmdutil.IOStreams) *cobra.Command { return convert.NewCmdConvert(ios, nil) },
	func(ios *cmdutil.IOStreams) *cobra.Command { return diff.NewCmdDiff(ios, nil) },
	func(ios *cmdutil.IOStreams) *cobra.Command { return verify.NewCmdVerify(ios, nil) },
	func(ios *cmdutil.IOStreams) *cobra.Command { return runcmd.NewCmdRun(ios, nil) },
	func(ios *cmdutil.IOStreams) *cobra.Command { return predict.NewCmdPredict(ios, nil) },
	func(ios *cmdutil.IOStreams) *cobra.Command { return bench.NewCmdBench(ios, nil) },
	func(ios *cmdutil.IOStreams) *cobra.Command { return scan.NewCmdScan(ios, nil) },
	func(ios *cmdutil.IOStreams) *cobra.Command { return finetune.NewCmdFinetune(ios, nil) },
	func(ios *cmdutil.IOStreams) *cobra.Command { return eval.NewCmdEval(ios, nil) },
}

// Main runs ckpt with args and returns the process exit code. Errors are
// printed as one line on ErrOut. A panic is a bug in ckpt, never the
// input's fault (commands turn what bad input can cause into errors): it is
// reported as one "internal error" line, not a stack trace, and exits with
// cmdutil.ExitInternal.
func Main(args []string, ios *cmdutil.IOStreams) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(ios.ErrOut, "ckpt: internal error (a bug in ckpt, please report it): %s\n", oneLine(fmt.Sprint(r)))
			code = cmdutil.ExitInternal
		}
	}()
	root := NewRootCmd(ios)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return cmdutil.ExitOK
	}
	if !errors.Is(err, cmdutil.ErrDifference) {
		msg := err.Error()
		if strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "accepts ") ||
			strings.HasPrefix(msg, "requires ") || strings.HasPrefix(msg, "unknown flag") {
			err = cmdutil.UsageError("%s", msg)
		}
		fmt.Fprintf(ios.ErrOut, "ckpt: %s\n", oneLine(err.Error()))
	}
	return cmdutil.ExitCode(err)
}

// Version is ckpt's version, set at link time (-ldflags "-X
// github.com/ckptkit/ckpt/internal/cli.Version=v1.2.3"); when empty, the
// module version and VCS revision Go recorded in the binary are shown.
var Version string

// version returns the text of `ckpt --version` after "ckpt ".
func version() string {
	v := Version
	info, ok := debug.ReadBuildInfo()
	if v == "" {
		v = "(devel)"
		if ok && info.Main.Version != "" {
			v = info.Main.Version
		}
	}
	if !ok {
		return v
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		return fmt.Sprintf("%s (commit %s%s, %s)", v, rev, modified, info.GoVersion)
	}
	return fmt.Sprintf("%s (%s)", v, info.GoVersion)
}

// oneLine folds a multi-line message so every error is one line on stderr.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
