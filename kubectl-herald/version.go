package main

import (
	"context"
	"fmt"

	"github.com/heraldlb/herald/internal/version"
)

func runVersion(_ context.Context, _ []string, e env) int {
	if _, err := fmt.Fprintf(e.stdout, "kubectl-herald %s\n", version.Version); err != nil {
		e.stderrf("kubectl herald version: %v\n", err)
		return exitUsage
	}
	return exitOK
}
