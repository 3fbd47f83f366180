package hdfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// frame builds one Hadoop IPC request frame: length, then the
// varint-delimited RpcRequestHeaderProto (callId is field 3, sint32) and
// RequestHeaderProto (methodName is field 1), then the request.
func frame(callID int32, method string, withRequestHeader bool) []byte {
	var rrh []byte
	rrh = protowire.AppendTag(rrh, 1, protowire.VarintType) // rpcKind
	rrh = protowire.AppendVarint(rrh, 2)
	rrh = protowire.AppendTag(rrh, 3, protowire.VarintType)
	rrh = protowire.AppendVarint(rrh, protowire.EncodeZigZag(int64(callID)))
	rrh = protowire.AppendTag(rrh, 4, protowire.BytesType) // clientId
	rrh = protowire.AppendBytes(rrh, []byte("0123456789abcdef"))
	var body []byte
	body = protowire.AppendBytes(body, rrh)
	if withRequestHeader {
		var rh []byte
		rh = protowire.AppendTag(rh, 1, protowire.BytesType)
		rh = protowire.AppendString(rh, method)
		rh = protowire.AppendTag(rh, 2, protowire.BytesType)
		rh = protowire.AppendString(rh, "org.apache.hadoop.hdfs.protocol.ClientProtocol")
		body = protowire.AppendBytes(body, rh)
	}
	body = protowire.AppendBytes(body, []byte{0x0a, 0x01, 'x'})
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestCallMethod(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"request", frame(7, "create", true), "create"},
		{"call id 0", frame(0, "getFileInfo", true), "getFileInfo"},
		{"preamble", []byte("hrpc\x09\x00\x00"), ""},
		{"connection context", frame(-3, "", false), ""},
		{"sasl", frame(-33, "", false), ""},
		{"truncated", frame(7, "create", true)[:9], ""},
		{"garbage", []byte{0, 0, 0, 3, 0xff, 0xff, 0xff}, ""},
		{"empty", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := callMethod(tt.in); got != tt.want {
				t.Errorf("callMethod = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzCallMethod(f *testing.F) {
	f.Add(frame(7, "create", true))
	f.Add(frame(-3, "", false))
	f.Fuzz(func(t *testing.T, b []byte) { callMethod(b) })
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&os.PathError{Op: "create", Path: "/x", Err: io.EOF}, true},
		{&os.PathError{Op: "create", Path: "/x", Err: &net.OpError{Op: "dial", Err: errors.New("refused")}}, true},
		{fmt.Errorf("no available namenodes: %w", io.ErrUnexpectedEOF), true},
		{errors.New("org.apache.hadoop.hdfs.server.namenode.SafeModeException: Name node is in safe mode"), true},
		{&os.PathError{Op: "create", Path: "/x", Err: fs.ErrExist}, false},
		{&os.PathError{Op: "stat", Path: "/x", Err: fs.ErrNotExist}, false},
		{&os.PathError{Op: "mkdir", Path: "/x", Err: fs.ErrPermission}, false},
	}
	for _, tt := range tests {
		if got := retryable(tt.err); got != tt.want {
			t.Errorf("retryable(%v) = %t, want %t", tt.err, got, tt.want)
		}
	}
}

func TestSplitURL(t *testing.T) {
	tests := []struct {
		in, authority, path string
		bad                 bool
	}{
		{"hdfs://nn:8020/lake/t", "nn:8020", "/lake/t", false},
		{"hdfs://lake/a/../b/", "lake", "/b", false},
		{"hdfs://nn", "nn", "/", false},
		{"hdfs://nn/k=a%252Fb", "nn", "/k=a%2Fb", false},
		{"file:///x", "", "", true},
	}
	for _, tt := range tests {
		a, p, err := SplitURL(tt.in)
		if (err != nil) != tt.bad || a != tt.authority || p != tt.path {
			t.Errorf("SplitURL(%q) = %q, %q, %v", tt.in, a, p, err)
		}
	}
}

func TestClientOptions(t *testing.T) {
	tests := []struct {
		name      string
		opts      Options
		authority string
		want      []string
		bad       bool
	}{
		{"namenodes win", Options{NameNodes: []string{"a:1", "b:2"}}, "lake", []string{"a:1", "b:2"}, false},
		{"authority", Options{}, "nn:9000", []string{"nn:9000"}, false},
		{"default port", Options{}, "nn", []string{"nn:8020"}, false},
		{"nothing", Options{}, "", nil, true},
		{"bad principal", Options{NameNodes: []string{"a:1"}, Kerberos: &Kerberos{Principal: "nobody", Krb5Conf: os.DevNull}}, "", nil, true},
		{"missing keytab", Options{NameNodes: []string{"a:1"}, Kerberos: &Kerberos{Principal: "s@R", Keytab: "/nonexistent.keytab", Krb5Conf: os.DevNull}}, "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := clientOptions(tt.opts, tt.authority)
			if (err != nil) != tt.bad {
				t.Fatalf("err = %v, want error %t", err, tt.bad)
			}
			if err == nil && fmt.Sprint(o.Addresses) != fmt.Sprint(tt.want) {
				t.Errorf("addresses %v, want %v", o.Addresses, tt.want)
			}
		})
	}
}

// A Hadoop configuration directory names an HA nameservice's NameNodes.
func TestHadoopConfDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/core-site.xml", []byte(`<configuration>
<property><name>fs.defaultFS</name><value>hdfs://lake</value></property>
</configuration>`), 0o644)
	os.WriteFile(dir+"/hdfs-site.xml", []byte(`<configuration>
<property><name>dfs.nameservices</name><value>lake</value></property>
<property><name>dfs.ha.namenodes.lake</name><value>nn1,nn2</value></property>
<property><name>dfs.namenode.rpc-address.lake.nn1</name><value>nn1.example.com:8020</value></property>
<property><name>dfs.namenode.rpc-address.lake.nn2</name><value>nn2.example.com:8020</value></property>
</configuration>`), 0o644)
	o, err := clientOptions(Options{HadoopConfDir: dir, User: "etl"}, "lake")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(o.Addresses) != "[nn1.example.com:8020 nn2.example.com:8020]" || o.User != "etl" {
		t.Errorf("addresses %v, user %q", o.Addresses, o.User)
	}
	if _, err := clientOptions(Options{HadoopConfDir: dir + "/missing"}, ""); err == nil {
		t.Error("a missing hadoop_conf_dir was accepted")
	}
}
