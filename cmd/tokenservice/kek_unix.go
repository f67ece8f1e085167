//go:build unix

package main

import (
	"io/fs"
	"syscall"
)

// fileOwner returns the user id owning the file info describes.
func fileOwner(info fs.FileInfo) (uid uint32, ok bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}
