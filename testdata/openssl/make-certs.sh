#!/bin/sh
# make-certs.sh OUTDIR — makes a test CA, a relay server certificate and a
# client certificate in OUTDIR by running the commands of docs/TLS.md, in
# the same order. Keep the two in step: TestTLSDocMatchesScript checks
# that every command below the marker line appears in docs/TLS.md.
set -eu
if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
cd "$1"
cp "$here/server.ext" "$here/client.ext" .
# --- commands from docs/TLS.md ---
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=Cosnim Relay CA" -out ca.crt
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key
openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -sha256 -extfile server.ext -out server.crt
cat server.crt ca.crt > server-bundle.crt
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out client.key
openssl req -new -key client.key -subj "/CN=instance-1" -out client.csr
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -sha256 -extfile client.ext -out client.crt
openssl verify -CAfile ca.crt server.crt client.crt
