package cmdutil

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// ProgressDelay is how long an operation runs before its progress bar
// appears: short operations draw nothing.
const ProgressDelay = 500 * time.Millisecond

// progressInterval is the shortest time between two redraws.
const progressInterval = 100 * time.Millisecond

// Progress draws a one-line progress bar on ErrOut, only when ErrOut is a
// terminal and only once the operation has run for ProgressDelay. A nil
// *Progress draws nothing; its methods may be called from several
// goroutines.
type Progress struct {
	ios   *IOStreams
	label string
	now   func() time.Time
	start time.Time

	mu    sync.Mutex
	last  time.Time
	drawn bool
	done  int64 // the largest count reported: concurrent reporters may arrive out of order
}

// NewProgress returns a progress bar labelled label ("hashing",
// "writing out.safetensors"), or nil when ErrOut is not a terminal. now is
// the clock (time.Now when nil).
func NewProgress(ios *IOStreams, label string, now func() time.Time) *Progress {
	if !ios.ErrIsTerminal {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	return &Progress{ios: ios, label: label, now: now, start: now()}
}

// Update reports done of total bytes.
func (p *Progress) Update(done, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if done < p.done {
		return
	}
	p.done = done
	t := p.now()
	if t.Sub(p.start) < ProgressDelay || (p.drawn && t.Sub(p.last) < progressInterval && done < total) {
		return
	}
	p.last = t
	p.drawn = true
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	n := int(frac * width)
	bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
	if n < width {
		bar = bar[:n] + ">" + bar[n+1:]
	}
	fmt.Fprintf(p.ios.ErrOut, "\r\x1b[K%s [%s] %3.0f%% %s / %s", p.label, bar, frac*100, Bytes(done), Bytes(total))
}

// Done clears the bar, if one was drawn.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.ios.ErrOut, "\r\x1b[K")
		p.drawn = false
	}
}
