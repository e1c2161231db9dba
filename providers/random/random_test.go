package random

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/registry"
)

func request(params providers.Params) providers.Request {
	return providers.Request{Vault: "kv", Secret: "signing-key", Version: "v1", Params: params}
}

func TestRegistered(t *testing.T) {
	set, problems := registry.Build(registry.Env{})
	if problems[Name] != nil {
		t.Fatalf("building %s: %v", Name, problems[Name])
	}
	for _, name := range []string{"random", "Random", " RANDOM "} {
		p, ok := set.Lookup(name)
		if !ok {
			t.Fatalf("Lookup(%q) found nothing", name)
		}
		if _, ok := p.(*Provider); !ok {
			t.Fatalf("Lookup(%q) = %T, want *random.Provider", name, p)
		}
		if _, ok := p.(providers.Revoker); ok {
			t.Fatal("random has nothing to revoke and must not claim the Revoker capability")
		}
		if refs := p.References(providers.Params{"random-length": "32"}); len(refs) != 0 {
			t.Fatalf("random reaches nothing outside the secret, got references %v", refs)
		}
	}
	if !slices.Contains(registry.Names(), Name) {
		t.Errorf("registry.Names() = %v lacks %q", registry.Names(), Name)
	}
}

func TestShape(t *testing.T) {
	if s := New().Shape(); s != providers.ShapeGenerated {
		t.Errorf("Shape() = %q, want %q", s, providers.ShapeGenerated)
	}
}

func TestCreateLengths(t *testing.T) {
	tests := []struct {
		tag  string
		want int
	}{{"", DefaultLength}, {"16", 16}, {"17", 17}, {"32", 32}, {"255", 255}, {"1000", 1000}, {"4096", 4096}}
	for _, tt := range tests {
		t.Run("length="+tt.tag, func(t *testing.T) {
			params := providers.Params{}
			if tt.tag != "" {
				params[TagLength] = tt.tag
			}
			cred, err := New().Create(t.Context(), request(params))
			if err != nil {
				t.Fatal(err)
			}
			if cred.Value.Len() != tt.want {
				t.Errorf("value has %d characters, want %d", cred.Value.Len(), tt.want)
			}
		})
	}
}

