package random

import (
	"bytes"
	"crypto/rand"
	"io"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// cycleReader yields 0, 1, …, 255, 0, 1, … forever: every byte value equally often, in order.
type cycleReader struct{ next byte }

func (c *cycleReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.next
		c.next++
	}
	return len(p), nil
}

// countingReader counts calls to Read.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) { c.reads++; return c.r.Read(p) }

func seeded(seed byte) io.Reader { return mrand.NewChaCha8([32]byte{seed}) }

// TestGenerateIsExactlyUniform feeds every byte value equally often. Rejection sampling must turn each
// run of 0..255 into every character exactly 256/size times, for every alphabet size; a modulo without
// rejection would use the high bytes too and favour the first 256%size characters.
func TestGenerateIsExactlyUniform(t *testing.T) {
	const cycles = 4
	all := printableExcept("")
	for size := 2; size <= len(all); size++ {
		chars := all[:size]
		n := cycles * (256 - 256%size)
		v, err := generate(&cycleReader{}, chars, n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range size {
			if got, want := strings.Count(v, chars[i:i+1]), cycles*(256/size); got != want {
				t.Fatalf("size %d: %q appears %d times in %d characters, want %d", size, chars[i], got, n, want)
			}
		}
	}
}

func TestGenerateSkipsRejectedBytes(t *testing.T) {
	// 1000 bytes that all fall in the rejected range for 62 characters force several batches; then
	// 0, 1, 2, … map to the alphabet in order.
	r := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte{248, 255}, 500)), &cycleReader{})
	alnum := builtin[AlphabetAlnum]
	v, err := generate(r, alnum, 40)
	if err != nil {
		t.Fatal(err)
	}
	if want := alnum[:40]; v != want {
		t.Errorf("generate = %q, want %q", v, want)
	}
}

func TestGenerateReadsInBatches(t *testing.T) {
	for _, n := range []int{MinLength, DefaultLength, 1000, MaxLength} {
		for _, name := range []string{AlphabetAlnum, AlphabetHex, AlphabetASCII} {
			r := &countingReader{r: seeded(1)}
			v, err := generate(r, builtin[name], n)
			if err != nil {
				t.Fatal(err)
			}
			if len(v) != n {
				t.Fatalf("%s: %d characters, want %d", name, len(v), n)
			}
			if r.reads != 1 {
				t.Errorf("%s, %d characters: %d reads, want 1", name, n, r.reads)
			}
		}
	}
}

func TestGenerateCopesWithShortReads(t *testing.T) {
	v, err := generate(iotest.OneByteReader(seeded(2)), builtin[AlphabetAlnum], 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 100 {
		t.Errorf("%d characters, want 100", len(v))
	}
}

func TestGenerateReportsReadErrors(t *testing.T) {
	if _, err := generate(iotest.ErrReader(io.ErrUnexpectedEOF), builtin[AlphabetAlnum], 32); err == nil {
		t.Fatal("generate with a failing reader succeeded")
	}
	if _, err := generate(bytes.NewReader(make([]byte, 10)), builtin[AlphabetAlnum], 32); err == nil {
		t.Fatal("generate with a reader that runs dry succeeded")
	}
}

// counts draws n characters from alnum with gen and counts each.
func counts(t *testing.T, gen func(n int) string, n int) []int {
	t.Helper()
	alnum := builtin[AlphabetAlnum]
	c := make([]int, len(alnum))
	for _, ch := range []byte(gen(n)) {
		i := strings.IndexByte(alnum, ch)
		if i < 0 {
			t.Fatalf("character %q outside the alphabet", ch)
		}
		c[i]++
	}
	return c
}

func chiSquare(c []int, n int) float64 {
	exp := float64(n) / float64(len(c))
	var x float64
	for _, o := range c {
		d := float64(o) - exp
		x += d * d / exp
	}
	return x
}

// firstToLast compares the first 8 characters of alnum, which a modulo over bytes favours
// (256 % 62 = 8), with the last 8.
func firstToLast(c []int) float64 {
	var first, last int
	for i := range 8 {
		first += c[i]
		last += c[len(c)-1-i]
	}
	return float64(first) / float64(last)
}

const (
	statChars = 200_000
	// chiLimit is far above anything a uniform source produces: with 61 degrees of freedom the mean
	// is 61 and the standard deviation 11; P(χ² > 200) is below 1e-15. A modulo-biased generator scores
	// about 1300.
	chiLimit = 200
	// biasLimit: the first-8/last-8 ratio of a uniform source is 1 ± 0.01; modulo bias makes it 1.25.
	biasLimit = 1.1
)

func cryptoAlnum(t *testing.T) func(int) string {
	return func(n int) string {
		v, err := generate(rand.Reader, builtin[AlphabetAlnum], n)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// moduloAlnum is the mistake the provider avoids: byte % 62 with no rejection.
func moduloAlnum(seed byte) func(int) string {
	return func(n int) string {
		alnum := builtin[AlphabetAlnum]
		b := make([]byte, n)
		_, _ = seeded(seed).Read(b)
		for i := range b {
			b[i] = alnum[int(b[i])%len(alnum)]
		}
		return string(b)
	}
}

func TestUniformity(t *testing.T) {
	c := counts(t, cryptoAlnum(t), statChars)
	for i, n := range c {
		if n == 0 {
			t.Errorf("%q never appears in %d characters", builtin[AlphabetAlnum][i], statChars)
		}
	}
	if x := chiSquare(c, statChars); x > chiLimit {
		t.Errorf("chi-square %.1f over %d characters exceeds %d", x, statChars, chiLimit)
	}
}

func TestNoModuloBias(t *testing.T) {
	c := counts(t, cryptoAlnum(t), statChars)
	if r := firstToLast(c); r > biasLimit || r < 1/biasLimit {
		t.Errorf("first 8 characters / last 8 = %.3f, want within [%.3f, %.3f]", r, 1/biasLimit, biasLimit)
	}
}

// TestStatisticsDetectModuloBias shows the two checks above would catch the bug they guard against.
func TestStatisticsDetectModuloBias(t *testing.T) {
	c := counts(t, moduloAlnum(3), statChars)
	if x := chiSquare(c, statChars); x <= chiLimit {
		t.Errorf("chi-square of a modulo-biased generator is %.1f, not above %d", x, chiLimit)
	}
	if r := firstToLast(c); r <= biasLimit {
		t.Errorf("first/last ratio of a modulo-biased generator is %.3f, not above %.2f", r, biasLimit)
	}
}
