package hdfstest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/sluicehq/sluice/integration/hdfstest/hdfspb"
)

// Data-transfer constants the client must send.
const (
	dataTransferVersion = 28
	opWriteBlock        = 80
	opReadBlock         = 81
	readPacketData      = 64 << 10
	bytesPerChecksum    = 512
	maxPacket           = 16 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// dataNode is one DataNode: block data lives in the namespace's blocks,
// which name the DataNodes that hold them.
type dataNode struct {
	c    *Cluster
	uuid string
	srv  *server
}

func (dn *dataNode) info() *pb.DatanodeInfoProto {
	host, portText, _ := net.SplitHostPort(dn.srv.addr)
	port, _ := strconv.Atoi(portText)
	return &pb.DatanodeInfoProto{
		Id: &pb.DatanodeIDProto{IpAddr: ptr(host), HostName: ptr("localhost"), DatanodeUuid: ptr(dn.uuid),
			XferPort: ptr(uint32(port)), InfoPort: ptr(uint32(0)), IpcPort: ptr(uint32(0))},
		Capacity: ptr(uint64(1 << 40)), Remaining: ptr(uint64(1 << 40)),
	}
}

// readDelimited reads one varint-delimited message.
func readDelimited(r *bufio.Reader, m proto.Message) error {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return err
	}
	if n > maxPacket {
		return protocolErr("message of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return err
	}
	if err := proto.Unmarshal(buf, m); err != nil {
		return protocolErr("%T: %v", m, err)
	}
	if err := proto.CheckInitialized(m); err != nil {
		return protocolErr("%T: %v", m, err)
	}
	return nil
}

func writeDelimited(w io.Writer, m proto.Message) error {
	raw, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.Write(protowire.AppendBytes(nil, raw))
	return err
}

func (dn *dataNode) serve(conn net.Conn) {
	r := bufio.NewReader(conn)
	var hdr [3]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return
	}
	var err error
	switch version := binary.BigEndian.Uint16(hdr[:2]); {
	case version != dataTransferVersion:
		err = protocolErr("data transfer version %d, want %d", version, dataTransferVersion)
	case hdr[2] == opWriteBlock:
		err = dn.writeBlock(conn, r)
	case hdr[2] == opReadBlock:
		err = dn.readBlock(conn, r)
	default:
		err = protocolErr("op code %d is not served", hdr[2])
		writeDelimited(conn, &pb.BlockOpResponseProto{Status: pb.Status_ERROR_UNSUPPORTED.Enum(), Message: ptr(err.Error())})
	}
	if err != nil && (errors.Is(err, errProtocol) || !isClosed(err)) {
		dn.c.opts.Logf("datanode %s: %v", dn.uuid, err)
	}
}

// readOp reads an operation and finds its block, refusing the operation
// when the block is not this DataNode's.
func readOp[Op interface {
	proto.Message
	GetHeader() *pb.ClientOperationHeaderProto
}](dn *dataNode, conn net.Conn, r *bufio.Reader, op Op) (*block, error) {
	if err := readDelimited(r, op); err != nil {
		return nil, err
	}
	b, err := dn.opBlock(op.GetHeader())
	if err != nil {
		return nil, dn.refuse(conn, pb.Status_ERROR, err)
	}
	return b, nil
}

// opBlock finds the block an operation names, checking its identity.
func (dn *dataNode) opBlock(h *pb.ClientOperationHeaderProto) (*block, error) {
	eb := h.GetBaseHeader().GetBlock()
	ns := dn.c.ns
	ns.mu.Lock()
	defer ns.mu.Unlock()
	b := ns.blocks[eb.GetBlockId()]
	if b == nil || eb.GetPoolId() != poolID || eb.GetGenerationStamp() != b.gs {
		return nil, protocolErr("unknown block %s/%d/%d", eb.GetPoolId(), eb.GetBlockId(), eb.GetGenerationStamp())
	}
	held := false
	for _, d := range b.locs {
		held = held || d == dn
	}
	if !held {
		return nil, protocolErr("block %d is not on %s", b.id, dn.uuid)
	}
	return b, nil
}

func (dn *dataNode) refuse(conn net.Conn, status pb.Status, err error) error {
	writeDelimited(conn, &pb.BlockOpResponseProto{Status: status.Enum(), FirstBadLink: ptr(""), Message: ptr(err.Error())})
	return err
}

