package hdfstest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/colinmarc/hdfs/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/sluicehq/sluice/integration/hdfstest/hdfspb"
)

func client(t *testing.T, addrs ...string) *hdfs.Client {
	t.Helper()
	cl, err := hdfs.NewClient(hdfs.ClientOptions{Addresses: addrs, User: "sluice"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func writeFile(t *testing.T, cl *hdfs.Client, name string, data []byte) {
	t.Helper()
	w, err := cl.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWriteRead(t *testing.T) {
	c := Start(t, Options{BlockSize: 1 << 20})
	cl := client(t, c.Addr())
	if err := cl.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 511, 512, 513, 64 << 10, 1 << 20, 1<<20 + 1, 3<<20 + 12345} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			name := fmt.Sprintf("/d/f-%d", size)
			writeFile(t, cl, name, data)
			got, err := cl.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes, differing from the %d written", len(got), len(data))
			}
			fi, err := cl.Stat(name)
			if err != nil || fi.Size() != int64(size) || fi.IsDir() {
				t.Fatalf("stat: %v %v", fi, err)
			}
			if size == 0 {
				return
			}
			r, err := cl.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for range 20 {
				off := rng.IntN(size)
				n := min(1+rng.IntN(70000), size-off)
				buf := make([]byte, n)
				if _, err := r.ReadAt(buf, int64(off)); err != nil && !errors.Is(err, io.EOF) {
					t.Fatalf("ReadAt(%d, %d): %v", off, n, err)
				}
				if !bytes.Equal(buf, data[off:off+n]) {
					t.Fatalf("ReadAt(%d, %d) differs", off, n)
				}
			}
		})
	}
}

func TestAppend(t *testing.T) {
	c := Start(t, Options{BlockSize: 1 << 20})
	cl := client(t, c.Addr())
	first := bytes.Repeat([]byte("a"), 1000)
	writeFile(t, cl, "/f", first)
	w, err := cl.Append("/f")
	if err != nil {
		t.Fatal(err)
	}
	second := bytes.Repeat([]byte("b"), 1<<20) // crosses into a second block
	if _, err := w.Write(second); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := cl.ReadFile("/f")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(first, second...)) {
		t.Fatalf("appended file differs (%d bytes)", len(got))
	}
}

func TestNamespace(t *testing.T) {
	c := Start(t, Options{})
	cl := client(t, c.Addr())
	if err := cl.MkdirAll("/a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 250 {
		name := fmt.Sprintf("f%03d", i)
		want = append(want, name)
		if err := cl.CreateEmptyFile("/a/b/" + name); err != nil {
			t.Fatal(err)
		}
	}
	list, err := cl.ReadDir("/a/b")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, fi := range list {
		got = append(got, fi.Name())
	}
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listing of %d entries, want %d (paged by %d)", len(got), len(want), listingPageLimit)
	}
	if c.Calls()["getListing"] < 3 {
		t.Errorf("250 entries listed in %d getListing calls: no paging", c.Calls()["getListing"])
	}
	if _, err := cl.Create("/a/b/f000"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("create of an existing file: %v", err)
	}
	if _, err := cl.Stat("/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat of a missing file: %v", err)
	}
	writeFile(t, cl, "/a/src", []byte("new"))
	writeFile(t, cl, "/a/dst", []byte("old"))
	if err := cl.Rename("/a/src", "/a/dst"); err != nil {
		t.Fatal(err)
	}
	if got, _ := cl.ReadFile("/a/dst"); string(got) != "new" {
		t.Errorf("renamed over: %q", got)
	}
	if err := cl.Rename("/a/dst", "/missing/dst"); err == nil {
		t.Error("rename into a missing directory succeeded")
	}
	if err := cl.Remove("/a/b"); err == nil {
		t.Error("remove of a non-empty directory succeeded")
	}
	if err := cl.RemoveAll("/a"); err != nil {
		t.Fatal(err)
	}
	if files := c.Files(); len(files) != 0 {
		t.Errorf("left after RemoveAll: %v", c.Paths())
	}
}

