package main

import (
	"context"
	"fmt"

	"github.com/heraldlb/herald/internal/version"
)

func runVersion(_ context.Context, _ []string, e env) int {
	fmt.Fprintf(e.stdout, "kubectl-herald %s\n", version.Version)
	return exitOK
}
