package hdfstest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/sluicehq/sluice/integration/hdfstest/hdfspb"
)

// Hadoop IPC constants the client must send.
const (
	ipcVersion       = 9
	authNone         = 0
	contextCallID    = -3
	clientProtocol   = "org.apache.hadoop.hdfs.protocol.ClientProtocol"
	protocolVersion  = 1
	maxFrame         = 64 << 20
	listingPageLimit = 100 // small, so clients must page
)

// ipcConn is one client connection to a NameNode.
type ipcConn struct {
	c    *Cluster
	conn net.Conn
	r    *bufio.Reader
	user string
}

// handshake reads the connection preamble and the connection context.
func (ic *ipcConn) handshake() error {
	var pre [7]byte
	if _, err := io.ReadFull(ic.r, pre[:]); err != nil {
		return err
	}
	if string(pre[:4]) != "hrpc" {
		return protocolErr("connection preamble %q is not hrpc", pre[:4])
	}
	if pre[4] != ipcVersion {
		return protocolErr("IPC version %d, want %d", pre[4], ipcVersion)
	}
	if pre[5] != 0 {
		return protocolErr("service class %d, want 0", pre[5])
	}
	if pre[6] != authNone {
		return protocolErr("auth protocol %d: only simple authentication (0) is served", pre[6])
	}
	frame, err := ic.readFrame()
	if err != nil {
		return err
	}
	hdr := &pb.RpcRequestHeaderProto{}
	rest, err := consumeDelimited(frame, hdr)
	if err != nil {
		return protocolErr("connection context header: %v", err)
	}
	if hdr.GetCallId() != contextCallID {
		return protocolErr("first call id %d, want the connection context (%d)", hdr.GetCallId(), contextCallID)
	}
	cc := &pb.IpcConnectionContextProto{}
	if rest, err = consumeDelimited(rest, cc); err != nil || len(rest) > 0 {
		return protocolErr("connection context: %v (%d trailing bytes)", err, len(rest))
	}
	if cc.GetProtocol() != clientProtocol {
		return protocolErr("connection protocol %q, want %s", cc.GetProtocol(), clientProtocol)
	}
	ic.user = cc.GetUserInfo().GetEffectiveUser()
	if ic.user == "" {
		return protocolErr("connection context names no user")
	}
	return nil
}

func (ic *ipcConn) readFrame() ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(ic.r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size == 0 || size > maxFrame {
		return nil, protocolErr("frame of %d bytes", size)
	}
	frame := make([]byte, size)
	if _, err := io.ReadFull(ic.r, frame); err != nil {
		return nil, err
	}
	return frame, nil
}

// consumeDelimited decodes one varint-delimited message off b.
func consumeDelimited(b []byte, m proto.Message) ([]byte, error) {
	msg, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, errors.New("bad length prefix")
	}
	if err := (proto.UnmarshalOptions{}).Unmarshal(msg, m); err != nil {
		return nil, err
	}
	// Required fields must be there: the client always sends them.
	if err := proto.CheckInitialized(m); err != nil {
		return nil, err
	}
	return b[n:], nil
}

func appendDelimited(b []byte, m proto.Message) []byte {
	raw, err := proto.Marshal(m)
	if err != nil {
		panic(err) // the double's own messages always marshal
	}
	return protowire.AppendBytes(b, raw)
}

