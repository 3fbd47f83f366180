package parse

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// LoadProtoFiles compiles .proto files (imports resolve against importPaths,
// then the well-known types) and returns the registry of every file.
func LoadProtoFiles(files, importPaths []string) (*protoregistry.Files, error) {
	if len(importPaths) == 0 {
		importPaths = []string{"."}
	}
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: importPaths}),
	}
	// Files given with a directory that is an import path are named
	// relative to it, as their importers name them.
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f
		for _, dir := range importPaths {
			if rel, err := filepath.Rel(dir, f); err == nil && !filepath.IsAbs(rel) && rel != "" && rel[0] != '.' {
				names[i] = filepath.ToSlash(rel)
				break
			}
		}
	}
	compiled, err := c.Compile(context.Background(), names...)
	if err != nil {
		return nil, fmt.Errorf("compile %v: %w", files, err)
	}
	fds := make([]protoreflect.FileDescriptor, len(compiled))
	for i, f := range compiled {
		fds[i] = f
	}
	return rebuild(fds)
}

// LoadDescriptorSet reads a serialized google.protobuf.FileDescriptorSet
// (protoc --include_imports --descriptor_set_out=FILE).
func LoadDescriptorSet(path string) (*protoregistry.Files, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("%s is not a FileDescriptorSet: %w", path, err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return files, nil
}

// rebuild registers compiled files (dependencies first) as descriptors of
// the protobuf runtime, reusing its own well-known types, so that JSON
// rendering of Any and Struct values works with them.
func rebuild(fds []protoreflect.FileDescriptor) (*protoregistry.Files, error) {
	reg := new(protoregistry.Files)
	var register func(fd protoreflect.FileDescriptor) error
	register = func(fd protoreflect.FileDescriptor) error {
		if _, err := reg.FindFileByPath(fd.Path()); err == nil {
			return nil
		}
		imports := fd.Imports()
		for i := range imports.Len() {
			if err := register(imports.Get(i).FileDescriptor); err != nil {
				return err
			}
		}
		if global, err := protoregistry.GlobalFiles.FindFileByPath(fd.Path()); err == nil {
			fd = global
		} else if fd, err = protodesc.NewFile(protodesc.ToFileDescriptorProto(fd), reg); err != nil {
			return err
		}
		return reg.RegisterFile(fd)
	}
	for _, fd := range fds {
		if err := register(fd); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// FindMessage looks a message type up by its full name.
func FindMessage(files *protoregistry.Files, name string) (protoreflect.MessageDescriptor, error) {
	d, err := files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, fmt.Errorf("message %q not found", name)
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return nil, fmt.Errorf("%q is not a message", name)
	}
	return md, nil
}
