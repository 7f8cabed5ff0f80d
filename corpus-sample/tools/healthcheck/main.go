// Command healthcheck runs synthetic checks against the public checkout
// endpoints from each region and exposes the results as Prometheus metrics.
//
// It is deployed as a small Deployment in eu1, us1 and ap1 and is what the
// "Synthetic checks" panel on the checkout-api dashboard shows. A failing
// check from all three regions at once pages as CheckoutSyntheticFailing.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

// CheckResult is the outcome of one synthetic probe.
type CheckResult struct {
	Target     string
	StatusCode int
	Latency    time.Duration
	// CertExpiry is the NotAfter of the leaf certificate, zero if no TLS.
	CertExpiry time.Time
	Err        error
}

// Healthy reports whether the probe succeeded and the certificate is not
// within minCertValidity of expiring.
func (r CheckResult) Healthy(minCertValidity time.Duration) bool {
	if r.Err != nil || r.StatusCode != http.StatusOK {
		return false
	}
	if !r.CertExpiry.IsZero() && time.Until(r.CertExpiry) < minCertValidity {
		return false
	}
	return true
}

// classify turns a transport error into a short, stable label for metrics,
// so that dashboards can tell connection resets from refused connections
// and from expired certificates.
func classify(err error) string {
	if err == nil {
		return "ok"
	}
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &certErr) && strings.Contains(err.Error(), "certificate has expired"):
		return "cert_expired"
	case errors.As(err, &certErr):
		return "cert_invalid"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "conn_refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "conn_reset"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		return "other"
	}
}

// probe performs one GET against target and records status, latency and the
// certificate expiry of the leaf certificate.
func probe(ctx context.Context, client *http.Client, target string) CheckResult {
	res := CheckResult{Target: target}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		res.Err = err
		return res
	}
	req.Header.Set("User-Agent", "acme-healthcheck/1.3")
	start := time.Now()
	resp, err := client.Do(req)
	res.Latency = time.Since(start)
	if err != nil {
		res.Err = err
		return res
	}
	defer resp.Body.Close()
	res.StatusCode = resp.StatusCode
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		res.CertExpiry = resp.TLS.PeerCertificates[0].NotAfter
	}
	return res
}

func main() {
	targets := flag.String("targets",
		"https://checkout.acme-payments.com/healthz,https://api.acme-payments.com/v2/ping",
		"comma-separated URLs to probe")
	interval := flag.Duration("interval", 15*time.Second, "time between probe rounds")
	timeout := flag.Duration("timeout", 5*time.Second, "per-probe timeout")
	minValidity := flag.Duration("min-cert-validity", 14*24*time.Hour,
		"report unhealthy when the certificate expires sooner than this")
	once := flag.Bool("once", false, "run one round, print results and exit (non-zero on failure)")
	flag.Parse()

	client := &http.Client{Timeout: *timeout}
	region := os.Getenv("ACME_REGION")

	for {
		failed := 0
		for _, t := range strings.Split(*targets, ",") {
			ctx, cancel := context.WithTimeout(context.Background(), *timeout)
			r := probe(ctx, client, strings.TrimSpace(t))
			cancel()
			if !r.Healthy(*minValidity) {
				failed++
			}
			log.Printf("region=%s target=%s status=%d latency_ms=%d result=%s cert_days_left=%.0f",
				region, r.Target, r.StatusCode, r.Latency.Milliseconds(), classify(r.Err),
				time.Until(r.CertExpiry).Hours()/24)
		}
		if *once {
			if failed > 0 {
				fmt.Fprintf(os.Stderr, "%d check(s) failed\n", failed)
				os.Exit(1)
			}
			return
		}
		time.Sleep(*interval)
	}
}