// respond writes one response frame.
func (ic *ipcConn) respond(hdr *pb.RpcResponseHeaderProto, body proto.Message) error {
	payload := appendDelimited(nil, hdr)
	if body != nil {
		payload = appendDelimited(payload, body)
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	_, err := ic.conn.Write(append(out, payload...))
	return err
}

// serveNameNode serves one connection of the active NameNode.
func (c *Cluster) serveNameNode(conn net.Conn) {
	c.serveIPC(conn, false)
}

func (c *Cluster) serveStandby(conn net.Conn) {
	c.serveIPC(conn, true)
}

func (c *Cluster) serveIPC(conn net.Conn, standby bool) {
	ic := &ipcConn{c: c, conn: conn, r: bufio.NewReader(conn)}
	if err := ic.handshake(); err != nil {
		if !isClosed(err) {
			c.opts.Logf("namenode %s: refused connection: %v", conn.LocalAddr(), err)
		}
		return
	}
	for {
		frame, err := ic.readFrame()
		if err != nil {
			if !isClosed(err) {
				c.opts.Logf("namenode: %v", err)
			}
			return
		}
		if err := ic.call(frame, standby); err != nil {
			if !isClosed(err) {
				c.opts.Logf("namenode: %v", err)
			}
			return
		}
	}
}

// call serves one request frame. A frame the double cannot read ends the
// connection with a fatal answer, as a NameNode does.
func (ic *ipcConn) call(frame []byte, standby bool) error {
	hdr := &pb.RpcRequestHeaderProto{}
	rest, err := consumeDelimited(frame, hdr)
	if err != nil {
		return protocolErr("request header: %v", err)
	}
	resp := &pb.RpcResponseHeaderProto{CallId: ptr(uint32(hdr.GetCallId())), ServerIpcVersionNum: ptr(uint32(ipcVersion)),
		ClientId: hdr.GetClientId()}
	fatal := func(code pb.RpcResponseHeaderProto_RpcErrorCodeProto, err error) error {
		resp.Status = pb.RpcResponseHeaderProto_FATAL.Enum()
		resp.ErrorDetail = code.Enum()
		resp.ExceptionClassName = ptr("org.apache.hadoop.ipc.RpcServerException")
		resp.ErrorMsg = ptr(err.Error())
		ic.respond(resp, nil)
		return err
	}
	if hdr.GetRpcKind() != pb.RpcKindProto_RPC_PROTOCOL_BUFFER || hdr.GetRpcOp() != pb.RpcRequestHeaderProto_RPC_FINAL_PACKET {
		return fatal(pb.RpcResponseHeaderProto_FATAL_INVALID_RPC_HEADER,
			protocolErr("rpc kind %v, op %v", hdr.GetRpcKind(), hdr.GetRpcOp()))
	}
	if hdr.GetCallId() < 0 {
		return fatal(pb.RpcResponseHeaderProto_FATAL_INVALID_RPC_HEADER, protocolErr("call id %d", hdr.GetCallId()))
	}
	if len(hdr.GetClientId()) != 16 {
		return fatal(pb.RpcResponseHeaderProto_FATAL_INVALID_RPC_HEADER, protocolErr("client id of %d bytes, want 16", len(hdr.GetClientId())))
	}
	rh := &pb.RequestHeaderProto{}
	if rest, err = consumeDelimited(rest, rh); err != nil {
		return fatal(pb.RpcResponseHeaderProto_FATAL_DESERIALIZING_REQUEST, protocolErr("request header: %v", err))
	}
	if rh.GetDeclaringClassProtocolName() != clientProtocol || rh.GetClientProtocolVersion() != protocolVersion {
		return fatal(pb.RpcResponseHeaderProto_FATAL_DESERIALIZING_REQUEST,
			protocolErr("protocol %s version %d", rh.GetDeclaringClassProtocolName(), rh.GetClientProtocolVersion()))
	}
	method := rh.GetMethodName()
	h, ok := handlers[method]
	if !ok {
		ic.c.opts.Logf("namenode: unknown method %q", method)
		resp.Status = pb.RpcResponseHeaderProto_ERROR.Enum()
		resp.ErrorDetail = pb.RpcResponseHeaderProto_ERROR_NO_SUCH_METHOD.Enum()
		resp.ExceptionClassName = ptr(exNoSuchMethod)
		resp.ErrorMsg = ptr("unknown method " + method)
		return ic.respond(resp, nil)
	}
	req := h.req()
	if rest, err = consumeDelimited(rest, req); err != nil || len(rest) > 0 {
		return fatal(pb.RpcResponseHeaderProto_FATAL_DESERIALIZING_REQUEST,
			protocolErr("%s request: %v (%d trailing bytes)", method, err, len(rest)))
	}
	var out proto.Message
	var rerror *remoteError
	switch {
	case standby:
		rerror = rerr(exStandby, "Operation category %s is not supported in state standby", method)
	case ic.c.arrive(method, srcOf(req), ic.user):
		rerror = rerr(exIO, "injected failure of %s", method)
	default:
		// Calls are served one at a time, as the namespace's lock orders
		// them; block data moves outside it, in the DataNodes.
		ic.c.ns.mu.Lock()
		out, rerror = h.serve(ic, req)
		ic.c.ns.mu.Unlock()
	}
	if rerror != nil {
		resp.Status = pb.RpcResponseHeaderProto_ERROR.Enum()
		resp.ErrorDetail = pb.RpcResponseHeaderProto_ERROR_APPLICATION.Enum()
		resp.ExceptionClassName = ptr(rerror.class)
		resp.ErrorMsg = ptr(rerror.msg)
		return ic.respond(resp, nil)
	}
	resp.Status = pb.RpcResponseHeaderProto_SUCCESS.Enum()
	return ic.respond(resp, out)
}

// srcOf is a request's src field, the path most calls act on.
func srcOf(req proto.Message) string {
	m := req.ProtoReflect()
	if f := m.Descriptor().Fields().ByName("src"); f != nil {
		return m.Get(f).String()
	}
	return ""
}

type handler struct {
	req   func() proto.Message
	serve func(ic *ipcConn, req proto.Message) (proto.Message, *remoteError)
}

// on makes a handler of a typed function.
func on[Req proto.Message, Resp proto.Message](newReq func() Req, f func(ic *ipcConn, req Req) (Resp, *remoteError)) handler {
	return handler{
		req: func() proto.Message { return newReq() },
		serve: func(ic *ipcConn, req proto.Message) (proto.Message, *remoteError) {
			out, err := f(ic, req.(Req))
			if err != nil {
				return nil, err
			}
			return out, nil
		},
	}
}

var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		"getServerDefaults": on(func() *pb.GetServerDefaultsRequestProto { return &pb.GetServerDefaultsRequestProto{} }, (*ipcConn).getServerDefaults),
		"getFileInfo":       on(func() *pb.GetFileInfoRequestProto { return &pb.GetFileInfoRequestProto{} }, (*ipcConn).getFileInfo),
		"getListing":        on(func() *pb.GetListingRequestProto { return &pb.GetListingRequestProto{} }, (*ipcConn).getListing),
		"mkdirs":            on(func() *pb.MkdirsRequestProto { return &pb.MkdirsRequestProto{} }, (*ipcConn).mkdirs),
		"create":            on(func() *pb.CreateRequestProto { return &pb.CreateRequestProto{} }, (*ipcConn).create),
		"append":            on(func() *pb.AppendRequestProto { return &pb.AppendRequestProto{} }, (*ipcConn).appendFile),
		"addBlock":          on(func() *pb.AddBlockRequestProto { return &pb.AddBlockRequestProto{} }, (*ipcConn).addBlock),
		"updateBlockForPipeline": on(func() *pb.UpdateBlockForPipelineRequestProto { return &pb.UpdateBlockForPipelineRequestProto{} },
			(*ipcConn).updateBlockForPipeline),
		"complete":          on(func() *pb.CompleteRequestProto { return &pb.CompleteRequestProto{} }, (*ipcConn).complete),
		"rename2":           on(func() *pb.Rename2RequestProto { return &pb.Rename2RequestProto{} }, (*ipcConn).rename2),
		"delete":            on(func() *pb.DeleteRequestProto { return &pb.DeleteRequestProto{} }, (*ipcConn).deletePath),
		"getBlockLocations": on(func() *pb.GetBlockLocationsRequestProto { return &pb.GetBlockLocationsRequestProto{} }, (*ipcConn).getBlockLocations),
		"renewLease":        on(func() *pb.RenewLeaseRequestProto { return &pb.RenewLeaseRequestProto{} }, (*ipcConn).renewLease),
	}
}

