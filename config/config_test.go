package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	s, err := config.FromEnv(env(map[string]string{"KVROTATOR_VAULTS": "myvault"}))
	if err != nil {
		t.Fatal(err)
	}
	if s.NearExpiryLead != 30*24*time.Hour || s.DefaultValidity != 90*24*time.Hour || s.DefaultGrace != 24*time.Hour || s.SweepConcurrency != 8 {
		t.Fatalf("defaults: %+v", s)
	}
	if len(s.Vaults) != 1 || s.Vaults[0].Name != "myvault" || s.Vaults[0].URL != "https://myvault.vault.azure.net" {
		t.Fatalf("vaults: %+v", s.Vaults)
	}
	if s.KeepOldVersions || s.PauseFile != "" || s.ClockURL != "" || s.Paused || s.LogWorkspace != "" || s.MaxGrace != 168*time.Hour || s.UsageLookback != 168*time.Hour {
		t.Fatalf("timing defaults: %+v", s)
	}
	s, err = config.FromEnv(env(map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_DISABLE_OLD_VERSIONS": "false",
		"KVROTATOR_PAUSE_FILE": "/var/lib/kvrotator/PAUSE", "KVROTATOR_CLOCK_URL": "https://127.0.0.1:8443/_emulator/clock"}))
	if err != nil || !s.KeepOldVersions || s.PauseFile != "/var/lib/kvrotator/PAUSE" || s.ClockURL == "" {
		t.Fatalf("set: %+v, %v", s, err)
	}
}

func TestVaultForms(t *testing.T) {
	vs, err := config.ParseVaults(" a-vault , second=https://127.0.0.1:8444, https://third.localhost:8443/ ")
	if err != nil {
		t.Fatal(err)
	}
	want := []config.VaultSetting{
		{Name: "a-vault", URL: "https://a-vault.vault.azure.net"},
		{Name: "second", URL: "https://127.0.0.1:8444"},
		{Name: "third", URL: "https://third.localhost:8443"},
	}
	if len(vs) != len(want) {
		t.Fatalf("%+v", vs)
	}
	for i := range want {
		if vs[i] != want[i] {
			t.Errorf("%d: %+v, want %+v", i, vs[i], want[i])
		}
	}
}

func TestErrorsNameTheSetting(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "KVROTATOR_VAULTS is not set"},
		{map[string]string{"KVROTATOR_VAULTS": "bad_name"}, "KVROTATOR_VAULTS"},
		{map[string]string{"KVROTATOR_VAULTS": "https://127.0.0.1:8444"}, "name=URL"},
		{map[string]string{"KVROTATOR_VAULTS": "a-vault,a-vault"}, "twice"},
		{map[string]string{"KVROTATOR_VAULTS": "http://x.localhost"}, "KVROTATOR_VAULTS"},
		{map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_NEAR_EXPIRY_DAYS": "thirty"}, "KVROTATOR_NEAR_EXPIRY_DAYS"},
		{map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_DEFAULT_VALIDITY_DAYS": "20"}, "must exceed"},
		{map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_GRACE_HOURS": "-1"}, "KVROTATOR_GRACE_HOURS"},
		{map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_SWEEP_CONCURRENCY": "0"}, "KVROTATOR_SWEEP_CONCURRENCY"},
		{map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_LOG_LEVEL": "loud"}, "KVROTATOR_LOG_LEVEL"},
		{map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_DISABLE_OLD_VERSIONS": "maybe"}, "KVROTATOR_DISABLE_OLD_VERSIONS"},
		{map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_LOG_WORKSPACE_ID": "my-workspace"}, "want the workspace id, a GUID"},
		{map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_MAX_GRACE_HOURS": "12", "KVROTATOR_GRACE_HOURS": "24"}, "must not be less than KVROTATOR_GRACE_HOURS"},
		{map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_LOGS_ENDPOINT": "http://api.loganalytics.io/v1"}, "KVROTATOR_LOGS_ENDPOINT"},
		{map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_ARM_ENDPOINT": "management.azure.com"}, "KVROTATOR_ARM_ENDPOINT"},
		{map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_USAGE_LOOKBACK_HOURS": "0"}, "KVROTATOR_USAGE_LOOKBACK_HOURS"},
		{map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_PAUSE_FILE": "pause"}, "absolute path"},
		{map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_CLOCK_URL": "https://time.example.com/_emulator/clock"}, "loopback"},
		{map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_CLOCK_URL": "ftp://127.0.0.1/"}, "KVROTATOR_CLOCK_URL"},
	}
	for _, tc := range cases {
		_, err := config.FromEnv(env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to mention %q", tc.env, err, tc.want)
		}
	}
}