func TestFaults(t *testing.T) {
	t.Run("replication delay", func(t *testing.T) {
		c := Start(t, Options{})
		cl := client(t, c.Addr())
		c.SetReplicationDelay(200 * time.Millisecond)
		w, err := cl.Create("/f")
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("x"))
		start := time.Now()
		err = w.Close()
		if !hdfs.IsErrReplicating(err) {
			t.Fatalf("first close: %v, want ErrReplicating", err)
		}
		for hdfs.IsErrReplicating(err) {
			time.Sleep(20 * time.Millisecond)
			err = w.Close()
		}
		if err != nil || time.Since(start) < 200*time.Millisecond {
			t.Fatalf("close: %v after %s", err, time.Since(start))
		}
		if c.Files()["/f"].UnderConstruction {
			t.Error("file still under construction")
		}
	})
	t.Run("complete delay", func(t *testing.T) {
		c := Start(t, Options{})
		cl := client(t, c.Addr())
		c.SetCompleteDelay(150 * time.Millisecond)
		start := time.Now()
		writeFile(t, cl, "/f", []byte("x"))
		if time.Since(start) < 150*time.Millisecond || c.Calls()["complete"] != 1 {
			t.Errorf("close took %s with %d completes", time.Since(start), c.Calls()["complete"])
		}
	})
	t.Run("fail next", func(t *testing.T) {
		c := Start(t, Options{})
		cl := client(t, c.Addr())
		c.FailNext("create", 1)
		if _, err := cl.Create("/f"); err == nil {
			t.Fatal("create succeeded through an injected failure")
		}
		writeFile(t, cl, "/f", []byte("x"))
	})
	t.Run("datanode drops mid-block", func(t *testing.T) {
		c := Start(t, Options{})
		cl := client(t, c.Addr())
		c.DropWriteAfter(100 << 10)
		w, err := cl.Create("/f")
		if err != nil {
			t.Fatal(err)
		}
		_, werr := w.Write(make([]byte, 300<<10))
		cerr := w.Close()
		if werr == nil && cerr == nil {
			t.Fatal("a write through a dropped pipeline succeeded")
		}
		if !c.Files()["/f"].UnderConstruction {
			t.Error("the file of a failed write is complete")
		}
		if err := cl.Remove("/f"); err != nil {
			t.Fatal(err)
		}
		writeFile(t, cl, "/g", make([]byte, 300<<10))
	})
	t.Run("namenode restart", func(t *testing.T) {
		c := Start(t, Options{})
		cl := client(t, c.Addr())
		writeFile(t, cl, "/f", []byte("before"))
		c.RestartNameNode()
		// The client refuses a NameNode for a few seconds after its
		// connection broke; a fresh client connects at once.
		cl2 := client(t, c.Addr())
		if got, err := cl2.ReadFile("/f"); err != nil || string(got) != "before" {
			t.Fatalf("after restart: %q %v", got, err)
		}
		writeFile(t, cl2, "/g", []byte("after"))
	})
	t.Run("standby first", func(t *testing.T) {
		c := Start(t, Options{})
		cl := client(t, c.StandbyAddr(), c.Addr())
		writeFile(t, cl, "/f", []byte("x"))
		if got, err := cl.ReadFile("/f"); err != nil || string(got) != "x" {
			t.Fatalf("through failover: %q %v", got, err)
		}
	})
}

