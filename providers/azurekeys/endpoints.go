package azurekeys

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// Endpoints are the DNS suffixes of data-plane endpoints in one cloud. The provider builds data-plane
// host names only from the resource's name and these suffixes, never from a tag: whoever may edit a
// secret's tags must not be able to send its next key to a host of their choosing.
type Endpoints struct {
	Storage string // blob endpoint: https://{account}.blob.{Storage}
	Cosmos  string // https://{account}.{Cosmos}:443/
	Redis   string // {cache}.{Redis}:6380
	Search  string // https://{service}.{Search}
}

// The clouds kvrotator knows, by the host of their Resource Manager endpoint.
var knownClouds = map[string]Endpoints{
	"management.azure.com": {
		Storage: "core.windows.net", Cosmos: "documents.azure.com", Redis: "redis.cache.windows.net", Search: "search.windows.net",
	},
	"management.usgovcloudapi.net": {
		Storage: "core.usgovcloudapi.net", Cosmos: "documents.azure.us", Redis: "redis.cache.usgovcloudapi.net", Search: "search.azure.us",
	},
	"management.chinacloudapi.cn": {
		Storage: "core.chinacloudapi.cn", Cosmos: "documents.azure.cn", Redis: "redis.cache.chinacloudapi.cn", Search: "search.azure.cn",
	},
}

// endpoints returns the data-plane suffixes for the cloud env points at: those given with
// WithEndpoints, else the known cloud whose Resource Manager endpoint env uses. An unknown cloud is a
// permanent error: only the application's configuration can fix it.
func (p *Provider) endpoints(env registry.Azure) (Endpoints, error) {
	if p.dns != nil {
		return *p.dns, nil
	}
	ep := cloud.AzurePublic.Services[cloud.ResourceManager].Endpoint
	if s, ok := env.Cloud.Services[cloud.ResourceManager]; ok && s.Endpoint != "" {
		ep = s.Endpoint
	}
	if u, err := url.Parse(ep); err == nil {
		if e, ok := knownClouds[strings.ToLower(u.Hostname())]; ok {
			return e, nil
		}
	}
	return Endpoints{}, providers.Permanent(fmt.Errorf("azure-keys: no data-plane endpoints known for the cloud whose Resource Manager endpoint is %s "+
		"(the application passes them with azurekeys.WithEndpoints); a secret can avoid them with %s=%s and %s=%s",
		ep, TagVerify, VerifyListKeys, TagFormat, FormatKey))
}

// host is the resource's data-plane host: its name (a DNS label, checked by parseConfig) and a suffix.
func host(c config, suffix string) string { return strings.ToLower(c.id.Name) + "." + suffix }

// connStringer builds the connection-string form of a key.
type connStringer func(c config, k key, dns func() (Endpoints, error)) (string, error)

// connStorage: the form the portal shows and every Storage SDK parses.
func connStorage(c config, k key, dns func() (Endpoints, error)) (string, error) {
	e, err := dns()
	if err != nil {
		return "", err
	}
	return "DefaultEndpointsProtocol=https;AccountName=" + strings.ToLower(c.id.Name) + ";AccountKey=" + k.Value + ";EndpointSuffix=" + e.Storage, nil
}

// connCosmos: the form the portal shows (PRIMARY CONNECTION STRING) and the Cosmos DB SDKs parse.
func connCosmos(c config, k key, dns func() (Endpoints, error)) (string, error) {
	e, err := dns()
	if err != nil {
		return "", err
	}
	return "AccountEndpoint=https://" + host(c, e.Cosmos) + ":443/;AccountKey=" + k.Value + ";", nil
}

// connRedis: the StackExchange.Redis form the portal shows, TLS on 6380.
func connRedis(c config, k key, dns func() (Endpoints, error)) (string, error) {
	e, err := dns()
	if err != nil {
		return "", err
	}
	return host(c, e.Redis) + ":6380,password=" + k.Value + ",ssl=True,abortConnect=False", nil
}

// connFromService: the connection string listKeys itself returns for the slot (Service Bus and Event
// Hubs rules: primaryConnectionString/secondaryConnectionString; App Configuration: connectionString).
func connFromService(_ config, k key, _ func() (Endpoints, error)) (string, error) {
	if k.Conn == "" {
		return "", errNoConn
	}
	return k.Conn, nil
}

// connField returns the value of name in a "k1=v1;k2=v2" connection string ("" if absent).
func connField(conn, name string) string {
	for _, part := range strings.Split(conn, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
