//go:build !linux

// Package udpbind is a WireGuard conn.Bind for Linux that allocates nothing
// per packet in steady state; on other systems New returns wireguard-go's
// default Bind.
package udpbind

import "golang.zx2c4.com/wireguard/conn"

// New returns wireguard-go's default Bind on this system.
func New() conn.Bind { return conn.NewDefaultBind() }