// TestCreateAlphabets draws 4096 characters from each alphabet: every character must belong to it, and
// every character of it must appear (missing one of 91 in 4096 draws has probability below 1e-17).
func TestCreateAlphabets(t *testing.T) {
	tests := []struct{ tag, chars string }{
		{"", builtin[AlphabetAlnum]},
		{"alnum", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"},
		{"hex", "0123456789abcdef"},
		{"base64url", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"},
		{"ascii", "!#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz{|}~"},
		{"custom:01", "01"},
		{"custom:Ab", "Ab"},
		{"custom:!\"#\\`", "!\"#\\`"},
	}
	for _, tt := range tests {
		t.Run("alphabet="+tt.tag, func(t *testing.T) {
			params := providers.Params{TagLength: strconv.Itoa(MaxLength), TagAlphabet: tt.tag}
			cred, err := New().Create(t.Context(), request(params))
			if err != nil {
				t.Fatal(err)
			}
			v := cred.Value.Reveal()
			for i := range len(v) {
				if strings.IndexByte(tt.chars, v[i]) < 0 {
					t.Fatalf("character %d is outside the alphabet", i)
				}
			}
			for i := range len(tt.chars) {
				if strings.IndexByte(v, tt.chars[i]) < 0 {
					t.Errorf("%q never appears", tt.chars[i])
				}
			}
		})
	}
}

func TestCreateReturnsNoCredentialID(t *testing.T) {
	req := request(nil)
	req.CredentialID = "slot-a"
	cred, err := New().Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if cred.CredentialID != "" || cred.ExpiresAt != nil {
		t.Errorf("Create = CredentialID %q, ExpiresAt %v; want neither", cred.CredentialID, cred.ExpiresAt)
	}
}

func TestCreateGivesFreshValues(t *testing.T) {
	p := New()
	seen := map[string]bool{}
	for range 100 {
		cred, err := p.Create(t.Context(), request(providers.Params{TagLength: "16", TagAlphabet: "hex"}))
		if err != nil {
			t.Fatal(err)
		}
		if seen[cred.Value.Reveal()] {
			t.Fatal("Create returned the same value twice")
		}
		seen[cred.Value.Reveal()] = true
	}
}

func TestCreateNeverReturnsTheCurrentValue(t *testing.T) {
	// A seeded source makes the first draw predictable: make it the current value.
	first, err := (&Provider{rand: seeded(7)}).Create(t.Context(), request(nil))
	if err != nil {
		t.Fatal(err)
	}
	req := request(nil)
	req.Current = first.Value
	cred, err := (&Provider{rand: seeded(7)}).Create(t.Context(), req)
	if err != nil {
		t.Fatalf("Create after one repeat: %v", err)
	}
	if cred.Value.Reveal() == first.Value.Reveal() {
		t.Fatal("Create returned the current value")
	}
}

func TestCreateRefusesABrokenSource(t *testing.T) {
	zeros := &Provider{rand: zeroReader{}} // always draws "AAAA…"
	req := request(nil)
	req.Current = providers.NewValue(strings.Repeat("A", DefaultLength))
	cred, err := zeros.Create(t.Context(), req)
	if err == nil {
		t.Fatal("Create returned the current value instead of failing")
	}
	if !cred.Value.IsZero() {
		t.Error("Create returned a value with its error")
	}
	if !providers.IsPermanent(err) {
		t.Errorf("error %v is not permanent", err)
	}
	if strings.Contains(err.Error(), "AAAA") {
		t.Errorf("error %q contains the value", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestCreateErrors(t *testing.T) {
	t.Run("bad tags", func(t *testing.T) {
		_, err := New().Create(t.Context(), request(providers.Params{TagLength: "8"}))
		var ce *providers.ConfigError
		if !errors.As(err, &ce) || ce.Tag != TagLength {
			t.Errorf("Create with a bad length: %v, want a ConfigError for %s", err, TagLength)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := New().Create(ctx, request(nil)); !errors.Is(err, context.Canceled) {
			t.Errorf("Create with a cancelled context: %v, want context.Canceled", err)
		}
	})
	t.Run("random source fails", func(t *testing.T) {
		p := &Provider{rand: iotest.ErrReader(io.ErrClosedPipe)}
		_, err := p.Create(t.Context(), request(nil))
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("Create = %v, want it to wrap the reader's error", err)
		}
		if providers.IsPermanent(err) {
			t.Errorf("a read failure is transient, got permanent %v", err)
		}
	})
}

func TestVerify(t *testing.T) {
	hex32 := providers.Params{TagAlphabet: "hex"}
	secret := strings.Repeat("f00d", 8)
	tests := []struct {
		name   string
		params providers.Params
		value  string
		ok     bool
	}{
		{"matches", hex32, secret, true},
		{"too short", hex32, secret[:31], false},
		{"too long", hex32, secret + "0", false},
		{"empty", hex32, "", false},
		{"character outside the alphabet", hex32, secret[:31] + "g", false},
		{"upper-case hex", hex32, strings.ToUpper(secret), false},
		{"length from the tag", providers.Params{TagLength: "64", TagAlphabet: "hex"}, secret + secret, true},
		{"custom alphabet", providers.Params{TagLength: "16", TagAlphabet: "custom:ab"}, "abababababababab", true},
		{"custom alphabet, foreign character", providers.Params{TagLength: "16", TagAlphabet: "custom:ab"}, "abababababababac", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New().Verify(t.Context(), request(tt.params), providers.Credential{Value: providers.NewValue(tt.value)})
			if tt.ok {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Verify = nil, want an error")
			}
			if !providers.IsPermanent(err) {
				t.Errorf("error %v is not permanent: retrying cannot fix it", err)
			}
			if tt.value != "" && strings.Contains(err.Error(), tt.value[:16]) {
				t.Errorf("error %q contains the value", err)
			}
		})
	}
}

func TestVerifyAcceptsWhatCreateMade(t *testing.T) {
	p := New()
	for _, alpha := range []string{"", "alnum", "hex", "base64url", "ascii", "custom:xyz"} {
		req := request(providers.Params{TagLength: "20", TagAlphabet: alpha})
		cred, err := p.Create(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(t.Context(), req, cred); err != nil {
			t.Errorf("alphabet %q: Verify = %v", alpha, err)
		}
	}
}

func TestVerifyBadTags(t *testing.T) {
	err := New().Verify(t.Context(), request(providers.Params{"random-lenght": "32"}), providers.Credential{})
	var ce *providers.ConfigError
	if !errors.As(err, &ce) {
		t.Errorf("Verify with a bad tag = %v, want a ConfigError", err)
	}
}

func TestValueIsRedacted(t *testing.T) {
	cred, err := New().Create(t.Context(), request(nil))
	if err != nil {
		t.Fatal(err)
	}
	secret := cred.Value.Reveal()
	if got := fmt.Sprint(cred.Value); got != "[redacted]" {
		t.Errorf("fmt.Sprint(cred.Value) = %q, want [redacted]", got)
	}
	js, err := json.Marshal(cred)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("rotated", "value", cred.Value, "cred", cred)
	for _, out := range []string{
		fmt.Sprintf("%v", cred), fmt.Sprintf("%+v", cred), fmt.Sprintf("%#v", cred), fmt.Sprintf("%q %x", cred.Value, cred.Value),
		string(js), logged.String(),
	} {
		if strings.Contains(out, secret) {
			t.Errorf("the value appears in %q", out)
		}
	}
}

func BenchmarkCreate(b *testing.B) {
	for _, n := range []int{32, 4096} {
		b.Run("length="+strconv.Itoa(n), func(b *testing.B) {
			p := New()
			req := request(providers.Params{TagLength: strconv.Itoa(n)})
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Create(b.Context(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