// writeBlock receives a block from a client: the op, then packets, each
// verified and acknowledged, up to the empty last packet.
func (dn *dataNode) writeBlock(conn net.Conn, r *bufio.Reader) error {
	op := &pb.OpWriteBlockProto{}
	b, err := readOp(dn, conn, r, op)
	if err != nil {
		return err
	}
	ns := dn.c.ns
	ns.mu.Lock()
	holder, size, first := b.file.holder, uint64(len(b.data)), b.locs[0]
	targets := b.locs[1:]
	ns.mu.Unlock()
	switch {
	case op.GetHeader().GetClientName() != holder:
		err = protocolErr("client %q writes block %d held by %q", op.GetHeader().GetClientName(), b.id, holder)
	case first != dn:
		err = protocolErr("block %d's pipeline starts at %s, not %s", b.id, first.uuid, dn.uuid)
	case len(op.GetTargets()) != len(targets) || int(op.GetPipelineSize()) != len(targets):
		err = protocolErr("block %d: %d targets (pipeline size %d), want %d", b.id, len(op.GetTargets()), op.GetPipelineSize(), len(targets))
	case op.GetRequestedChecksum().GetType() != pb.ChecksumTypeProto_CHECKSUM_CRC32C || op.GetRequestedChecksum().GetBytesPerChecksum() != bytesPerChecksum:
		err = protocolErr("checksum %v per %d bytes, want CRC32C per %d", op.GetRequestedChecksum().GetType(),
			op.GetRequestedChecksum().GetBytesPerChecksum(), bytesPerChecksum)
	}
	if err == nil {
		for i, t := range op.GetTargets() {
			if t.GetId().GetDatanodeUuid() != targets[i].uuid {
				err = protocolErr("block %d: target %d is %s, want %s", b.id, i, t.GetId().GetDatanodeUuid(), targets[i].uuid)
			}
		}
	}
	if err == nil {
		switch op.GetStage() {
		case pb.OpWriteBlockProto_PIPELINE_SETUP_CREATE:
			if size != 0 || op.GetMinBytesRcvd() != 0 || op.GetLatestGenerationStamp() != 0 {
				err = protocolErr("create pipeline for block %d holding %d bytes (min bytes %d, gs %d)", b.id, size,
					op.GetMinBytesRcvd(), op.GetLatestGenerationStamp())
			}
		case pb.OpWriteBlockProto_PIPELINE_SETUP_APPEND:
			if op.GetMinBytesRcvd() != size || op.GetMaxBytesRcvd() != size || op.GetLatestGenerationStamp() != b.gs {
				err = protocolErr("append pipeline for block %d of %d bytes: min %d max %d gs %d", b.id, size,
					op.GetMinBytesRcvd(), op.GetMaxBytesRcvd(), op.GetLatestGenerationStamp())
			}
		default:
			err = protocolErr("block construction stage %v is not served", op.GetStage())
		}
	}
	if err != nil {
		return dn.refuse(conn, pb.Status_ERROR, err)
	}
	if err := writeDelimited(conn, &pb.BlockOpResponseProto{Status: pb.Status_SUCCESS.Enum(), FirstBadLink: ptr("")}); err != nil {
		return err
	}
	drop := dn.c.takeDrop()
	var received int64
	replies := make([]pb.Status, 1+len(targets))
	nextSeqno := int64(-2) // the first packet sets it
	for {
		hdr, sums, data, err := readPacket(r)
		if err != nil {
			return err
		}
		if hdr.GetSeqno() == -1 { // heartbeat
			if hdr.GetDataLen() != 0 || hdr.GetLastPacketInBlock() {
				return protocolErr("heartbeat with data or last-packet flag")
			}
			if err := writeDelimited(conn, &pb.PipelineAckProto{Seqno: ptr(int64(-1)), Reply: replies}); err != nil {
				return err
			}
			continue
		}
		if nextSeqno != -2 && hdr.GetSeqno() != nextSeqno || hdr.GetSeqno() < 0 {
			return protocolErr("block %d: packet seqno %d, want %d", b.id, hdr.GetSeqno(), nextSeqno)
		}
		nextSeqno = hdr.GetSeqno() + 1
		ns.mu.Lock()
		have := int64(len(b.data))
		ns.mu.Unlock()
		if hdr.GetOffsetInBlock() != have {
			return protocolErr("block %d: packet at offset %d, block holds %d", b.id, hdr.GetOffsetInBlock(), have)
		}
		for i := 0; i*bytesPerChecksum < len(data); i++ {
			chunk := data[i*bytesPerChecksum : min((i+1)*bytesPerChecksum, len(data))]
			if crc32.Checksum(chunk, castagnoli) != binary.BigEndian.Uint32(sums[4*i:]) {
				err := protocolErr("block %d: bad checksum of chunk %d of packet %d", b.id, i, hdr.GetSeqno())
				writeDelimited(conn, &pb.PipelineAckProto{Seqno: ptr(hdr.GetSeqno()), Reply: []pb.Status{pb.Status_ERROR_CHECKSUM}})
				return err
			}
		}
		if hdr.GetLastPacketInBlock() && len(data) > 0 {
			return protocolErr("block %d: last packet carries %d bytes", b.id, len(data))
		}
		received += int64(len(data))
		if drop >= 0 && received > drop {
			return nil // the DataNode dies: no store, no ack, connection closed
		}
		ns.mu.Lock()
		if ns.blocks[b.id] != b {
			ns.mu.Unlock()
			return protocolErr("block %d was deleted while being written", b.id)
		}
		if uint64(len(b.data))+uint64(len(data)) > b.file.blockSize {
			ns.mu.Unlock()
			return protocolErr("block %d grows past the block size %d", b.id, b.file.blockSize)
		}
		b.data = append(b.data, data...)
		if hdr.GetLastPacketInBlock() {
			b.finalized, b.finalizedAt = true, time.Now()
		}
		ns.mu.Unlock()
		if err := writeDelimited(conn, &pb.PipelineAckProto{Seqno: ptr(hdr.GetSeqno()), Reply: replies}); err != nil {
			return err
		}
		if hdr.GetLastPacketInBlock() {
			return nil
		}
	}
}

