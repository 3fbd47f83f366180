package hdfstest

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	pb "github.com/sluicehq/sluice/integration/hdfstest/hdfspb"
)

const poolID = "BP-sluice-hdfstest"

// Exception classes the client maps to Go errors.
const (
	exIO              = "java.io.IOException"
	exNotFound        = "java.io.FileNotFoundException"
	exExists          = "org.apache.hadoop.fs.FileAlreadyExistsException"
	exBeingCreated    = "org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException"
	exNotEmpty        = "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException"
	exParentNotDir    = "org.apache.hadoop.fs.ParentNotDirectoryException"
	exLease           = "org.apache.hadoop.hdfs.server.namenode.LeaseExpiredException"
	exIllegalArgument = "org.apache.hadoop.HadoopIllegalArgumentException"
	exStandby         = "org.apache.hadoop.ipc.StandbyException"
	exNoSuchMethod    = "org.apache.hadoop.ipc.RpcNoSuchMethodException"
)

// remoteError is an exception the NameNode answers a call with.
type remoteError struct {
	class, msg string
}

func (e *remoteError) Error() string { return e.class + ": " + e.msg }

func rerr(class, format string, args ...any) *remoteError {
	return &remoteError{class: class, msg: fmt.Sprintf(format, args...)}
}

// inode is a directory or a file.
type inode struct {
	name     string
	dir      bool
	children map[string]*inode // directories
	mtime    time.Time
	perm     uint32
	owner    string
	fileID   uint64

	// Files.
	blocks      []*block
	uc          bool   // under construction
	holder      string // lease holder while under construction
	replication uint32
	blockSize   uint64
}

// block is one block of a file: the bytes its DataNodes acknowledged.
type block struct {
	id, gs      uint64
	data        []byte
	finalized   bool // the pipeline received its last packet
	finalizedAt time.Time
	committed   bool // a client named it, with its length, as a complete block
	locs        []*dataNode
	file        *inode
}

type namespace struct {
	c      *Cluster
	mu     sync.Mutex
	root   *inode
	blocks map[uint64]*block
	nextID uint64
	nextDN int // where the next block's pipeline starts
}

func newNamespace(c *Cluster) *namespace {
	return &namespace{c: c, root: &inode{name: "", dir: true, children: map[string]*inode{}, mtime: time.Now(), perm: 0o755, fileID: 16385},
		blocks: map[uint64]*block{}, nextID: 16386}
}

// split checks a path and returns its components.
func split(p string) ([]string, *remoteError) {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return nil, rerr(exIllegalArgument, "invalid path name %q", p)
	}
	if p == "/" {
		return nil, nil
	}
	return strings.Split(p[1:], "/"), nil
}

// lookup finds the inode at p and its parent; either may be nil.
func (n *namespace) lookup(p string) (node, parent *inode, err *remoteError) {
	parts, err := split(p)
	if err != nil {
		return nil, nil, err
	}
	cur := n.root
	for i, part := range parts {
		if !cur.dir {
			return nil, nil, rerr(exParentNotDir, "parent path is not a directory: %s", "/"+strings.Join(parts[:i], "/"))
		}
		next := cur.children[part]
		if next == nil {
			if i == len(parts)-1 {
				return nil, cur, nil
			}
			return nil, nil, nil
		}
		if i == len(parts)-1 {
			return next, cur, nil
		}
		cur = next
	}
	return n.root, nil, nil
}

func (n *namespace) mkdirsLocked(p string, owner string) *remoteError {
	parts, err := split(p)
	if err != nil {
		return err
	}
	cur := n.root
	for i, part := range parts {
		next := cur.children[part]
		if next == nil {
			n.nextID++
			next = &inode{name: part, dir: true, children: map[string]*inode{}, mtime: time.Now(), perm: 0o755, owner: owner, fileID: n.nextID}
			cur.children[part] = next
		} else if !next.dir {
			return rerr(exParentNotDir, "not a directory: /%s", strings.Join(parts[:i+1], "/"))
		}
		cur = next
	}
	return nil
}

func (f *inode) length() uint64 {
	var n uint64
	for _, b := range f.blocks {
		n += uint64(len(b.data))
	}
	return n
}