func (ic *ipcConn) getServerDefaults(_ *pb.GetServerDefaultsRequestProto) (*pb.GetServerDefaultsResponseProto, *remoteError) {
	return &pb.GetServerDefaultsResponseProto{ServerDefaults: &pb.FsServerDefaultsProto{
		BlockSize: ptr(uint64(ic.c.opts.BlockSize)), BytesPerChecksum: ptr(uint32(512)), WritePacketSize: ptr(uint32(64 << 10)),
		Replication: ptr(uint32(min(3, len(ic.c.dns)))), FileBufferSize: ptr(uint32(4096)), EncryptDataTransfer: ptr(false),
		ChecksumType: pb.ChecksumTypeProto_CHECKSUM_CRC32C.Enum(),
	}}, nil
}

func (ic *ipcConn) getFileInfo(req *pb.GetFileInfoRequestProto) (*pb.GetFileInfoResponseProto, *remoteError) {
	ns := ic.c.ns
	node, _, err := ns.lookup(req.GetSrc())
	if err != nil {
		return nil, err
	}
	if node == nil {
		return &pb.GetFileInfoResponseProto{}, nil // no status: not found
	}
	return &pb.GetFileInfoResponseProto{Fs: ns.status(node, "")}, nil
}

func (ic *ipcConn) getListing(req *pb.GetListingRequestProto) (*pb.GetListingResponseProto, *remoteError) {
	ns := ic.c.ns
	node, _, err := ns.lookup(req.GetSrc())
	if err != nil {
		return nil, err
	}
	if node == nil {
		return &pb.GetListingResponseProto{}, nil
	}
	if !node.dir {
		return &pb.GetListingResponseProto{DirList: &pb.DirectoryListingProto{
			PartialListing: []*pb.HdfsFileStatusProto{ns.status(node, "")}, RemainingEntries: ptr(uint32(0))}}, nil
	}
	after := string(req.GetStartAfter())
	var page []*pb.HdfsFileStatusProto
	remaining := 0
	for _, name := range sortedChildren(node) {
		if name <= after {
			continue
		}
		if len(page) == listingPageLimit {
			remaining++
			continue
		}
		page = append(page, ns.status(node.children[name], name))
	}
	return &pb.GetListingResponseProto{DirList: &pb.DirectoryListingProto{PartialListing: page, RemainingEntries: ptr(uint32(remaining))}}, nil
}

