// Command ckpt reads, converts, verifies and runs model checkpoints without
// Python. See `ckpt --help`.
package main

import (
	"os"

	"github.com/ckptkit/ckpt/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.System()))
}