// A frame that breaks the protocol is refused, not served.
func TestStrict(t *testing.T) {
	c := Start(t, Options{})
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", c.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	frame := func(msgs ...proto.Message) []byte {
		var body []byte
		for _, m := range msgs {
			raw, _ := proto.Marshal(m)
			body = protowire.AppendBytes(body, raw)
		}
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	hello := func(conn net.Conn) {
		conn.Write([]byte("hrpc\x09\x00\x00"))
		conn.Write(frame(&pb.RpcRequestHeaderProto{RpcKind: pb.RpcKindProto_RPC_PROTOCOL_BUFFER.Enum(), CallId: ptr(int32(-3)), ClientId: make([]byte, 16)},
			&pb.IpcConnectionContextProto{Protocol: ptr(clientProtocol), UserInfo: &pb.UserInformationProto{EffectiveUser: ptr("u")}}))
	}
	answer := func(conn net.Conn) *pb.RpcResponseHeaderProto {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var n [4]byte
		if _, err := io.ReadFull(conn, n[:]); err != nil {
			return nil
		}
		buf := make([]byte, binary.BigEndian.Uint32(n[:]))
		io.ReadFull(conn, buf)
		hdr := &pb.RpcResponseHeaderProto{}
		if _, err := consumeDelimited(buf, hdr); err != nil {
			t.Fatal(err)
		}
		return hdr
	}
	call := func(method, protocol string, req proto.Message) []byte {
		return frame(&pb.RpcRequestHeaderProto{RpcKind: pb.RpcKindProto_RPC_PROTOCOL_BUFFER.Enum(), RpcOp: pb.RpcRequestHeaderProto_RPC_FINAL_PACKET.Enum(),
			CallId: ptr(int32(0)), ClientId: make([]byte, 16)},
			&pb.RequestHeaderProto{MethodName: ptr(method), DeclaringClassProtocolName: ptr(protocol), ClientProtocolVersion: ptr(uint64(1))}, req)
	}
	t.Run("wrong protocol", func(t *testing.T) {
		conn := dial()
		hello(conn)
		conn.Write(call("getFileInfo", "org.apache.hadoop.hdfs.protocol.DatanodeProtocol", &pb.GetFileInfoRequestProto{Src: ptr("/")}))
		if h := answer(conn); h == nil || h.GetStatus() != pb.RpcResponseHeaderProto_FATAL {
			t.Fatalf("answer %v, want FATAL", h)
		}
	})
	t.Run("unknown method", func(t *testing.T) {
		conn := dial()
		hello(conn)
		conn.Write(call("setQuota", clientProtocol, &pb.GetFileInfoRequestProto{Src: ptr("/")}))
		if h := answer(conn); h == nil || h.GetExceptionClassName() != exNoSuchMethod {
			t.Fatalf("answer %v, want %s", h, exNoSuchMethod)
		}
	})
	t.Run("missing required field", func(t *testing.T) {
		conn := dial()
		hello(conn)
		conn.Write(call("getFileInfo", clientProtocol, &pb.GetFileInfoRequestProto{}))
		if h := answer(conn); h == nil || h.GetStatus() != pb.RpcResponseHeaderProto_FATAL {
			t.Fatalf("answer %v, want FATAL", h)
		}
	})
	t.Run("sasl", func(t *testing.T) {
		conn := dial()
		conn.Write([]byte("hrpc\x09\x00\xdf"))
		if h := answer(conn); h != nil {
			t.Fatalf("a SASL connection was answered: %v", h)
		}
	})
	t.Run("bad checksum", func(t *testing.T) {
		cl := client(t, c.Addr())
		w, err := cl.Create("/f")
		if err != nil {
			t.Fatal(err)
		}
		_ = w
		// Allocate a block as a client would, then write a packet whose
		// checksum is wrong straight to its DataNode.
		c.ns.mu.Lock()
		f := c.ns.root.children["f"]
		c.ns.mu.Unlock()
		if f == nil {
			t.Fatal("no file")
		}
		c.ns.mu.Lock()
		c.ns.nextID++
		b := &block{id: 1<<30 + c.ns.nextID, gs: 1001, file: f, locs: []*dataNode{c.dns[0]}}
		f.blocks = append(f.blocks, b)
		c.ns.blocks[b.id] = b
		holder := f.holder
		c.ns.mu.Unlock()
		conn, err := net.Dial("tcp", c.dns[0].srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		op := &pb.OpWriteBlockProto{
			Header: &pb.ClientOperationHeaderProto{BaseHeader: &pb.BaseHeaderProto{Block: &pb.ExtendedBlockProto{PoolId: ptr(poolID),
				BlockId: ptr(b.id), GenerationStamp: ptr(b.gs)}}, ClientName: ptr(holder)},
			Stage: pb.OpWriteBlockProto_PIPELINE_SETUP_CREATE.Enum(), PipelineSize: ptr(uint32(0)), MinBytesRcvd: ptr(uint64(0)),
			MaxBytesRcvd: ptr(uint64(0)), LatestGenerationStamp: ptr(uint64(0)),
			RequestedChecksum: &pb.ChecksumProto{Type: pb.ChecksumTypeProto_CHECKSUM_CRC32C.Enum(), BytesPerChecksum: ptr(uint32(512))},
		}
		conn.Write([]byte{0, dataTransferVersion, opWriteBlock})
		writeDelimited(conn, op)
		r := bufio.NewReader(conn)
		resp := &pb.BlockOpResponseProto{}
		if err := readDelimited(r, resp); err != nil || resp.GetStatus() != pb.Status_SUCCESS {
			t.Fatalf("op response %v %v", resp, err)
		}
		var pkt bytes.Buffer
		writePacket(&pkt, 1, 0, false, []byte("hello"))
		raw := pkt.Bytes()
		raw[len(raw)-6] ^= 0xff // the checksum's last byte
		conn.Write(raw)
		ack := &pb.PipelineAckProto{}
		if err := readDelimited(r, ack); err != nil || len(ack.GetReply()) == 0 || ack.GetReply()[0] != pb.Status_ERROR_CHECKSUM {
			t.Fatalf("ack of a bad checksum: %v %v", ack, err)
		}
		c.ns.mu.Lock()
		n := len(b.data)
		c.ns.mu.Unlock()
		if n != 0 {
			t.Fatalf("a packet with a bad checksum was stored (%d bytes)", n)
		}
	})
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}
