// A large Go program for the symbolization bench: it pulls in net/http, crypto/tls,
// encoding/json, go/types and friends so the binary is well over 20 MB with many functions,
// generics and deep inlining.
package main

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"go/ast"
	"go/format"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"html/template"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"net/smtp"
	"os"
	"regexp"
	"runtime/pprof"
	"text/tabwriter"
)

func main() {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", "package x\nfunc F() int { return 1 }\n", 0)
	if err != nil {
		panic(err)
	}
	conf := types.Config{Importer: importer.Default()}
	_, _ = conf.Check("x", fset, []*ast.File{f}, nil)
	var buf bytes.Buffer
	_ = format.Node(&buf, fset, f)
	_, _ = json.Marshal(map[string]any{"a": 1})
	_ = xml.NewEncoder(&buf).Encode(struct{ A int }{1})
	_ = &tls.Config{}
	_, _ = x509.SystemCertPool()
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	_ = srv
	_, _ = http.NewRequest("GET", "http://example.com", nil)
	_ = template.Must(template.New("t").Parse("{{.}}"))
	_ = regexp.MustCompile("a+b")
	_, _ = gzip.NewWriterLevel(&buf, 1)
	_ = zip.NewWriter(&buf)
	_ = png.Encode
	_ = sql.Drivers()
	_ = rpc.NewServer()
	_ = smtp.PlainAuth
	_ = pprof.Profiles()
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 1, ' ', 0)
	if len(os.Args) > 99 {
		fmt.Fprintln(w, generated(len(os.Args)))
	}
	fmt.Fprintln(w, len(os.Args) > 5, len(keep))
	_ = w.Flush()
}