func (ic *ipcConn) mkdirs(req *pb.MkdirsRequestProto) (*pb.MkdirsResponseProto, *remoteError) {
	ns := ic.c.ns
	node, parent, err := ns.lookup(req.GetSrc())
	if err != nil {
		return nil, err
	}
	switch {
	case node != nil && node.dir:
		return &pb.MkdirsResponseProto{Result: ptr(true)}, nil
	case node != nil:
		return nil, rerr(exExists, "path is not a directory: %s", req.GetSrc())
	case parent == nil && !req.GetCreateParent():
		return nil, rerr(exNotFound, "parent directory doesn't exist: %s", req.GetSrc())
	}
	if err := ns.mkdirsLocked(req.GetSrc(), ic.user); err != nil {
		return nil, err
	}
	return &pb.MkdirsResponseProto{Result: ptr(true)}, nil
}

// Create flags (CreateFlag in Hadoop).
const (
	flagCreate    = 1
	flagOverwrite = 2
	flagAppend    = 4
)

func (ic *ipcConn) create(req *pb.CreateRequestProto) (*pb.CreateResponseProto, *remoteError) {
	ns := ic.c.ns
	src, flag := req.GetSrc(), req.GetCreateFlag()
	if flag&flagCreate == 0 || flag&flagAppend != 0 {
		return nil, rerr(exIllegalArgument, "create flag %d is not supported", flag)
	}
	if req.GetReplication() < 1 || req.GetBlockSize() < 512 || req.GetBlockSize()%512 != 0 {
		return nil, rerr(exIO, "replication %d, block size %d", req.GetReplication(), req.GetBlockSize())
	}
	if req.GetClientName() == "" {
		return nil, rerr(exIllegalArgument, "create without a client name")
	}
	node, parent, err := ns.lookup(src)
	if err != nil {
		return nil, err
	}
	if src == "/" {
		return nil, rerr(exExists, "/ is a directory")
	}
	switch {
	case node != nil && node.dir:
		return nil, rerr(exExists, "%s already exists as a directory", src)
	case node != nil && node.uc:
		return nil, rerr(exBeingCreated, "failed to create %s for %s: it is being created by %s", src, req.GetClientName(), node.holder)
	case node != nil && flag&flagOverwrite == 0:
		return nil, rerr(exExists, "%s for client %s already exists", src, req.GetClientName())
	}
	if parent == nil {
		if !req.GetCreateParent() {
			return nil, rerr(exNotFound, "parent directory doesn't exist: %s", src)
		}
		if err := ns.mkdirsLocked(parentOf(src), ic.user); err != nil {
			return nil, err
		}
		_, parent, _ = ns.lookup(src)
	}
	if node != nil {
		ns.dropBlocks(node)
	}
	ns.nextID++
	f := &inode{name: baseOf(src), mtime: time.Now(), perm: req.GetMasked().GetPerm(), owner: ic.user, fileID: ns.nextID,
		uc: true, holder: req.GetClientName(), replication: req.GetReplication(), blockSize: req.GetBlockSize()}
	parent.children[f.name] = f
	return &pb.CreateResponseProto{Fs: ns.status(f, "")}, nil
}

