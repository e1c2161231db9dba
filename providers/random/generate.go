package random

import (
	"fmt"
	"io"
	"strings"
)

// generate returns n characters drawn uniformly and independently from chars (2 to 256 distinct bytes),
// reading random bytes from r.
//
// A byte b maps to chars[b%len(chars)] only when b is below the largest multiple of len(chars) that fits
// in a byte; above it, the first characters would be favoured (for 62 characters, bytes 248..255 would
// give A-H a fifth more often), so those bytes are rejected. Bytes are read in batches sized to finish in
// one read in the common case.
func generate(r io.Reader, chars string, n int) (string, error) {
	size := len(chars)
	limit := 256 - 256%size // bytes in [0, limit) map uniformly
	var out strings.Builder
	out.Grow(n)
	buf := make([]byte, batch(n, limit))
	// The raw bytes determine the value: do not leave them in the heap longer than needed.
	defer clear(buf)
	for out.Len() < n {
		b := buf[:min(len(buf), batch(n-out.Len(), limit))]
		if _, err := io.ReadFull(r, b); err != nil {
			return "", fmt.Errorf("random: reading random bytes: %w", err)
		}
		for _, x := range b {
			if int(x) < limit {
				out.WriteByte(chars[int(x)%size])
				if out.Len() == n {
					break
				}
			}
		}
	}
	return out.String(), nil
}

// batch is how many random bytes to read for want more characters: the expected number for the
// acceptance rate limit/256, plus a margin that makes a second read rare.
func batch(want, limit int) int {
	return (want*256+limit-1)/limit + want/16 + 16
}
