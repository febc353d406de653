// Package reqinfo carries what is learned about one HTTP request while it is
// served: the TCP peer, the client address to report (the peer, or the value
// of a trusted real-IP header) and the authenticated user. The HTTP front
// creates an Info per request and puts it in the request context; the API
// layer fills in the user; the access log reads it all back when the response
// is done.
//
// All methods are safe for concurrent use and may be called on a nil *Info,
// so handlers served without the front (tests, internal calls) need no checks.
package reqinfo
