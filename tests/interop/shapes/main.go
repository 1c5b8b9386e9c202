// shapes: the shapes.Shapes test service (tests/greeter/shapes.proto) on grpc-go, server
// and client, for interop tests through the sidecar with a second, independent HTTP/2
// stack. Builds offline from Debian's golang-google-grpc-dev in GOPATH mode:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o shapes-go ./tests/interop/shapes
//
// No generated stubs (protoc-gen-go-grpc is not packaged for bookworm): the service is a
// hand-written grpc.ServiceDesc and messages go through a codec that encodes the three
// fields used here (payload 1, count 2, tag 7) by hand, wire-compatible with shapes.proto.
//
//	shapes-go server --port N
//	shapes-go client --target HOST:PORT [--timeout 10s]
//
// The server behaves as tests/greeter/shapes_server.py for these fields: Unary and Bidi
// echo, ServerStream sends count replies with payloads "0".."count-1", ClientStream
// answers count = messages received and payload = their total payload bytes, in decimal
// (an empty message for none).
// The client runs the four shapes, including a client-stream and a bidi that half-close
// with zero messages, prints one "ok <what>" line per check, and exits 1 at the first
// failure ("FAIL <what>: <why>").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// msg is shapes.Msg, the fields used here.
type msg struct {
	Payload []byte
	Count   int64
	Tag     string
}

func putVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func (m *msg) marshal() []byte {
	var b []byte
	if len(m.Payload) > 0 {
		b = putVarint(append(b, 1<<3|2), uint64(len(m.Payload)))
		b = append(b, m.Payload...)
	}
	if m.Count != 0 {
		b = putVarint(append(b, 2<<3|0), uint64(m.Count))
	}
	if m.Tag != "" {
		b = putVarint(append(b, 7<<3|2), uint64(len(m.Tag)))
		b = append(b, m.Tag...)
	}
	return b
}

func varint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * uint(i))
		if b[i] < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("bad varint")
}

func (m *msg) unmarshal(b []byte) error {
	*m = msg{}
	for len(b) > 0 {
		key, n, err := varint(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch key & 7 {
		case 0:
			v, n, err := varint(b)
			if err != nil {
				return err
			}
			b = b[n:]
			if key>>3 == 2 {
				m.Count = int64(v)
			}
		case 2:
			l, n, err := varint(b)
			if err != nil || uint64(len(b)-n) < l {
				return errors.New("bad length")
			}
			v := b[n : n+int(l)]
			b = b[n+int(l):]
			switch key >> 3 {
			case 1:
				m.Payload = append([]byte(nil), v...)
			case 7:
				m.Tag = string(v)
			}
		case 5:
			if len(b) < 4 {
				return errors.New("short fixed32")
			}
			b = b[4:]
		case 1:
			if len(b) < 8 {
				return errors.New("short fixed64")
			}
			b = b[8:]
		default:
			return fmt.Errorf("wire type %d", key&7)
		}
	}
	return nil
}

// codec replaces the registered "proto" codec: the content-type stays application/grpc.
type codec struct{}

func (codec) Marshal(v interface{}) ([]byte, error) {
	m, ok := v.(*msg)
	if !ok {
		return nil, fmt.Errorf("codec: %T", v)
	}
	return m.marshal(), nil
}

func (codec) Unmarshal(b []byte, v interface{}) error {
	m, ok := v.(*msg)
	if !ok {
		return fmt.Errorf("codec: %T", v)
	}
	return m.unmarshal(b)
}

func (codec) Name() string { return "proto" }

// ---- server ------------------------------------------------------------------------

func unary(srv interface{}, ctx context.Context, dec func(interface{}) error,
	_ grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(msg)
	if err := dec(in); err != nil {
		return nil, err
	}
	return &msg{Payload: in.Payload, Tag: in.Tag}, nil
}

func serverStream(srv interface{}, st grpc.ServerStream) error {
	in := new(msg)
	if err := st.RecvMsg(in); err != nil {
		return err
	}
	for i := int64(0); i < in.Count; i++ {
		if err := st.SendMsg(&msg{Payload: []byte(strconv.FormatInt(i, 10)), Count: i,
			Tag: in.Tag}); err != nil {
			return err
		}
	}
	return nil
}

func clientStream(srv interface{}, st grpc.ServerStream) error {
	var n, total int64
	tag := ""
	for {
		in := new(msg)
		err := st.RecvMsg(in)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if n == 0 {
			tag = in.Tag
		}
		n++
		total += int64(len(in.Payload))
	}
	if n == 0 {
		return st.SendMsg(&msg{}) // as shapes_server.py: count 0, nothing else
	}
	return st.SendMsg(&msg{Count: n, Payload: []byte(strconv.FormatInt(total, 10)), Tag: tag})
}

func bidi(srv interface{}, st grpc.ServerStream) error {
	for {
		in := new(msg)
		err := st.RecvMsg(in)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := st.SendMsg(&msg{Payload: in.Payload, Tag: in.Tag}); err != nil {
			return err
		}
	}
}

var desc = grpc.ServiceDesc{
	ServiceName: "shapes.Shapes",
	HandlerType: (*interface{})(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Unary", Handler: unary}},
	Streams: []grpc.StreamDesc{
		{StreamName: "ServerStream", Handler: serverStream, ServerStreams: true},
		{StreamName: "ClientStream", Handler: clientStream, ClientStreams: true},
		{StreamName: "Bidi", Handler: bidi, ServerStreams: true, ClientStreams: true},
	},
}

func server(port int) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("cannot listen on 127.0.0.1:%d: %v", port, err)
	}
	s := grpc.NewServer()
	s.RegisterService(&desc, struct{}{})
	fmt.Printf("shapes-go: listening on 127.0.0.1:%d\n", port)
	return s.Serve(l)
}

