//go:build !hoptrace

package hoptrace

// Enabled reports whether this binary records marks (built with -tags
// hoptrace).
const Enabled = false

// Mark records that a packet or read of n bytes passed hop h now.
func Mark(h Hop, n int) {}
