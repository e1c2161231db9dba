// Package infra is the home of kvrotator's deployment: the ARM template (azuredeploy.json) and its
// parameters example. It has no code. Its tests check the template and the other deployment files
// (scripts/package.sh and scripts/zipapp, .github/workflows/deploy.yml, the systemd units in deploy/)
// so that a change that weakens a protection — a role at a wider scope, a key in a setting, a looser
// event filter, a lost executable bit — fails `go test ./infra/...`.
package infra
