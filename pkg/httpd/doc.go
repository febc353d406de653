// Package httpd is the HTTP front shared by pveproxy, pvedaemon and
// spiceproxy: the one constructor for *http.Server (timeouts, header limits,
// per-request reqinfo), listeners that apply the host ACL at accept and that
// answer plain HTTP on the TLS port with a redirect, PVE's access log, the
// real-IP header, response compression, PVE's request limits and standard
// response headers, and a bounded graceful stop.
//
// A typical pveproxy stack, outermost first:
//
//	ln = httpd.ACLListener(tcp, policy.Allowed, accessLog.Denied)
//	ln = httpd.TLSSniffListener(ln, tlsConfig, log, httpd.WithRedirectLog(accessLog.Redirected))
//	h := httpd.Chain(api,
//		accessLog.Wrap,        // sees status and bytes after compression
//		httpd.RealIP(hdr, trusted),
//		httpd.StdHeaders,
//		httpd.Limits(httpd.MaxBody),
//		httpd.Compress(compressionOn),
//	)
//	srv := httpd.NewServer(httpd.ServerConfig{Handler: h, Log: log})
//	go srv.Serve(ln)
//
// The protocol is HTTP/1.1 only, like PVE's server.
package httpd