// readPacket reads one data packet: total length (4 bytes: itself, the
// checksums and the data), header length (2 bytes), the header, the
// checksums (4 bytes per chunk) and the data.
func readPacket(r *bufio.Reader) (*pb.PacketHeaderProto, []byte, []byte, error) {
	var pre [6]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, nil, nil, err
	}
	total := binary.BigEndian.Uint32(pre[:4])
	hlen := binary.BigEndian.Uint16(pre[4:])
	if total < 4 || total > maxPacket {
		return nil, nil, nil, protocolErr("packet length %d", total)
	}
	raw := make([]byte, hlen)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, nil, nil, err
	}
	hdr := &pb.PacketHeaderProto{}
	if err := proto.Unmarshal(raw, hdr); err != nil {
		return nil, nil, nil, protocolErr("packet header: %v", err)
	}
	if err := proto.CheckInitialized(hdr); err != nil {
		return nil, nil, nil, protocolErr("packet header: %v", err)
	}
	n := int(hdr.GetDataLen())
	sums := 4 * ((n + bytesPerChecksum - 1) / bytesPerChecksum)
	if n < 0 || int(total) != 4+sums+n {
		return nil, nil, nil, protocolErr("packet of %d bytes for %d data bytes and %d checksum bytes", total, n, sums)
	}
	body := make([]byte, sums+n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, nil, nil, err
	}
	return hdr, body[:sums], body[sums:], nil
}

// readBlock sends a range of a block from the chunk boundary at or before
// the requested offset, in packets with CRC32C checksums, then an empty
// last packet.
func (dn *dataNode) readBlock(conn net.Conn, r *bufio.Reader) error {
	op := &pb.OpReadBlockProto{}
	b, err := readOp(dn, conn, r, op)
	if err != nil {
		return err
	}
	ns := dn.c.ns
	ns.mu.Lock()
	data := b.data[:len(b.data):len(b.data)] // acknowledged bytes; appends never change them
	ns.mu.Unlock()
	off, n := op.GetOffset(), op.GetLen()
	if off > uint64(len(data)) || off+n > uint64(len(data)) {
		return dn.refuse(conn, pb.Status_ERROR_INVALID,
			protocolErr("read of block %d at %d+%d, block holds %d", b.id, off, n, len(data)))
	}
	start := off - off%bytesPerChecksum
	w := bufio.NewWriter(conn)
	if err := writeDelimited(w, &pb.BlockOpResponseProto{Status: pb.Status_SUCCESS.Enum(),
		ReadOpChecksumInfo: &pb.ReadOpChecksumInfoProto{
			Checksum:    &pb.ChecksumProto{Type: pb.ChecksumTypeProto_CHECKSUM_CRC32C.Enum(), BytesPerChecksum: ptr(uint32(bytesPerChecksum))},
			ChunkOffset: ptr(start),
		}}); err != nil {
		return err
	}
	seqno := int64(0)
	for pos := start; pos < off+n; {
		end := min(pos+readPacketData, off+n)
		if err := writePacket(w, seqno, int64(pos), false, data[pos:end]); err != nil {
			return err
		}
		seqno++
		pos = end
	}
	if err := writePacket(w, seqno, int64(off+n), true, nil); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// Wait for the client to hang up (or send its read status) so that
	// closing here cannot cut what it has not read yet.
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	io.Copy(io.Discard, r)
	return nil
}

func writePacket(w io.Writer, seqno, offset int64, last bool, data []byte) error {
	hdr, err := proto.Marshal(&pb.PacketHeaderProto{OffsetInBlock: ptr(offset), Seqno: ptr(seqno),
		LastPacketInBlock: ptr(last), DataLen: ptr(int32(len(data)))})
	if err != nil {
		return err
	}
	chunks := (len(data) + bytesPerChecksum - 1) / bytesPerChecksum
	out := binary.BigEndian.AppendUint32(nil, uint32(4+4*chunks+len(data)))
	out = binary.BigEndian.AppendUint16(out, uint16(len(hdr)))
	out = append(out, hdr...)
	for i := range chunks {
		out = binary.BigEndian.AppendUint32(out, crc32.Checksum(data[i*bytesPerChecksum:min((i+1)*bytesPerChecksum, len(data))], castagnoli))
	}
	out = append(out, data...)
	_, err = w.Write(out)
	return err
}
