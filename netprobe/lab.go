//go:build netinit_lab

package netprobe

// The lab build of netinit (internal/lab.BuildNetinit: go build -tags
// netinit_lab) runs in namespaces numbered from the documentation ranges,
// which stand for the internet there.
func init() { CountDocumentationAsPublic() }
