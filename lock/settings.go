package lock

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/kvrotator/kvrotator/internal/azstorage"
)

// The settings FromSettings reads: the Function App's own storage account, as the Functions host reads it.
const (
	// SettingStorage is the connection string setting ("UseDevelopmentStorage=true" or
	// "DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…[;BlobEndpoint=…]").
	SettingStorage = "AzureWebJobsStorage"
	// SettingBlobServiceURI is the identity-based blob endpoint (https://<account>.blob.core.windows.net).
	SettingBlobServiceURI = "AzureWebJobsStorage__blobServiceUri"
	// SettingAccountName is the identity-based account name (public cloud endpoint).
	SettingAccountName = "AzureWebJobsStorage__accountName"
	// SettingClientID selects a user-assigned managed identity for identity-based connections. FromSettings
	// does not read it: the caller builds the credential (see StorageClientID).
	SettingClientID = "AzureWebJobsStorage__clientId"
)

// Azurite's well-known development account (public; documented by Microsoft), which
// "UseDevelopmentStorage=true" stands for.
const (
	devAccountName = "devstoreaccount1"
	devAccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	devBlobPort    = "10000"
)

var accountNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]{3,24}$`) })

// FromSettings builds a BlobLocker for the Function App's own storage account from its settings, read
// with getenv (os.Getenv in production). It makes no network call.
//
//   - AzureWebJobsStorage set: a connection string. "UseDevelopmentStorage=true" means Azurite's
//     well-known devstoreaccount1 at http://127.0.0.1:10000 (or the host of DevelopmentStorageProxyUri,
//     port 10000); otherwise it is an account key or SAS connection string as the Azure SDKs understand it
//     (AccountName + AccountKey, optionally BlobEndpoint / EndpointSuffix / DefaultEndpointsProtocol).
//   - Otherwise identity-based: AzureWebJobsStorage__blobServiceUri (an https URL), or
//     AzureWebJobsStorage__accountName (→ https://<name>.blob.core.windows.net/). The form with a colon
//     instead of the double underscore is read too. Requests are authorised with cred, which the caller
//     builds — normally the managed identity credential the app already uses, with the client ID from
//     AzureWebJobsStorage__clientId when that is set (StorageClientID). cred nil is an error here.
//   - Nothing set: (nil, nil). The caller falls back to the in-process lock (rotation.NewMemoryLocker)
//     and logs a warning that rotations are then serialised only within one instance.
//
// transport, when not nil, carries the storage requests (tests). Errors never quote the connection
// string.
func FromSettings(getenv func(string) string, cred azcore.TokenCredential, transport policy.Transporter, o Options) (*BlobLocker, error) {
	var opts *azcore.ClientOptions
	if transport != nil {
		opts = &azcore.ClientOptions{Transport: transport}
	}

	if cs := strings.TrimSpace(getenv(SettingStorage)); cs != "" {
		cs, err := expandDevelopmentStorage(cs)
		if err != nil {
			return nil, err
		}
		client, err := azstorage.NewClientFromConnectionString(cs, opts)
		if err != nil {
			// The parse errors name what is missing; they never contain the string or its key.
			return nil, fmt.Errorf("%s: %w", SettingStorage, err)
		}
		return NewBlobLocker(client, o), nil
	}

	var serviceURL string
	if u := identitySetting(getenv, "blobServiceUri"); u != "" {
		p, err := url.Parse(u)
		if err != nil || p.Scheme != "https" || p.Host == "" || p.RawQuery != "" || p.User != nil {
			return nil, fmt.Errorf("%s: want an https URL like https://<account>.blob.core.windows.net, got %q",
				SettingBlobServiceURI, stripQuery(u))
		}
		serviceURL = u
	} else if name := identitySetting(getenv, "accountName"); name != "" {
		if !accountNameRE().MatchString(name) {
			return nil, fmt.Errorf("%s: %q is not a storage account name (3-24 lower-case letters and digits)",
				SettingAccountName, name)
		}
		serviceURL = "https://" + name + ".blob.core.windows.net/"
	} else {
		return nil, nil
	}
	if cred == nil {
		return nil, errors.New("identity-based AzureWebJobsStorage needs a token credential (managed identity)")
	}
	client, err := azstorage.NewClient(serviceURL, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("blob client for %s: %w", serviceURL, err)
	}
	return NewBlobLocker(client, o), nil
}

// StorageClientID returns the client ID of the user-assigned managed identity selected for the storage
// account (AzureWebJobsStorage__clientId), or "" for the system-assigned identity / the app's default.
func StorageClientID(getenv func(string) string) string {
	return identitySetting(getenv, "clientId")
}

// identitySetting reads AzureWebJobsStorage__<name>, or AzureWebJobsStorage:<name>.
func identitySetting(getenv func(string) string, name string) string {
	if v := strings.TrimSpace(getenv(SettingStorage + "__" + name)); v != "" {
		return v
	}
	return strings.TrimSpace(getenv(SettingStorage + ":" + name))
}

// expandDevelopmentStorage turns "UseDevelopmentStorage=true[;DevelopmentStorageProxyUri=…]" into the
// connection string of Azurite's development account; other connection strings are returned unchanged.
func expandDevelopmentStorage(cs string) (string, error) {
	use, proxy := false, ""
	for part := range strings.SplitSeq(cs, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case strings.EqualFold(k, "UseDevelopmentStorage"):
			use = strings.EqualFold(strings.TrimSpace(v), "true")
		case strings.EqualFold(k, "DevelopmentStorageProxyUri"):
			proxy = strings.TrimSpace(v)
		}
	}
	if !use {
		return cs, nil
	}
	scheme, host := "http", "127.0.0.1"
	if proxy != "" {
		p, err := url.Parse(proxy)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Hostname() == "" {
			return "", fmt.Errorf("%s: DevelopmentStorageProxyUri is not an http(s) URL", SettingStorage)
		}
		scheme, host = p.Scheme, p.Hostname()
	}
	endpoint := scheme + "://" + net.JoinHostPort(host, devBlobPort) + "/" + devAccountName
	return "DefaultEndpointsProtocol=" + scheme + ";AccountName=" + devAccountName + ";AccountKey=" + devAccountKey +
		";BlobEndpoint=" + endpoint, nil
}
