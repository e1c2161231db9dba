package providers

import (
	"errors"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Azure is what providers that call Azure APIs (Resource Manager, Microsoft Graph) get from the
// application: the credential kvrotator itself runs with (its managed identity in Azure, a
// certificate service principal on-premises) and the cloud's endpoints. The application sets it once
// at start-up with SetAzure; providers read it when they run, never at init.
type Azure struct {
	Credential azcore.TokenCredential
	// Cloud selects the Resource Manager endpoint and audience and the Entra authority host
	// (default: the public cloud).
	Cloud cloud.Configuration
	// Transport, when set, carries the providers' Azure requests (tests point it at local servers).
	Transport policy.Transporter
}

var (
	azureMu  sync.RWMutex
	azureEnv *Azure
)

// SetAzure records the application's Azure credential and cloud for providers.
func SetAzure(a Azure) {
	azureMu.Lock()
	defer azureMu.Unlock()
	azureEnv = &a
}

// ErrNoAzure is returned by AzureEnv before SetAzure was called.
var ErrNoAzure = errors.New("providers: no Azure credential configured (the application calls providers.SetAzure at start-up)")

// AzureEnv returns what SetAzure recorded. The public cloud is filled in when Cloud is empty.
func AzureEnv() (Azure, error) {
	azureMu.RLock()
	defer azureMu.RUnlock()
	if azureEnv == nil || azureEnv.Credential == nil {
		return Azure{}, ErrNoAzure
	}
	a := *azureEnv
	if a.Cloud.ActiveDirectoryAuthorityHost == "" {
		a.Cloud = cloud.AzurePublic
	}
	return a, nil
}
