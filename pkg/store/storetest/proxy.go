package storetest

import (
	"net"
	"sync"
	"testing"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/tokenservice/tokenservice/pkg/store"
)

// Proxy is a TCP proxy a test puts between the service and MySQL, to make
// the database go away and come back: Cut drops every connection and refuses
// new ones, Stall keeps connections open but passes no bytes (a database that
// hangs), Restore forwards again.
type Proxy struct {
	target string
	lis    net.Listener

	mu    sync.Mutex
	mode  proxyMode
	conns map[net.Conn]bool
	wake  *sync.Cond
}

type proxyMode int

const (
	forwarding proxyMode = iota
	cut
	stalled
)

// MustMySQLViaProxy returns a fresh MySQL database reached through a new
// Proxy, both removed when the test ends.
func MustMySQLViaProxy(tb testing.TB) (store.Config, *Proxy) {
	tb.Helper()
	db := MustConfig(tb, store.DriverMySQL)
	cfg, err := mysqldriver.ParseDSN(db.DSN)
	if err != nil {
		tb.Fatal(err)
	}
	p := NewProxy(tb, cfg.Addr)
	cfg.Addr = p.Addr()
	db.DSN = cfg.FormatDSN()
	return db, p
}

// NewProxy listens on a free local port and forwards to target.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{target: target, lis: lis, conns: map[net.Conn]bool{}}
	p.wake = sync.NewCond(&p.mu)
	go p.accept()
	tb.Cleanup(func() {
		lis.Close()
		p.Cut()
	})
	return p
}

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Addr is the address to connect to instead of the target's.
func (p *Proxy) Addr() string { return p.lis.Addr().String() }

// Cut closes every open connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = cut
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.wake.Broadcast()
}

// Stall stops passing bytes on every connection, new ones included, until
// Restore: the database seems to hang.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = stalled
}

// Restore forwards again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = forwarding
	p.wake.Broadcast()
}

func (p *Proxy) accept() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.mode == cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	if p.mode == cut {
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	p.conns[client], p.conns[server] = true, true
	p.mu.Unlock()
	go p.pipe(server, client)
	p.pipe(client, server)
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// pipe copies from src to dst, holding each chunk while the proxy is stalled.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitForwarding() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// waitForwarding blocks while stalled; false means the proxy was cut.
func (p *Proxy) waitForwarding() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.mode == stalled {
		p.wake.Wait()
	}
	return p.mode == forwarding
}