func (ic *ipcConn) appendFile(req *pb.AppendRequestProto) (*pb.AppendResponseProto, *remoteError) {
	ns := ic.c.ns
	node, _, err := ns.lookup(req.GetSrc())
	if err != nil {
		return nil, err
	}
	if node == nil || node.dir {
		return nil, rerr(exNotFound, "file does not exist: %s", req.GetSrc())
	}
	if node.uc {
		return nil, rerr(exBeingCreated, "%s is being written by %s", req.GetSrc(), node.holder)
	}
	node.uc, node.holder = true, req.GetClientName()
	resp := &pb.AppendResponseProto{Stat: ns.status(node, "")}
	if n := len(node.blocks); n > 0 && uint64(len(node.blocks[n-1].data)) < node.blockSize {
		b := node.blocks[n-1]
		b.finalized = false // reopened for the append pipeline
		resp.Block = ns.located(b, node.length()-uint64(len(b.data)))
	}
	return resp, nil
}

func (ic *ipcConn) addBlock(req *pb.AddBlockRequestProto) (*pb.AddBlockResponseProto, *remoteError) {
	ns := ic.c.ns
	f, err := ns.heldFile(req.GetSrc(), req.GetClientName(), req.GetFileId())
	if err != nil {
		return nil, err
	}
	if err := checkLast(f, req.GetSrc(), req.GetPrevious()); err != nil {
		return nil, err
	}
	if n := len(f.blocks); n > 0 && uint64(len(f.blocks[n-1].data)) != f.blockSize {
		return nil, rerr(exIO, "%s: a new block after a last block of %d bytes (block size %d)", req.GetSrc(),
			len(f.blocks[n-1].data), f.blockSize)
	}
	offset := f.length()
	ns.nextID++
	b := &block{id: 1<<30 + ns.nextID, gs: 1001, file: f}
	for i := range min(int(f.replication), len(ns.c.dns)) {
		b.locs = append(b.locs, ns.c.dns[(ns.nextDN+i)%len(ns.c.dns)])
	}
	ns.nextDN++
	f.blocks = append(f.blocks, b)
	ns.blocks[b.id] = b
	f.mtime = time.Now()
	return &pb.AddBlockResponseProto{Block: ns.located(b, offset)}, nil
}

func (ic *ipcConn) updateBlockForPipeline(req *pb.UpdateBlockForPipelineRequestProto) (*pb.UpdateBlockForPipelineResponseProto, *remoteError) {
	ns := ic.c.ns
	eb := req.GetBlock()
	b := ns.blocks[eb.GetBlockId()]
	if b == nil || eb.GetPoolId() != poolID || eb.GetGenerationStamp() != b.gs {
		return nil, rerr(exIO, "unknown block %s/%d/%d", eb.GetPoolId(), eb.GetBlockId(), eb.GetGenerationStamp())
	}
	if !b.file.uc || b.file.holder != req.GetClientName() {
		return nil, rerr(exLease, "block %d's file is not held by %s", b.id, req.GetClientName())
	}
	// A new generation stamp for a pipeline recovery; it takes effect only
	// with updatePipeline, which the client never sends after it.
	lb := ns.located(b, 0)
	lb.B.GenerationStamp = ptr(b.gs + 1)
	return &pb.UpdateBlockForPipelineResponseProto{Block: lb}, nil
}

func (ic *ipcConn) complete(req *pb.CompleteRequestProto) (*pb.CompleteResponseProto, *remoteError) {
	ns := ic.c.ns
	delay := ic.c.replicationDelay()
	node, _, err := ns.lookup(req.GetSrc())
	if err != nil {
		return nil, err
	}
	if node != nil && !node.dir && !node.uc && (req.GetFileId() == 0 || node.fileID == req.GetFileId()) {
		return &pb.CompleteResponseProto{Result: ptr(true)}, nil // completed by an earlier call
	}
	f, err := ns.heldFile(req.GetSrc(), req.GetClientName(), req.GetFileId())
	if err != nil {
		return nil, err
	}
	if err := checkLast(f, req.GetSrc(), req.GetLast()); err != nil {
		return nil, err
	}
	if n := len(f.blocks); n > 0 && time.Since(f.blocks[n-1].finalizedAt) < delay {
		return &pb.CompleteResponseProto{Result: ptr(false)}, nil // replicas not reported yet
	}
	f.uc, f.holder = false, ""
	f.mtime = time.Now()
	return &pb.CompleteResponseProto{Result: ptr(true)}, nil
}

