//go:build !clients

package main

// setup does nothing in the plain yardstick.
func setup() {}
