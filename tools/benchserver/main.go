package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the parsed command line.
type options struct {
	listen              string
	certFile, keyFile   string
	ecdsaCert, ecdsaKey string
	bodyFile            string
	contentType         string
	headers             headerList
}

// headerList collects repeated -header "Name: value" flags.
type headerList []string

func (h *headerList) String() string { return strings.Join(*h, ", ") }

func (h *headerList) Set(v string) error {
	name, _, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(strings.TrimSpace(name), " \t") {
		return fmt.Errorf("header %q: want \"Name: value\"", v)
	}
	*h = append(*h, v)
	return nil
}

// run is main without the process exit, so tests can drive it.
func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseArgs(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "benchserver: %v\n", err)
		}
		return 2
	}
	srv, err := newServer(opts)
	if err != nil {
		fmt.Fprintf(stderr, "benchserver: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		fmt.Fprintf(stderr, "benchserver: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())

	select {
	case err := <-errc:
		fmt.Fprintf(stderr, "benchserver: serve: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "benchserver: shutdown: %v\n", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "benchserver: serve: %v\n", err)
		return 1
	}
	return 0
}

func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("benchserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "address to listen on")
	fs.StringVar(&o.certFile, "cert", "", "certificate chain (PEM), e.g. pve-ssl.pem")
	fs.StringVar(&o.keyFile, "key", "", "private key of -cert (PEM)")
	fs.StringVar(&o.ecdsaCert, "ecdsa-cert", "", "optional ECDSA certificate, served to clients that support it")
	fs.StringVar(&o.ecdsaKey, "ecdsa-key", "", "private key of -ecdsa-cert")
	fs.StringVar(&o.bodyFile, "body-file", "", "file whose content is the response body")
	fs.StringVar(&o.contentType, "content-type", "application/json;charset=UTF-8", "Content-Type of the response")
	fs.Var(&o.headers, "header", "extra response header \"Name: value\" (repeatable)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() != 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.certFile == "" || o.keyFile == "":
		return o, errors.New("-cert and -key are required")
	case o.bodyFile == "":
		return o, errors.New("-body-file is required")
	case (o.ecdsaCert == "") != (o.ecdsaKey == ""):
		return o, errors.New("-ecdsa-cert and -ecdsa-key go together")
	}
	return o, nil
}

// newServer loads the certificates and body named in o and returns an
// HTTP/1.1-only server for them; the caller starts it with ServeTLS(ln, "", "").
func newServer(o options) (*http.Server, error) {
	primary, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", o.certFile, err)
	}
	var ec *tls.Certificate
	if o.ecdsaCert != "" {
		c, err := tls.LoadX509KeyPair(o.ecdsaCert, o.ecdsaKey)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", o.ecdsaCert, err)
		}
		ec = &c
	}
	body, err := os.ReadFile(o.bodyFile)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	h := &handler{body: body, header: http.Header{}}
	h.header.Set("Content-Type", o.contentType)
	for _, line := range o.headers {
		name, value, _ := strings.Cut(line, ":")
		h.header.Add(textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name)), strings.TrimSpace(value))
	}
	h.header.Set("Content-Length", strconv.Itoa(len(body)))

	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// A non-nil empty map turns HTTP/2 off: ServeTLS then offers
		// only http/1.1 by ALPN.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: chooser(&primary, ec),
		},
	}, nil
}

// chooser returns a GetCertificate function that serves ec to clients that
// can use it and primary to the rest, as pveproxy does.
func chooser(primary, ec *tls.Certificate) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if ec != nil && hello.SupportsCertificate(ec) == nil {
			return ec, nil
		}
		return primary, nil
	}
}

// handler answers every request with the same headers and body.
type handler struct {
	body   []byte
	header http.Header // copied into every response; never modified after newServer
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	dst := w.Header()
	for k, v := range h.header {
		dst[k] = v
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(h.body)
	}
}
