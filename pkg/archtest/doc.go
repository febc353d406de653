// Package archtest holds the tests that enforce the architecture: the import
// direction between package levels, independent service packages, and a
// package comment on every package.
package archtest
