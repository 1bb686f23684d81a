package convert

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
)

// onInterrupt makes SIGINT and SIGTERM during a write remove the temporary
// files of out (removeTemps) and exit 130, so that an interrupted convert
// leaves nothing behind: formats.Save cannot be cancelled, and its
// temporary files would otherwise stay. The returned function restores the
// default behaviour.
func onInterrupt(ios *cmdutil.IOStreams, out string, since time.Time) (stop func()) {
	ch := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-ch:
			removeTemps(out, since)
			clear := "" // the progress bar's line, on a terminal
			if ios.ErrIsTerminal {
				clear = "\r\x1b[K"
			}
			fmt.Fprintf(ios.ErrOut, "%sckpt: interrupted: %s not written\n", clear, out)
			os.Exit(130)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// removeTemps removes the temporary files formats.Save creates for out and
// its companions (shards, index, external data) in out's directory: named
// ".NAME.tmp-*" by os.CreateTemp, where NAME starts with out's stem, and
// modified at or after since.
func removeTemps(out string, since time.Time) []string {
	dir, base := filepath.Split(out)
	if dir == "" {
		dir = "."
	}
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	matches, _ := filepath.Glob(filepath.Join(dir, "."+globEscape(stem)+"*.tmp-*"))
	var removed []string
	for _, m := range matches {
		st, err := os.Lstat(m)
		if err != nil || !st.Mode().IsRegular() || st.ModTime().Before(since) {
			continue
		}
		if os.Remove(m) == nil {
			removed = append(removed, filepath.Base(m))
		}
	}
	return removed
}

// globEscape quotes the characters filepath.Match treats specially.
func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}
