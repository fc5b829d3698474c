//go:build !linux

package udpbind

import "golang.zx2c4.com/wireguard/conn"

// New returns wireguard-go's default Bind on this system.
func New() conn.Bind { return conn.NewDefaultBind() }
