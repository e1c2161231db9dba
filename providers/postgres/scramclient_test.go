package postgres

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// The client side of RFC 7677 section 3's exchange: the client-final-message with the RFC's proof, the
// RFC's server signature accepted, any other refused.
func TestSCRAMClientMatchesRFC7677(t *testing.T) {
	const (
		serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
		clientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
		serverFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
	)
	// The RFC names the user in the client-first-message; PostgreSQL's clients leave it empty.
	sc := &scramClient{password: "pencil", gs2Header: "n,,", clientNonce: "rOprNGfwEbeRWgbNEkqO", firstBare: "n=user,r=rOprNGfwEbeRWgbNEkqO"}
	final, err := sc.clientFinal([]byte(serverFirst))
	if err != nil {
		t.Fatal(err)
	}
	if string(final) != clientFinal {
		t.Fatalf("client-final-message %q, want %q", final, clientFinal)
	}
	if err := sc.checkServerFinal([]byte(serverFinal)); err != nil {
		t.Fatalf("the RFC's server signature: %v", err)
	}
	for _, bad := range []string{"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=", "v=", "", "e=invalid-proof"} {
		if err := sc.checkServerFinal([]byte(bad)); err == nil {
			t.Errorf("server-final-message %q accepted", bad)
		}
	}
}

func TestSCRAMClientRefusesABadServerFirstMessage(t *testing.T) {
	for _, serverFirst := range []string{
		"",
		"r=someoneelsesnonce123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",    // does not extend the client's nonce
		"r=CLIENTNONCE,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",             // no server part
		"r=CLIENTNONCEserver,s=not base64!,i=4096",                    // salt
		"r=CLIENTNONCEserver,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",          // iterations
		"r=CLIENTNONCEserver,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=100000000",  // a CPU bomb
		"r=CLIENTNONCEserver,i=4096,s=W22ZaJ0SNY7soEsUEjb6gQ==",       // order
		"m=ext,r=CLIENTNONCEserver,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", // a mandatory extension
	} {
		sc := &scramClient{password: "pencil", gs2Header: "n,,", clientNonce: "CLIENTNONCE", firstBare: "n=,r=CLIENTNONCE"}
		if _, err := sc.clientFinal([]byte(serverFirst)); err == nil {
			t.Errorf("server-first-message %q accepted", serverFirst)
		}
	}
}

// The GS2 header and mechanism follow what the connection offers: no TLS, TLS without binding, and
// tls-server-end-point binding (its data in the c= attribute).
func TestSCRAMClientChannelBinding(t *testing.T) {
	for _, tc := range []struct {
		tlsUsed   bool
		cb        []byte
		mechanism string
		header    string
	}{
		{false, nil, scramMechanism, "n,,"},
		{true, nil, scramMechanism, "y,,"},
		{true, []byte{1, 2, 3}, scramPlusMechanism, "p=tls-server-end-point,,"},
	} {
		sc, err := newSCRAMClient("pencil", tc.tlsUsed, tc.cb)
		if err != nil {
			t.Fatal(err)
		}
		first := sc.clientFirst()
		if sc.mechanism() != tc.mechanism || !bytes.HasPrefix(first, []byte(tc.header+"n=,r=")) {
			t.Fatalf("tls %v binding %v: %s %q", tc.tlsUsed, tc.cb, sc.mechanism(), first)
		}
		final, err := sc.clientFinal([]byte("r=" + sc.clientNonce + "srv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=16"))
		if err != nil {
			t.Fatal(err)
		}
		want := "c=" + base64.StdEncoding.EncodeToString(append([]byte(tc.header), tc.cb...)) + ","
		if !strings.HasPrefix(string(final), want) {
			t.Fatalf("client-final-message %q, want it to start with %q", final, want)
		}
	}
}

// SASLprep as PostgreSQL applies it (src/common/saslprep.c): ASCII as it is, the mappings and NFKC
// otherwise, and the raw password whenever the prepared one would hold a prohibited or unassigned
// character or break the bidirectional rule. The real server agrees (TestNonASCIIPasswords).
func TestSASLprep(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"pencil", "pencil"},
		{"with space and \x01 control", "with space and \x01 control"}, // ASCII: untouched, controls too
		{"I\u00ADX", "IX"}, // RFC 4013 example: soft hyphen mapped to nothing
		{"user", "user"},
		{"\u00AA", "a"},                              // NFKC
		{"\u2168", "IX"},                             // NFKC
		{"a\u00A0b", "a b"},                          // non-ASCII space
		{"e\u0301t\u00E9", "\u00E9t\u00E9"},          // composed
		{"\ufb01sh", "fish"},                         // a compatibility ligature
		{"ab\u0007\u00e9", "ab\u0007\u00e9"},         // a prohibited control: the raw password
		{"\U0001F600x\u00e9", "\U0001F600x\u00e9"},   // unassigned in Unicode 3.2: raw
		{"\u0627\u0644\u0639", "\u0627\u0644\u0639"}, // right-to-left throughout: prepared (unchanged)
		{"\u0627a", "\u0627a"},                       // right-to-left and left-to-right: raw
		{"\u00AD", "\u00AD"},                         // nothing left: raw
		{"p\xffw\u00e9", "p\xffw\u00e9"},             // not UTF-8: raw
		{"\ufb01\u0627", "\ufb01\u0627"},             // ligature (L) with Arabic: raw, not "fi" + Arabic
	} {
		if got := saslprep(tc.in); got != tc.want {
			t.Errorf("saslprep(%+q) = %+q, want %+q", tc.in, got, tc.want)
		}
	}
}

func TestSASLprepTables(t *testing.T) {
	for name, table := range map[string][]rune{"B.1": saslprepMappedToNothing, "C.1.2": saslprepNonASCIISpace,
		"prohibited": saslprepProhibited, "A.1": saslprepUnassigned, "D.1": saslprepRandAL, "D.2": saslprepL} {
		if len(table) == 0 || len(table)%2 != 0 {
			t.Fatalf("%s: %d entries", name, len(table))
		}
		for i := 1; i < len(table); i++ {
			if table[i] < table[i-1] || (i%2 == 0 && table[i] == table[i-1]) {
				t.Fatalf("%s: not sorted pairs at %d", name, i)
			}
		}
	}
	for _, tc := range []struct {
		table []rune
		r     rune
		want  bool
	}{
		{saslprepMappedToNothing, 0x00AD, true}, {saslprepMappedToNothing, 0xFE00, true}, {saslprepMappedToNothing, 0xFE0F, true},
		{saslprepMappedToNothing, 'a', false}, {saslprepNonASCIISpace, 0x3000, true}, {saslprepNonASCIISpace, ' ', false},
		{saslprepProhibited, 0x0007, true}, {saslprepProhibited, 0xE000, true}, {saslprepProhibited, 'a', false},
		{saslprepUnassigned, 0x0221, true}, {saslprepUnassigned, 'a', false}, {saslprepRandAL, 0x05D0, true},
		{saslprepRandAL, 'a', false}, {saslprepL, 'a', true}, {saslprepL, '1', false},
	} {
		if got := inTable(tc.table, tc.r); got != tc.want {
			t.Errorf("inTable(%U) = %v, want %v", tc.r, got, tc.want)
		}
	}
}
