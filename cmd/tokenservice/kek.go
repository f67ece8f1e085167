package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/tokenservice/tokenservice/pkg/auth"
)

// readKEK reads a key-encryption key file, refusing one other users may
// read (see kekFileProblem).
func readKEK(flag, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	defer f.Close()
	info, err := f.Stat() // the file read, not one swapped in after a check
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if err := kekFileProblem(path, info); err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	text, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	kek, err := auth.ParseKeyEncryptionKey(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return kek, nil
}

// kekFileProblem refuses a key-encryption key file that users other than its
// owner may read: the key opens every signing key in the database. One
// exception: a file owned by root may be readable by its group, as a
// Kubernetes Secret volume with defaultMode 0440 and the pod's fsGroup
// makes it (the kubelet writes it as root, with the pod's group, for a
// process that does not run as root); only root could have given it that
// group. Where the system has no file owners (Windows), nothing is refused.
func kekFileProblem(path string, info fs.FileInfo) error {
	mode := info.Mode().Perm()
	uid, ok := fileOwner(info)
	if !ok {
		return nil
	}
	// Others: nothing. The group: at most read, of a root-owned file
	// (a group that may write may replace the key).
	if mode&0o007 != 0 || mode&0o070 != 0 && (uid != 0 || mode&0o030 != 0) {
		return fmt.Errorf("%s may be read by other users (mode %04o): run chmod 600 %s (only a root-owned file may be readable, and no more, by its group, as a Kubernetes Secret mounted with defaultMode 0440 and fsGroup is)", path, mode, path)
	}
	return nil
}
