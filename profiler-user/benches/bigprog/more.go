package main

import (
	"archive/tar"
	"compress/bzip2"
	"compress/lzw"
	"compress/zlib"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha3"
	"debug/buildinfo"
	"debug/dwarf"
	"debug/elf"
	"debug/gosym"
	"debug/macho"
	"debug/pe"
	"debug/plan9obj"
	"encoding/asn1"
	"encoding/csv"
	"encoding/gob"
	"encoding/pem"
	"expvar"
	"go/build"
	"go/doc"
	"go/printer"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"index/suffixarray"
	"log/slog"
	"math/big"
	"mime/multipart"
	"net/http/cookiejar"
	"net/http/httputil"
	_ "net/http/pprof"
	"net/mail"
	"net/rpc/jsonrpc"
	"os/exec"
	"os/user"
	"runtime/trace"
	"testing"
	"testing/fstest"
	"testing/quick"
	"text/template"
)

// Keeps large parts of the standard library reachable (the bench needs a big binary).
var keep = []any{
	tar.NewReader, tar.NewWriter, bzip2.NewReader, lzw.NewReader, zlib.NewReader,
	ecdh.P256, ecdsa.GenerateKey, ecdsa.SignASN1, ed25519.GenerateKey, hmac.New,
	rsa.GenerateKey, rsa.SignPSS, rsa.EncryptOAEP, sha3.New256,
	buildinfo.ReadFile, dwarf.New, elf.Open, gosym.NewTable, macho.Open, pe.Open, plan9obj.Open,
	asn1.Marshal, asn1.Unmarshal, csv.NewReader, gob.NewEncoder, gob.NewDecoder, pem.Decode,
	expvar.Publish, build.Import, doc.New, doc.NewFromFiles, printer.Fprint,
	draw.Draw, gif.Encode, gif.DecodeAll, jpeg.Encode, jpeg.Decode, suffixarray.New,
	slog.New, slog.NewJSONHandler, slog.NewTextHandler, big.NewInt, big.NewFloat, big.NewRat,
	multipart.NewReader, multipart.NewWriter, cookiejar.New, httputil.NewSingleHostReverseProxy,
	httputil.DumpRequest, mail.ReadMessage, mail.ParseAddressList, jsonrpc.NewClient, jsonrpc.ServeConn,
	exec.Command, user.Current, user.Lookup, trace.Start, testing.Main, testing.Benchmark,
	fstest.TestFS, quick.Check, template.New,
}
