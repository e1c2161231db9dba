package mysql_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// fakeMode is how a fakeServer answers a login.
type fakeMode int

const (
	// recordOnly accepts TCP connections, counts them and closes them: the listener that proves nothing
	// was contacted.
	recordOnly fakeMode = iota
	// askCleartext greets with mysql_native_password, then answers the login with an authentication
	// switch to mysql_clear_password (which would make a client send the password as it is).
	askCleartext
	// greetCleartext names mysql_clear_password in its greeting already, then switches to it.
	greetCleartext
	// askOldPassword switches to the pre-4.1 method (a lone 0xFE).
	askOldPassword
	// askDialog switches to MariaDB's dialog plugin (PAM), which prompts for the password in clear.
	askDialog
)

// Capability flags of the MySQL client/server protocol.
const (
	capLongPassword    = 0x00000001
	capConnectWithDB   = 0x00000008
	capProtocol41      = 0x00000200
	capSSL             = 0x00000800
	capTransactions    = 0x00002000
	capSecureConn      = 0x00008000
	capPluginAuth      = 0x00080000
	capPluginAuthLenEn = 0x00200000
)

// fakeServer is a hostile MySQL server: it speaks just enough of the protocol to get a client to the
// point of authenticating (the greeting, TLS with whatever certificate it is given, the login packet,
// an authentication switch of its choice) and records everything the client sends. It never completes a
// login. Without a TLS configuration it does not offer TLS.
type fakeServer struct {
	Addr string
	ln   net.Listener
	tls  *tls.Config
	mode fakeMode
	wg   sync.WaitGroup

	mu         sync.Mutex
	conns      int      // TCP connections accepted
	handshakes int      // TLS handshakes completed
	users      []string // the user of each login packet received
	received   []byte   // every byte received (decrypted), all connections
	afterAuth  []byte   // every byte received after an authentication switch, all connections
}

// startFake listens on a free loopback port until the test ends.
func startFake(t *testing.T, mode fakeMode, tlsConfig *tls.Config) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{Addr: ln.Addr().String(), ln: ln, tls: tlsConfig, mode: mode}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		f.wg.Wait()
	})
	return f
}

func (f *fakeServer) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns++
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if f.mode != recordOnly {
				f.serve(c)
			}
		}()
	}
}

// recorder keeps what a connection receives.
type recorder struct {
	f *fakeServer
	r io.Reader
}

func (r recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.f.mu.Lock()
	r.f.received = append(r.f.received, p[:n]...)
	r.f.mu.Unlock()
	return n, err
}

func (f *fakeServer) serve(c net.Conn) {
	greeting := "mysql_native_password"
	if f.mode == greetCleartext {
		greeting = "mysql_clear_password"
	}
	if err := writePacket(c, 0, handshake(greeting, f.tls != nil)); err != nil {
		return
	}
	var conn io.ReadWriter = c
	if f.tls == nil {
		// A client that requires TLS stops here; keep whatever it sends anyway.
		_, _ = io.Copy(io.Discard, recorder{f, c})
		return
	}
	req, _, err := readPacket(recorder{f, c})
	if err != nil || len(req) != 32 {
		return // not an SSL request: a client that would talk in plain text
	}
	tc := tls.Server(c, f.tls)
	if err := tc.Handshake(); err != nil {
		return // the client did not trust the certificate
	}
	f.mu.Lock()
	f.handshakes++
	f.mu.Unlock()
	defer tc.Close()
	conn = tc
	login, seq, err := readPacket(recorder{f, conn})
	if err != nil || len(login) < 33 {
		return
	}
	if end := bytes.IndexByte(login[32:], 0); end >= 0 {
		f.mu.Lock()
		f.users = append(f.users, string(login[32:32+end]))
		f.mu.Unlock()
	}
	var sw []byte
	switch f.mode {
	case askCleartext, greetCleartext:
		sw = append([]byte{0xfe}, "mysql_clear_password\x00"...)
	case askOldPassword:
		sw = []byte{0xfe}
	case askDialog:
		sw = append([]byte{0xfe}, "dialog\x00\x04Password: \x00"...)
	}
	if err := writePacket(conn, seq+1, sw); err != nil {
		return
	}
	// Whatever comes now would be the password: keep every byte.
	var buf bytes.Buffer
	_, _ = io.Copy(&buf, recorder{f, conn})
	f.mu.Lock()
	f.afterAuth = append(f.afterAuth, buf.Bytes()...)
	f.mu.Unlock()
}

// handshake is a protocol-10 greeting offering plugin, and TLS when ssl.
func handshake(plugin string, ssl bool) []byte {
	caps := uint32(capLongPassword | capConnectWithDB | capProtocol41 | capTransactions | capSecureConn | capPluginAuth | capPluginAuthLenEn)
	if ssl {
		caps |= capSSL
	}
	scramble := []byte("abcdefghijklmnopqrst")
	p := []byte{10}
	p = append(p, "5.7.44-fake\x00"...)
	p = binary.LittleEndian.AppendUint32(p, 7)
	p = append(p, scramble[:8]...)
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint16(p, uint16(caps))
	p = append(p, 0x21)                          // utf8_general_ci
	p = binary.LittleEndian.AppendUint16(p, 0x2) // autocommit
	p = binary.LittleEndian.AppendUint16(p, uint16(caps>>16))
	p = append(p, 21)
	p = append(p, make([]byte, 10)...)
	p = append(p, scramble[8:]...)
	p = append(p, 0)
	return append(p, plugin+"\x00"...)
}

func writePacket(w io.Writer, seq byte, payload []byte) error {
	h := []byte{byte(len(payload)), byte(len(payload) >> 8), byte(len(payload) >> 16), seq}
	_, err := w.Write(append(h, payload...))
	return err
}

func readPacket(r io.Reader) ([]byte, byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, 0, err
	}
	n := int(h[0]) | int(h[1])<<8 | int(h[2])<<16
	if n > 1<<20 {
		return nil, 0, errors.New("packet too large")
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return p, h[3], err
}

// Conns is the number of TCP connections accepted so far.
func (f *fakeServer) Conns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

// Handshakes is the number of TLS handshakes the clients completed.
func (f *fakeServer) Handshakes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handshakes
}

// Users are the users named in the login packets received.
func (f *fakeServer) Users() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.users...)
}

// Received is every byte clients sent (inside TLS, decrypted), and what they sent after an
// authentication switch.
func (f *fakeServer) Received() (all, afterAuth []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.received...), append([]byte(nil), f.afterAuth...)
}
