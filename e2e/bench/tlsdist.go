package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// tlsCA is a throwaway certificate authority for the inet_tls_dist row: made
// at run time, so no key material lives in the repository.
type tlsCA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	dir    string
	caFile string
}

func newTLSCA(dir string) (*tlsCA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "nodewire bench CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &tlsCA{cert: cert, key: key, dir: dir, caFile: filepath.Join(dir, "ca.pem")}
	return ca, writePEM(ca.caFile, "CERTIFICATE", der, 0o644)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// optFile issues a certificate for a host (its underlay address as IP and DNS
// subject alternative names, for server and client use: distribution
// connects both ways) and writes the -ssl_dist_optfile that uses it: the
// peer's certificate required and verified on both sides, and the TLS
// versions given (none: no versions option, OTP's default).
func (ca *tlsCA) optFile(host string, addr net.IP, versions []string) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: addr.String()},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{addr},
		DNSNames:     []string{addr.String()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return "", fmt.Errorf("certificate for %s: %w", host, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	certFile := filepath.Join(ca.dir, host+".pem")
	keyFile := filepath.Join(ca.dir, host+".key")
	if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
		return "", err
	}
	if err := writePEM(keyFile, "PRIVATE KEY", keyDER, 0o600); err != nil {
		return "", err
	}
	common := fmt.Sprintf(`{certfile, %q}, {keyfile, %q}, {cacertfile, %q}, {verify, verify_peer}`,
		certFile, keyFile, ca.caFile)
	if len(versions) > 0 {
		common += ", {versions, ['" + strings.Join(versions, "', '") + "']}"
	}
	opts := fmt.Sprintf("[{server, [%s, {fail_if_no_peer_cert, true}]},\n {client, [%s]}].\n", common, common)
	path := filepath.Join(ca.dir, host+".optfile")
	return path, os.WriteFile(path, []byte(opts), 0o644)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}