// ---- client ------------------------------------------------------------------------

type checker struct{ failed bool }

func (c *checker) check(ok bool, what string, why interface{}) {
	if ok {
		fmt.Println("ok   " + what)
		return
	}
	fmt.Printf("FAIL %s: %v\n", what, why)
	c.failed = true
}

var (
	descSS = &grpc.StreamDesc{StreamName: "ServerStream", ServerStreams: true}
	descCS = &grpc.StreamDesc{StreamName: "ClientStream", ClientStreams: true}
	descBi = &grpc.StreamDesc{StreamName: "Bidi", ServerStreams: true, ClientStreams: true}
)

// clientStreamCall sends n messages (payload "abc" each), half-closes, returns the reply.
func clientStreamCall(ctx context.Context, cc *grpc.ClientConn, n int) (*msg, error) {
	st, err := cc.NewStream(ctx, descCS, "/shapes.Shapes/ClientStream")
	if err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		if err := st.SendMsg(&msg{Payload: []byte("abc"), Tag: "go-cs"}); err != nil {
			return nil, err
		}
	}
	if err := st.CloseSend(); err != nil {
		return nil, err
	}
	out := new(msg)
	if err := st.RecvMsg(out); err != nil {
		return nil, err
	}
	return out, nil
}

// bidiCall sends n messages, half-closes, returns the echoes until the end.
func bidiCall(ctx context.Context, cc *grpc.ClientConn, n int) ([]string, error) {
	st, err := cc.NewStream(ctx, descBi, "/shapes.Shapes/Bidi")
	if err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		if err := st.SendMsg(&msg{Payload: []byte(fmt.Sprintf("b%d", i))}); err != nil {
			return nil, err
		}
	}
	if err := st.CloseSend(); err != nil {
		return nil, err
	}
	var got []string
	for {
		out := new(msg)
		err := st.RecvMsg(out)
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, string(out.Payload))
	}
}

func client(target string, timeout time.Duration) int {
	c := &checker{}
	cc, err := grpc.Dial(target, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		fmt.Printf("FAIL dial %s: %v\n", target, err)
		return 1
	}
	defer cc.Close()
	call := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), timeout)
	}

	ctx, cancel := call()
	out := new(msg)
	err = cc.Invoke(ctx, "/shapes.Shapes/Unary", &msg{Payload: []byte("hi"), Tag: "go-u"}, out)
	cancel()
	c.check(err == nil && string(out.Payload) == "hi", "grpc-go unary", err)

	ctx, cancel = call()
	var got []string
	st, err := cc.NewStream(ctx, descSS, "/shapes.Shapes/ServerStream")
	if err == nil {
		err = st.SendMsg(&msg{Count: 3, Tag: "go-ss"})
	}
	if err == nil {
		err = st.CloseSend()
	}
	for err == nil {
		o := new(msg)
		if err = st.RecvMsg(o); err == nil {
			got = append(got, string(o.Payload))
		}
	}
	cancel()
	c.check(err == io.EOF && fmt.Sprint(got) == "[0 1 2]", "grpc-go server-stream (3 replies)",
		fmt.Sprint(got, " ", err))

	for _, n := range []int{0, 3} {
		ctx, cancel = call()
		r, err := clientStreamCall(ctx, cc, n)
		cancel()
		want := ""
		if n > 0 {
			want = strconv.Itoa(3 * n)
		}
		c.check(err == nil && r.Count == int64(n) && string(r.Payload) == want,
			fmt.Sprintf("grpc-go client-stream with %d messages", n), fmt.Sprint(r, " ", err))
	}
	for _, n := range []int{0, 2} {
		ctx, cancel = call()
		g, err := bidiCall(ctx, cc, n)
		cancel()
		want := "[]"
		if n == 2 {
			want = "[b0 b1]"
		}
		c.check(err == nil && fmt.Sprint(g) == want,
			fmt.Sprintf("grpc-go bidi with %d messages", n), fmt.Sprint(g, " ", err))
	}
	if c.failed {
		return 1
	}
	return 0
}

func main() {
	encoding.RegisterCodec(codec{})
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: shapes-go server --port N | client --target HOST:PORT [--timeout D]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	port := fs.Int("port", 0, "server: port to listen on (127.0.0.1)")
	target := fs.String("target", "", "client: HOST:PORT to call")
	timeout := fs.Duration("timeout", 10*time.Second, "client: deadline of each call")
	_ = fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "server":
		if err := server(*port); err != nil {
			fmt.Fprintln(os.Stderr, "shapes-go:", err)
			os.Exit(1)
		}
	case "client":
		os.Exit(client(*target, *timeout))
	default:
		fmt.Fprintln(os.Stderr, "shapes-go: unknown mode", os.Args[1])
		os.Exit(2)
	}
}
