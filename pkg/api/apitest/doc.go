// Package apitest runs API calls in-process for the tests of the api2
// packages: a config root in a temporary directory, a real
// access.Authenticator whose pve-realm users share one password, and a
// Client that logs in and calls pvedaemon's api.Server through the whole
// request path (authentication, parameter checks, permissions, handlers).
// Only tests import it.
package apitest
