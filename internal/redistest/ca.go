package redistest

import (
	"testing"

	"github.com/kvrotator/kvrotator/internal/testca"
)

// DefaultCertHosts are the names a server certificate is valid for unless Options.CertHosts says
// otherwise: the loopback addresses the servers listen on, and localhost.
var DefaultCertHosts = testca.DefaultCertHosts

// CA is a throwaway certificate authority (internal/testca): servers started with it present a
// certificate it signed; clients trust it through CertFile. A test that needs a second, untrusted
// authority simply makes another CA.
type CA = testca.CA

// NewCA makes a CA for the test; its certificate file is removed when the test ends.
func NewCA(t testing.TB) *CA {
	t.Helper()
	return testca.New(t)
}

func newCA(dir string) (*CA, error) { return testca.NewIn(dir) }
