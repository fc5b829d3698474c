package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// writeCerts makes a CA, a server certificate for 127.0.0.1 and a client
// certificate, writes them as PEM files and sets etcd's TLS flags.
func (e *Server) writeCerts() {
	e.t.Helper()
	caKey, caCert, caDER := e.issue(nil, nil, "nodewire test CA", func(c *x509.Certificate) {
		c.IsCA, c.BasicConstraintsValid = true, true
		c.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	})
	srvKey, _, srvDER := e.issue(caKey, caCert, "etcd", func(c *x509.Certificate) {
		c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	cliKey, _, cliDER := e.issue(caKey, caCert, "overlayd", func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})
	e.CA = e.writePEM("ca.pem", "CERTIFICATE", caDER)
	srvCert := e.writePEM("server.pem", "CERTIFICATE", srvDER)
	srvKeyFile := e.writePEM("server-key.pem", "EC PRIVATE KEY", marshalKey(e, srvKey))
	e.ClientCert = e.writePEM("client.pem", "CERTIFICATE", cliDER)
	e.ClientKey = e.writePEM("client-key.pem", "EC PRIVATE KEY", marshalKey(e, cliKey))
	e.tlsArgs = []string{"--cert-file", srvCert, "--key-file", srvKeyFile, "--trusted-ca-file", e.CA, "--client-cert-auth"}
}

func (e *Server) issue(parentKey *ecdsa.PrivateKey, parent *x509.Certificate, cn string, set func(*x509.Certificate)) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	e.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	set(tmpl)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		e.t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		e.t.Fatal(err)
	}
	return key, cert, der
}

func marshalKey(e *Server, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		e.t.Fatal(err)
	}
	return der
}

func (e *Server) writePEM(name, typ string, der []byte) string {
	e.t.Helper()
	path := filepath.Join(e.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// clientTLS is the configuration of a client holding the client certificate.
func (e *Server) clientTLS() *tls.Config {
	e.t.Helper()
	pool := x509.NewCertPool()
	b, err := os.ReadFile(e.CA)
	if err != nil {
		e.t.Fatal(err)
	}
	pool.AppendCertsFromPEM(b)
	cert, err := tls.LoadX509KeyPair(e.ClientCert, e.ClientKey)
	if err != nil {
		e.t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}
}
