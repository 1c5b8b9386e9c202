#!/usr/bin/env bash
# grpcguard-certgen: files and modes, the chain verifies, the serving certificate is
# ECDSA P-256 with exactly the service SANs (+ --extra-san), serverAuth, not a CA, the
# requested validity; rerunning replaces the files; bad flags exit 2, unwritable output 1.
set -u
BIN=${GG_BIN:-build}/grpcguard-certgen
[ -x "$BIN" ] || { echo "grpcguard-certgen not built"; exit 77; }
command -v openssl >/dev/null || { echo "openssl not installed"; exit 77; }
tmp=$(mktemp -d /tmp/gg-certgen.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
run() { "$(dirname "$0")/../lib/run-prog" "$@"; }

run "$BIN" --service grpcguard-webhook --namespace grpcguard-system --out "$tmp/a" --days 30 \
  --extra-san localhost --extra-san 127.0.0.1 2>"$tmp/log" || fail "certgen failed: $(cat "$tmp/log")"
for f in ca.crt tls.crt tls.key; do [ -s "$tmp/a/$f" ] || fail "$f missing"; done
[ "$(stat -c %a "$tmp/a/tls.key")" = 600 ] || fail "tls.key mode $(stat -c %a "$tmp/a/tls.key")"
openssl verify -CAfile "$tmp/a/ca.crt" -purpose sslserver "$tmp/a/tls.crt" >/dev/null || fail "chain does not verify"
text=$(openssl x509 -in "$tmp/a/tls.crt" -noout -text)
echo "$text" | grep -q "ASN1 OID: prime256v1" || fail "not P-256"
sans=$(openssl x509 -in "$tmp/a/tls.crt" -noout -ext subjectAltName | tail -n +2 | tr -d ' ')
want="DNS:grpcguard-webhook,DNS:grpcguard-webhook.grpcguard-system,DNS:grpcguard-webhook.grpcguard-system.svc,DNS:grpcguard-webhook.grpcguard-system.svc.cluster.local,DNS:localhost,IPAddress:127.0.0.1"
[ "$sans" = "$want" ] || fail "SANs: $sans"
echo "$text" | grep -q "TLS Web Server Authentication" || fail "no serverAuth"
echo "$text" | grep -A1 "Basic Constraints" | grep -q "CA:FALSE" || fail "leaf is a CA"
openssl x509 -in "$tmp/a/ca.crt" -noout -text | grep -A1 "Basic Constraints" | grep -q "CA:TRUE" || fail "CA is not a CA"
# Validity: about 30 days.
end=$(date -d "$(openssl x509 -in "$tmp/a/tls.crt" -noout -enddate | cut -d= -f2)" +%s)
days=$(( (end - $(date +%s)) / 86400 ))
[ "$days" -ge 29 ] && [ "$days" -le 30 ] || fail "validity $days days"
# The key matches the certificate.
[ "$(openssl pkey -in "$tmp/a/tls.key" -pubout)" = "$(openssl x509 -in "$tmp/a/tls.crt" -noout -pubkey)" ] || fail "key does not match"
# Rerun: new files in place, no temporary files left.
old=$(openssl x509 -in "$tmp/a/tls.crt" -noout -fingerprint)
run "$BIN" --service s --namespace n --out "$tmp/a" 2>/dev/null || fail "rerun failed"
[ "$old" != "$(openssl x509 -in "$tmp/a/tls.crt" -noout -fingerprint)" ] || fail "not replaced"
[ -z "$(ls -A "$tmp/a" | grep -v -x -e ca.crt -e tls.crt -e tls.key)" ] || fail "leftovers: $(ls -A "$tmp/a")"
# Flags.
run "$BIN" --help | grep -q -- "--extra-san" || fail "--help"
for args in "--bogus" "--service s --namespace n" "--service s --namespace n --out $tmp/b --days 0" \
            "--service s --namespace n --out $tmp/b --days x" "--service s --namespace n --out $tmp/b extra"; do
  # shellcheck disable=SC2086
  run "$BIN" $args >/dev/null 2>"$tmp/err"; rc=$?
  [ $rc = 2 ] || fail "'$args' exit $rc"
  [ "$(wc -l <"$tmp/err")" = 1 ] || fail "'$args' stderr not one line: $(cat "$tmp/err")"
done
run "$BIN" --service s --namespace n --out "$tmp/b" --extra-san 'bad name' 2>"$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "bad name" "$tmp/err" || fail "bad SAN: exit $rc $(cat "$tmp/err")"
touch "$tmp/file"
run "$BIN" --service s --namespace n --out "$tmp/file/sub" 2>"$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "certgen_failed" "$tmp/err" || fail "unwritable out: exit $rc"
echo ok
