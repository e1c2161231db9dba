package keyvault

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Credential modes for CredentialConfig.Mode.
const (
	ModeAuto            = "auto"             // managed identity if the host offers one, else certificate, else default
	ModeManagedIdentity = "managed-identity" // Azure managed identity (system- or user-assigned)
	ModeCertificate     = "certificate"      // service principal with a client certificate (on premises)
	ModeDefault         = "default"          // DefaultAzureCredential (development: Azure CLI, azd, …)
)

// CredentialConfig says how kvrotator authenticates to Key Vault. Client secrets are not supported
// (see the package documentation).
type CredentialConfig struct {
	// Mode is "auto" (default when empty), "managed-identity", "certificate" or "default".
	Mode string
	// ClientID is the user-assigned managed identity's client id, or the service principal's app id
	// (AZURE_CLIENT_ID).
	ClientID string
	// TenantID is the service principal's tenant (AZURE_TENANT_ID; certificate mode).
	TenantID string
	// CertificatePath is a PEM or PKCS#12 file holding the certificate and its private key
	// (AZURE_CLIENT_CERTIFICATE_PATH).
	CertificatePath string
	// CertificatePassword decrypts a PKCS#12 file (AZURE_CLIENT_CERTIFICATE_PASSWORD; optional).
	CertificatePassword string
	// AuthorityHost is the Entra authority (AZURE_AUTHORITY_HOST), default the public cloud's. A host
	// that is not a Microsoft login host (a sovereign or private cloud, the emulator) also disables
	// instance discovery, which would otherwise ask login.microsoftonline.com about it.
	AuthorityHost string
	// Transport carries the token requests (tests); nil = default.
	Transport policy.Transporter
}

// String describes the configuration without the certificate password.
func (c CredentialConfig) String() string {
	pw := ""
	if c.CertificatePassword != "" {
		pw = " password=[redacted]"
	}
	return fmt.Sprintf("{mode=%q clientID=%q tenantID=%q certificate=%q%s authorityHost=%q}",
		c.Mode, c.ClientID, c.TenantID, c.CertificatePath, pw, c.AuthorityHost)
}

// GoString is String, so that %#v does not print the password either.
func (c CredentialConfig) GoString() string { return "keyvault.CredentialConfig" + c.String() }

// CredentialConfigFromEnv reads the configuration from KVROTATOR_CREDENTIAL (the mode),
// AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_CERTIFICATE_PATH,
// AZURE_CLIENT_CERTIFICATE_PASSWORD and AZURE_AUTHORITY_HOST. Pass os.Getenv.
func CredentialConfigFromEnv(getenv func(string) string) CredentialConfig {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	return CredentialConfig{
		Mode:                get("KVROTATOR_CREDENTIAL"),
		ClientID:            get("AZURE_CLIENT_ID"),
		TenantID:            get("AZURE_TENANT_ID"),
		CertificatePath:     get("AZURE_CLIENT_CERTIFICATE_PATH"),
		CertificatePassword: getenv("AZURE_CLIENT_CERTIFICATE_PASSWORD"), // verbatim: spaces may be part of it
		AuthorityHost:       get("AZURE_AUTHORITY_HOST"),
	}
}

// NewCredential builds the credential c describes and names the choice for logs ("managed identity
// (system-assigned)", "managed identity (client id …)", "client certificate (tenant …, app …)",
// "DefaultAzureCredential"). In auto mode it picks managed identity when the host advertises one
// (IDENTITY_ENDPOINT on App Service and Functions, or MSI_ENDPOINT), else the client certificate when
// CertificatePath is set, else DefaultAzureCredential. It reads the certificate file but makes no
// network call; tokens are fetched on first use.
func NewCredential(c CredentialConfig) (azcore.TokenCredential, string, error) {
	mode, err := normalizeMode(c.Mode)
	if err != nil {
		return nil, "", err
	}
	if mode == ModeAuto {
		switch {
		case os.Getenv("IDENTITY_ENDPOINT") != "" || os.Getenv("MSI_ENDPOINT") != "":
			mode = ModeManagedIdentity
		case c.CertificatePath != "":
			mode = ModeCertificate
		default:
			mode = ModeDefault
		}
	}
	switch mode {
	case ModeManagedIdentity:
		return newManagedIdentity(c)
	case ModeCertificate:
		return newCertificate(c)
	default:
		return newDefault(c)
	}
}

// normalizeMode maps the accepted spellings of a mode to its constant.
func normalizeMode(m string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(m))
	n = strings.NewReplacer("_", "-", " ", "-").Replace(n)
	switch n {
	case "", ModeAuto:
		return ModeAuto, nil
	case ModeManagedIdentity, "managedidentity", "mi", "msi":
		return ModeManagedIdentity, nil
	case ModeCertificate, "cert", "client-certificate", "clientcertificate":
		return ModeCertificate, nil
	case ModeDefault, "defaultazurecredential", "dev":
		return ModeDefault, nil
	case "secret", "client-secret", "clientsecret":
		return "", fmt.Errorf("keyvault: credential mode %q is not supported: kvrotator authenticates with a managed identity or a certificate, never a client secret", m)
	}
	return "", fmt.Errorf("keyvault: unknown credential mode %q (KVROTATOR_CREDENTIAL): want auto, managed-identity, certificate or default", m)
}

