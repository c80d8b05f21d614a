//go:build tools

// The bench's real-world target: staticcheck (a Go type-checker and linter with many
// dependencies), pinned in go.mod and built from the Go module proxy.
package tools

import _ "honnef.co/go/tools/cmd/staticcheck"