func (ic *ipcConn) rename2(req *pb.Rename2RequestProto) (*pb.Rename2ResponseProto, *remoteError) {
	ns := ic.c.ns
	src, dst := req.GetSrc(), req.GetDst()
	node, sparent, err := ns.lookup(src)
	if err != nil {
		return nil, err
	}
	if node == nil || src == "/" {
		return nil, rerr(exNotFound, "rename source %s is not found", src)
	}
	old, dparent, err := ns.lookup(dst)
	if err != nil {
		return nil, err
	}
	if dparent == nil && dst != "/" {
		return nil, rerr(exNotFound, "rename destination parent %s not found", parentOf(dst))
	}
	if dst == src || len(dst) > len(src) && dst[:len(src)+1] == src+"/" {
		return nil, rerr(exIO, "rename %s to %s: the destination is the source or inside it", src, dst)
	}
	if old != nil {
		switch {
		case !req.GetOverwriteDest():
			return nil, rerr(exExists, "rename destination %s already exists", dst)
		case old.dir != node.dir:
			return nil, rerr(exIO, "rename %s to %s: source and destination must both be files or both directories", src, dst)
		case old.dir && len(old.children) > 0:
			return nil, rerr(exIO, "rename destination directory %s is not empty", dst)
		}
		ns.dropBlocks(old)
	}
	delete(sparent.children, node.name)
	node.name = baseOf(dst)
	dparent.children[node.name] = node
	return &pb.Rename2ResponseProto{}, nil
}

func (ic *ipcConn) deletePath(req *pb.DeleteRequestProto) (*pb.DeleteResponseProto, *remoteError) {
	ns := ic.c.ns
	node, parent, err := ns.lookup(req.GetSrc())
	if err != nil {
		return nil, err
	}
	if req.GetSrc() == "/" {
		return nil, rerr(exIO, "cannot delete /")
	}
	if node == nil {
		return &pb.DeleteResponseProto{Result: ptr(false)}, nil
	}
	if node.dir && len(node.children) > 0 && !req.GetRecursive() {
		return nil, rerr(exNotEmpty, "%s is non empty': Directory is not empty", req.GetSrc())
	}
	ns.dropBlocks(node)
	delete(parent.children, node.name)
	return &pb.DeleteResponseProto{Result: ptr(true)}, nil
}

func (ic *ipcConn) getBlockLocations(req *pb.GetBlockLocationsRequestProto) (*pb.GetBlockLocationsResponseProto, *remoteError) {
	ns := ic.c.ns
	node, _, err := ns.lookup(req.GetSrc())
	if err != nil {
		return nil, err
	}
	if node == nil || node.dir {
		return nil, rerr(exNotFound, "file does not exist: %s", req.GetSrc())
	}
	lbs := &pb.LocatedBlocksProto{FileLength: ptr(node.length()), UnderConstruction: ptr(node.uc),
		IsLastBlockComplete: ptr(!node.uc)}
	var off uint64
	for _, b := range node.blocks {
		end := off + uint64(len(b.data))
		if end > req.GetOffset() && off < req.GetOffset()+req.GetLength() {
			lbs.Blocks = append(lbs.Blocks, ns.located(b, off))
		}
		off = end
	}
	return &pb.GetBlockLocationsResponseProto{Locations: lbs}, nil
}

func (ic *ipcConn) renewLease(req *pb.RenewLeaseRequestProto) (*pb.RenewLeaseResponseProto, *remoteError) {
	if req.GetClientName() == "" {
		return nil, rerr(exIllegalArgument, "renewLease without a client name")
	}
	return &pb.RenewLeaseResponseProto{}, nil
}

// dropBlocks forgets the blocks of a removed file or tree.
func (ns *namespace) dropBlocks(node *inode) {
	for _, b := range node.blocks {
		delete(ns.blocks, b.id)
	}
	for _, child := range node.children {
		ns.dropBlocks(child)
	}
}

func parentOf(p string) string {
	i := bytes.LastIndexByte([]byte(p), '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

func baseOf(p string) string {
	return p[bytes.LastIndexByte([]byte(p), '/')+1:]
}

var _ = fmt.Sprint
