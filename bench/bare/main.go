// Command bare is the yardstick of the start-up benchmark: a Go binary that links the same Azure SDK
// modules as kvrotator (azcore, azidentity, azsecrets) and only answers GET / on
// 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT. See bench/startup and BENCHMARKS.md.
package main

import (
	"net/http"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azeventgrid"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// Referenced so that the linker keeps the SDK packages (and runs their init), as in kvrotator.
var (
	_ = azsecrets.NewClient
	_ = azblob.NewClient
	_ = azblob.NewClientFromConnectionString
	_ = azeventgrid.NewClient
	_ = azidentity.NewManagedIdentityCredential
	_ = azidentity.NewClientCertificateCredential
	_ = azidentity.NewDefaultAzureCredential
	_ azcore.TokenCredential
)

func main() {
	http.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"), nil); err != nil {
		os.Exit(1)
	}
}