func (n *namespace) status(node *inode, name string) *pb.HdfsFileStatusProto {
	st := &pb.HdfsFileStatusProto{
		Path:             []byte(name),
		Permission:       &pb.FsPermissionProto{Perm: ptr(node.perm)},
		Owner:            ptr(node.owner),
		Group:            ptr("supergroup"),
		ModificationTime: ptr(uint64(node.mtime.UnixMilli())),
		AccessTime:       ptr(uint64(node.mtime.UnixMilli())),
		FileId:           ptr(node.fileID),
	}
	if node.dir {
		st.FileType = pb.HdfsFileStatusProto_IS_DIR.Enum()
		st.Length = ptr(uint64(0))
		st.ChildrenNum = ptr(int32(len(node.children)))
	} else {
		st.FileType = pb.HdfsFileStatusProto_IS_FILE.Enum()
		st.Length = ptr(node.length())
		st.BlockReplication = ptr(node.replication)
		st.Blocksize = ptr(node.blockSize)
		st.ChildrenNum = ptr(int32(0))
	}
	return st
}

func (n *namespace) located(b *block, offset uint64) *pb.LocatedBlockProto {
	lb := &pb.LocatedBlockProto{
		B:          &pb.ExtendedBlockProto{PoolId: ptr(poolID), BlockId: ptr(b.id), GenerationStamp: ptr(b.gs), NumBytes: ptr(uint64(len(b.data)))},
		Offset:     ptr(offset),
		Corrupt:    ptr(false),
		BlockToken: &pb.TokenProto{Identifier: []byte{}, Password: []byte{}, Kind: ptr(""), Service: ptr("")},
	}
	for _, dn := range b.locs {
		lb.Locs = append(lb.Locs, dn.info())
		lb.IsCached = append(lb.IsCached, false)
		lb.StorageTypes = append(lb.StorageTypes, pb.StorageTypeProto_DISK)
		lb.StorageIDs = append(lb.StorageIDs, "DS-"+dn.uuid)
	}
	return lb
}

// file finds a file under construction held by client.
func (n *namespace) heldFile(src, client string, fileID uint64) (*inode, *remoteError) {
	node, _, err := n.lookup(src)
	if err != nil {
		return nil, err
	}
	if node == nil || node.dir {
		return nil, rerr(exNotFound, "file does not exist: %s", src)
	}
	if fileID != 0 && node.fileID != fileID {
		return nil, rerr(exNotFound, "file %s has id %d, not %d", src, node.fileID, fileID)
	}
	if !node.uc {
		return nil, rerr(exLease, "file is not open for writing: %s", src)
	}
	if node.holder != client {
		return nil, rerr(exLease, "%s is held by %s, not %s", src, node.holder, client)
	}
	return node, nil
}

// checkLast checks the client's view of a file's last block against the
// NameNode's: same block, same generation, all its bytes acknowledged; it
// then commits the block. A client may name no last block once it was
// committed (a close retried after "not yet replicated"). A block that
// was allocated but never written is committed empty.
func checkLast(f *inode, src string, last *pb.ExtendedBlockProto) *remoteError {
	if len(f.blocks) == 0 {
		if last != nil {
			return rerr(exIO, "%s has no blocks, client names block %d", src, last.GetBlockId())
		}
		return nil
	}
	b := f.blocks[len(f.blocks)-1]
	if last == nil {
		if !b.committed {
			return rerr(exIO, "%s: client names no last block, the file has uncommitted block %d", src, b.id)
		}
		return nil
	}
	if last.GetPoolId() != poolID || last.GetBlockId() != b.id || last.GetGenerationStamp() != b.gs {
		return rerr(exIO, "%s: client's last block %s/%d/%d is not %s/%d/%d", src, last.GetPoolId(), last.GetBlockId(),
			last.GetGenerationStamp(), poolID, b.id, b.gs)
	}
	if last.GetNumBytes() != uint64(len(b.data)) {
		return rerr(exIO, "%s: client says block %d holds %d bytes, DataNodes acknowledged %d", src, b.id, last.GetNumBytes(), len(b.data))
	}
	if !b.finalized {
		if len(b.data) > 0 {
			return rerr(exIO, "%s: block %d was not finalized by its pipeline", src, b.id)
		}
		b.finalized, b.finalizedAt = true, time.Now()
	}
	b.committed = true
	return nil
}

func (n *namespace) files() map[string]FileInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]FileInfo{}
	var walk func(p string, node *inode)
	walk = func(p string, node *inode) {
		for name, child := range node.children {
			cp := p + "/" + name
			if child.dir {
				out[cp] = FileInfo{Dir: true}
				walk(cp, child)
			} else {
				out[cp] = FileInfo{Size: int64(child.length()), UnderConstruction: child.uc}
			}
		}
	}
	walk("", n.root)
	return out
}

// sortedChildren lists a directory's entries in byte order, as HDFS does.
func sortedChildren(d *inode) []string {
	names := make([]string, 0, len(d.children))
	for name := range d.children {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func ptr[T any](v T) *T { return &v }
