// Command speaker is Herald's speaker. See DESIGN.md for what it does.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/heraldlb/herald/internal/version"
)

func main() {
	fs := flag.NewFlagSet("speaker", flag.ContinueOnError)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *showVersion {
		fmt.Printf("herald-speaker %s\n", version.Version)
		return
	}
	fmt.Fprintln(os.Stderr, "herald-speaker: not implemented yet")
	os.Exit(1)
}