func newManagedIdentity(c CredentialConfig) (azcore.TokenCredential, string, error) {
	opts := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: azcore.ClientOptions{Transport: c.Transport}}
	desc := "managed identity (system-assigned)"
	if c.ClientID != "" {
		opts.ID = azidentity.ClientID(c.ClientID)
		desc = "managed identity (client id " + c.ClientID + ")"
	}
	cred, err := azidentity.NewManagedIdentityCredential(opts)
	if err != nil {
		return nil, "", fmt.Errorf("keyvault: %s: %w", desc, err)
	}
	return cred, desc, nil
}

// tenantRE is Entra's tenant id alphabet (GUIDs and domain names).
var tenantRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-zA-Z.-]+$`) })

func newCertificate(c CredentialConfig) (azcore.TokenCredential, string, error) {
	switch {
	case c.CertificatePath == "":
		return nil, "", errors.New("keyvault: certificate credential: no certificate file (set AZURE_CLIENT_CERTIFICATE_PATH to a PEM or PKCS#12 file with the certificate and its private key)")
	case c.TenantID == "":
		return nil, "", errors.New("keyvault: certificate credential: no tenant (set AZURE_TENANT_ID)")
	case !tenantRE().MatchString(c.TenantID):
		return nil, "", fmt.Errorf("keyvault: certificate credential: invalid tenant id %q", c.TenantID)
	case c.ClientID == "":
		return nil, "", errors.New("keyvault: certificate credential: no application (client) id (set AZURE_CLIENT_ID)")
	}
	co, disableDiscovery, err := authorityOptions(c)
	if err != nil {
		return nil, "", err
	}
	certs, key, err := loadCertificate(c.CertificatePath, c.CertificatePassword)
	if err != nil {
		return nil, "", err
	}
	cred, err := azidentity.NewClientCertificateCredential(c.TenantID, c.ClientID, certs, key,
		&azidentity.ClientCertificateCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: disableDiscovery})
	if err != nil {
		return nil, "", fmt.Errorf("keyvault: certificate credential: %s", scrub(err.Error(), c.CertificatePassword))
	}
	sum := sha1.Sum(certs[0].Raw)
	desc := fmt.Sprintf("client certificate (tenant %s, app %s, thumbprint %s)", c.TenantID, c.ClientID, strings.ToUpper(hex.EncodeToString(sum[:])))
	return cred, desc, nil
}

func newDefault(c CredentialConfig) (azcore.TokenCredential, string, error) {
	for _, k := range []string{"AZURE_CLIENT_SECRET", "AZURE_PASSWORD"} {
		if os.Getenv(k) != "" {
			return nil, "", fmt.Errorf("keyvault: %s is set: DefaultAzureCredential would authenticate with it, and kvrotator never uses secrets or passwords to reach Key Vault; unset it and use a managed identity or a certificate (AZURE_CLIENT_CERTIFICATE_PATH)", k)
		}
	}
	co, disableDiscovery, err := authorityOptions(c)
	if err != nil {
		return nil, "", err
	}
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
		ClientOptions:            co,
		TenantID:                 c.TenantID,
		DisableInstanceDiscovery: disableDiscovery,
	})
	if err != nil {
		return nil, "", fmt.Errorf("keyvault: DefaultAzureCredential: %w", err)
	}
	return cred, "DefaultAzureCredential", nil
}

// microsoftLoginHosts are the Entra authority hosts of Azure's clouds (MSAL's trusted host list);
// any other host gets DisableInstanceDiscovery.
var microsoftLoginHosts = map[string]bool{
	"login.microsoftonline.com":        true,
	"login.microsoft.com":              true,
	"login.windows.net":                true,
	"sts.windows.net":                  true,
	"login.microsoftonline.us":         true,
	"login-us.microsoftonline.com":     true,
	"login.usgovcloudapi.net":          true,
	"login.chinacloudapi.cn":           true,
	"login.partner.microsoftonline.cn": true,
	"login.microsoftonline.de":         true,
	"login.sovcloud-identity.fr":       true,
	"login.sovcloud-identity.de":       true,
	"login.sovcloud-identity.sg":       true,
}

// IsMicrosoftLoginHost reports whether authorityHost (a URL or a bare host) is one of the Entra
// authority hosts of Azure's clouds, for which instance discovery stays on.
func IsMicrosoftLoginHost(authorityHost string) bool {
	h := authorityHost
	if strings.Contains(h, "://") {
		u, err := url.Parse(h)
		if err != nil {
			return false
		}
		if u.Port() != "" && u.Port() != "443" {
			return false
		}
		h = u.Hostname()
	}
	return microsoftLoginHosts[strings.ToLower(strings.TrimSuffix(h, "."))]
}

// authorityOptions are the client options of an Entra credential: the transport and, when
// AuthorityHost is set, that authority (which must be https) and whether to disable discovery.
func authorityOptions(c CredentialConfig) (azcore.ClientOptions, bool, error) {
	co := azcore.ClientOptions{Transport: c.Transport}
	if c.AuthorityHost == "" {
		return co, false, nil
	}
	u, err := url.Parse(c.AuthorityHost)
	if err != nil || u.Host == "" || u.Scheme == "" {
		return co, false, fmt.Errorf("keyvault: invalid authority host %q (AZURE_AUTHORITY_HOST): want https://login.microsoftonline.com/ or another https URL", c.AuthorityHost)
	}
	if !strings.EqualFold(u.Scheme, "https") {
		return co, false, fmt.Errorf("keyvault: authority host %q (AZURE_AUTHORITY_HOST) must use https", c.AuthorityHost)
	}
	co.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: c.AuthorityHost}
	return co, !IsMicrosoftLoginHost(c.AuthorityHost), nil
}

// loadCertificate reads a PEM or PKCS#12 file with the certificate and its RSA private key, with
// errors that name the file and the problem but never the password.
func loadCertificate(path, password string) ([]*x509.Certificate, crypto.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("keyvault: client certificate file %q does not exist (AZURE_CLIENT_CERTIFICATE_PATH)", path)
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, nil, fmt.Errorf("keyvault: client certificate file %q cannot be read: %v", path, err)
	}
	if len(data) == 0 {
		return nil, nil, fmt.Errorf("keyvault: client certificate file %q is empty", path)
	}
	pw := []byte(password)
	if b, _ := pem.Decode(data); b != nil {
		pw = nil // a PEM file: ParseCertificates would try PKCS#12 only, were a password given
	}
	certs, key, err := azidentity.ParseCertificates(data, pw)
	if err != nil {
		return nil, nil, fmt.Errorf("keyvault: client certificate file %q: %s", path, describeCertError(data, password, err))
	}
	leaf, err := signingCertificate(certs, key)
	if err != nil {
		return nil, nil, fmt.Errorf("keyvault: client certificate file %q: %v", path, err)
	}
	if now := time.Now(); now.After(leaf.NotAfter) {
		return nil, nil, fmt.Errorf("keyvault: client certificate file %q: certificate %q expired on %s", path, leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	// The certificate matching the key goes first: it is the one whose thumbprint Entra checks.
	ordered := []*x509.Certificate{leaf}
	for _, c := range certs {
		if c != leaf {
			ordered = append(ordered, c)
		}
	}
	return ordered, key, nil
}

// describeCertError explains why a certificate file did not parse.
func describeCertError(data []byte, password string, err error) string {
	var hasCert, hasKey, encrypted, ecKey, isPEM bool
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		isPEM = true
		switch {
		case b.Type == "CERTIFICATE":
			hasCert = true
		case b.Type == "EC PRIVATE KEY":
			ecKey = true
		case b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != "" && strings.HasSuffix(b.Type, "PRIVATE KEY"):
			encrypted = true
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			hasKey = true
		}
	}
	switch {
	case isPEM && ecKey && !hasKey:
		return "the private key is an EC key; client certificate credentials need an RSA key"
	case isPEM && encrypted && !hasKey:
		return "the PEM private key is encrypted, which is not supported: use an unencrypted PEM key or a PKCS#12 file with AZURE_CLIENT_CERTIFICATE_PASSWORD"
	case isPEM && !hasKey:
		return "no private key found: the file must contain the certificate and its private key"
	case isPEM && !hasCert:
		return "no certificate found: the file must contain the certificate and its private key"
	case isPEM:
		return "invalid PEM certificate or key: " + scrub(firstLine(err.Error()), password)
	}
	msg := scrub(firstLine(err.Error()), password)
	if password == "" {
		return "not a PEM file, and not a PKCS#12 file readable without a password (set AZURE_CLIENT_CERTIFICATE_PASSWORD if it has one): " + msg
	}
	return "not a PEM file, and not a PKCS#12 file readable with the given password (wrong AZURE_CLIENT_CERTIFICATE_PASSWORD?): " + msg
}

// signingCertificate is the certificate whose public key matches key, which must be RSA (Entra's
// client assertions are RS/PS256).
func signingCertificate(certs []*x509.Certificate, key crypto.PrivateKey) (*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, errors.New("no certificate found: the file must contain the certificate and its private key")
	}
	if key == nil {
		return nil, errors.New("no private key found: the file must contain the certificate and its private key")
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the private key is %s; client certificate credentials need an RSA key", keyKind(key))
	}
	for _, c := range certs {
		if c != nil && rk.PublicKey.Equal(c.PublicKey) {
			return c, nil
		}
	}
	return nil, errors.New("the private key does not belong to any certificate in the file")
}

func keyKind(key crypto.PrivateKey) string {
	switch key.(type) {
	case *ecdsa.PrivateKey:
		return "an ECDSA key"
	case ed25519.PrivateKey:
		return "an Ed25519 key"
	}
	return "not an RSA key"
}

// scrub removes the password from a message, should a library ever quote it.
func scrub(msg, password string) string {
	if password == "" {
		return msg
	}
	return strings.ReplaceAll(msg, password, "[redacted]")
}
